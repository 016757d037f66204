#!/usr/bin/env python3
"""echo-client.py (tcp HOST PORT | unix PATH) MESSAGE [EXPECTED]

Send MESSAGE, shut down the write side, read until len(EXPECTED) bytes arrived
(EXPECTED defaults to MESSAGE) or EOF, print what came back. Exit 1 on a
mismatch or a timeout (5 s)."""
import socket
import sys


def main():
    args = sys.argv[1:]
    if args[0] == "tcp":
        host, port, rest = args[1], int(args[2]), args[3:]
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        addr = (host, port)
    else:
        path, rest = args[1], args[2:]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = path
    msg = rest[0].encode()
    want = rest[1].encode() if len(rest) > 1 else msg
    s.settimeout(5)
    s.connect(addr)
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while len(got) < len(want):
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        print("timeout after %r" % got, file=sys.stderr)
    s.close()
    print(got.decode(errors="replace"))
    if got != want:
        print("expected %r, got %r" % (want, got), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
