"""QEMU guestfwd relay: one guest connection to the host's 127.0.0.1:PORT, over stdin/stdout.

    python3 relay.py PORT HOLD_FILE [CERT KEY]

QEMU starts this once per guest connection (`guestfwd=...-cmd:...`). With CERT and KEY the relay
is the TLS end of the connection, as a town's reverse proxy would be in front of the central
server: the kiosk's shipper only speaks HTTPS to anything but its own 127.0.0.1, and checks the
certificate against the CA file of its config.

While HOLD_FILE exists when a connection starts, the request still reaches the server but the
server's reply is swallowed and the guest's connection is kept open: the shipper is then exactly
"mid-delivery", the report stored on the server and the acknowledgement never received, which is
the moment the VM test cuts the power.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import sys


class Plain:
    """The guest side without TLS."""

    def __init__(self, out: int) -> None:
        self.out = out

    def from_guest(self, data: bytes) -> bytes:
        """Bytes from the guest -> plaintext for the server."""
        return data

    def to_guest(self, data: bytes) -> None:
        """Plaintext from the server -> the guest."""
        os.write(self.out, data)

    def guest_eof(self) -> None:
        """The guest closed its side."""


class TLS(Plain):
    """The guest side as the server end of a TLS session, over QEMU's pipe."""

    def __init__(self, out: int, cert: str, key: str) -> None:
        super().__init__(out)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.ready = False

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            os.write(self.out, data)

    def from_guest(self, data: bytes) -> bytes:
        """Feed TLS records in; return whatever plaintext they complete."""
        self.incoming.write(data)
        plain = b""
        try:
            if not self.ready:
                self.tls.do_handshake()
                self.ready = True
            while True:
                plain += self.tls.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        finally:
            self._flush()
        return plain

    def to_guest(self, data: bytes) -> None:
        """Encrypt the server's bytes for the guest."""
        self.tls.write(data)
        self._flush()

    def guest_eof(self) -> None:
        """The guest closed its side."""
        self.incoming.write_eof()


def main(argv: list[str]) -> int:
    """Relay until either side closes."""
    port, hold_file = int(argv[1]), argv[2]
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    guest = TLS(stdout, argv[3], argv[4]) if len(argv) > 4 else Plain(stdout)
    hold = os.path.exists(hold_file)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as upstream:
        upstream.settimeout(None)
        guest_open = True
        while True:
            ready, _, _ = select.select([stdin, upstream] if guest_open else [upstream], [], [])
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    guest_open = False
                    guest.guest_eof()
                    upstream.shutdown(socket.SHUT_WR)
                else:
                    plain = guest.from_guest(data)
                    if plain:
                        upstream.sendall(plain)
            if upstream in ready:
                data = upstream.recv(65536)
                if not data:
                    break
                if not hold:
                    guest.to_guest(data)
        if hold:
            # Keep the guest waiting for a reply that never comes, until its side closes
            # (QEMU reset the guest's connection or went away).
            while guest_open and os.read(stdin, 65536):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
