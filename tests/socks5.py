#!/usr/bin/env python3
"""A SOCKS5 proxy for the relay tests (Python 3 stdlib only).

    socks5.py --log FILE [--auth USER:PASSWORD]

Listens on 127.0.0.1 (any free port) and prints the port on the first line
of stdout. Speaks SOCKS5 (RFC 1928) with CONNECT only, without
authentication or, with --auth, with username and password (RFC 1929; a
client offering no other method is refused). Appends one JSON object per
request to FILE: {"user" (null without --auth), "atyp" ("ipv4", "domain" or
"ipv6": "domain" means the client left the name to the proxy, as socks5h://
does), "host", "port", "ok" (whether the proxy connected)}. A refused login
is logged as {"auth": "refused", "user"}; the password is never logged.
"""
import argparse
import json
import socket
import socketserver
import struct
import threading

lock = threading.Lock()
log = None
auth = None


def record(rec):
    with lock:
        log.write(json.dumps(rec) + "\n")
        log.flush()


def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("short read")
        data += chunk
    return data


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Handler(socketserver.BaseRequestHandler):
    def login(self, c, methods):
        """The method chosen and the user (None without --auth)."""
        if auth is None:
            if 0 not in methods:
                c.sendall(b"\x05\xff")
                return False, None
            c.sendall(b"\x05\x00")
            return True, None
        if 2 not in methods:
            c.sendall(b"\x05\xff")
            return False, None
        c.sendall(b"\x05\x02")
        ver, ulen = read(c, 2)
        user = read(c, ulen).decode("utf-8", "replace")
        (plen,) = read(c, 1)
        password = read(c, plen).decode("utf-8", "replace")
        if ver != 1 or (user, password) != auth:
            c.sendall(b"\x01\x01")
            record({"auth": "refused", "user": user})
            return False, user
        c.sendall(b"\x01\x00")
        return True, user

    def handle(self):
        c = self.request
        try:
            ver, n = read(c, 2)
            if ver != 5:
                return
            ok, user = self.login(c, read(c, n))
            if not ok:
                return
            ver, cmd, _, atyp = read(c, 4)
            if atyp == 1:
                kind, host = "ipv4", socket.inet_ntop(socket.AF_INET,
                                                      read(c, 4))
            elif atyp == 3:
                (hlen,) = read(c, 1)
                kind, host = "domain", read(c, hlen).decode("idna")
            elif atyp == 4:
                kind, host = "ipv6", socket.inet_ntop(socket.AF_INET6,
                                                      read(c, 16))
            else:
                return
            (port,) = struct.unpack("!H", read(c, 2))
            rec = {"user": user, "atyp": kind, "host": host, "port": port}
            if cmd != 1:
                c.sendall(b"\x05\x07\x00\x01" + bytes(6))
                record(dict(rec, ok=False))
                return
            try:
                up = socket.create_connection((host, port), timeout=10)
            except OSError:
                c.sendall(b"\x05\x05\x00\x01" + bytes(6))
                record(dict(rec, ok=False))
                return
            up.settimeout(None)
            record(dict(rec, ok=True))
            c.sendall(b"\x05\x00\x00\x01" + bytes(6))
            t = threading.Thread(target=pipe, args=(up, c), daemon=True)
            t.start()
            pipe(c, up)
            t.join()
            up.close()
        except (OSError, ConnectionError, ValueError):
            pass


def main():
    global log, auth
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--auth")
    args = ap.parse_args()
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = (user, password)
    log = open(args.log, "a", encoding="utf-8")
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
