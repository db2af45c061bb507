"""QEMU guestfwd relay: one guest connection to the host's 127.0.0.1:PORT, over stdin/stdout.

    python3 relay.py PORT HOLD_FILE

QEMU starts this once per guest connection (`guestfwd=...-cmd:...`). While HOLD_FILE exists when
a connection starts, the request still reaches the server but the server's reply is swallowed
and the guest's connection is kept open: the shipper is then exactly "mid-delivery", the report
stored on the server and the acknowledgement never received, which is the moment the VM test
resets the machine.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time


def main(argv: list[str]) -> int:
    """Relay until either side closes."""
    port, hold_file = int(argv[1]), argv[2]
    hold = os.path.exists(hold_file)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as upstream:
        upstream.settimeout(None)
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        guest_open = True
        while True:
            ready, _, _ = select.select([stdin, upstream] if guest_open else [upstream], [], [])
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    guest_open = False
                    upstream.shutdown(socket.SHUT_WR)
                else:
                    upstream.sendall(data)
            if upstream in ready:
                data = upstream.recv(65536)
                if not data:
                    break
                if not hold:
                    os.write(stdout, data)
        if hold:
            # Keep the guest waiting for a reply that never comes, until QEMU goes away.
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
