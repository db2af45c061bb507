"""The station daemon: udev, safe mounts, sessions, outbox, event socket, self-test, shipper."""
