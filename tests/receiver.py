#!/usr/bin/env python3
"""A downstream HTTP receiver for the relay tests (Python 3 stdlib only).

    receiver.py --log FILE [--port N] [--mode NAME=MODE ...]
                [--secret NAME=whsec_... ...] [--tls CERT:KEY]
                [--client-ca FILE]

Listens on 127.0.0.1 (port 0: any free port; with --tls, HTTPS; with
--client-ca as well, HTTPS that requires a client certificate issued by a CA
of FILE, refusing the handshake without one), prints the port on the first
line of stdout, and appends one JSON object per request to FILE:
{"path", "name", "method", "headers" (lower-case names), "body", "peer"
(the client's port, to see connection reuse), "client_cn" (the CN of the
client certificate, null without one), "status" (the answer, or
"hang"), "sig_ok" (true/false when a secret is set for the name, else null),
"time", "inflight" (requests of that name being answered at its arrival,
itself included: a destination's concurrency)}.

NAME is the first segment of the request path (/crm/x -> crm). How a name is
answered is its MODE (default 200):
    200, 500, 410, ...   that status
    429:N                429 with Retry-After: N (seconds)
    429date:N            429 with Retry-After as an HTTP date N seconds ahead
    flap                 per webhook-id: the 1st, 3rd, ... post 500, others 200
    hang                 never answers in time (sleeps 60 s, then 200)
    hang:N               sleeps N seconds (float), then 200
    redirect:PATH         302 to PATH (which a client must not follow)
    abort:N              status N with the header Webhook-Delivery: Abort
A mode can be changed while running: PUT or POST /_mode/NAME with the mode
as body.
Signatures are checked with Python's own hmac module, the Standard Webhooks
way: base64(HMAC-SHA256(base64decode(secret after whsec_),
id "." timestamp "." body)).
"""
import argparse
import base64
import email.utils
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
modes = {}
secrets = {}
seen = {}
inflight = {}
log = None


def verify(name, headers, body):
    secret = secrets.get(name)
    if secret is None:
        return None
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    signed = f"{msg_id}.{ts}.".encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for sig in headers.get("webhook-signature", "").split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), want):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, extra=(), text=b""):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def do_PUT(self):
        self.do_POST()

    def do_GET(self):
        self.do_POST()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if self.path.startswith("/_mode/"):
            with lock:
                modes[self.path[len("/_mode/"):]] = body.decode().strip()
            return self.answer(204)
        name = self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            mode = modes.get(name, "200")
            wid = headers.get("webhook-id", "")
            seen[(name, wid)] = seen.get((name, wid), 0) + 1
            count = seen[(name, wid)]
            inflight[name] = inflight.get(name, 0) + 1
            now_inflight = inflight[name]
        try:
            self.answer_mode(name, mode, count, headers, body, now_inflight)
        finally:
            with lock:
                inflight[name] -= 1

    def answer_mode(self, name, mode, count, headers, body, now_inflight):
        extra = []
        hang = 0.0
        if mode == "flap":
            status = 500 if count % 2 == 1 else 200
        elif mode.startswith("hang"):
            hang = float(mode.split(":", 1)[1]) if ":" in mode else 60.0
            status = 200
        elif mode.startswith("429date:"):
            status = 429
            when = time.time() + float(mode.split(":", 1)[1])
            extra.append(("Retry-After",
                          email.utils.formatdate(when, usegmt=True)))
        elif mode.startswith("redirect:"):
            status = 302
            extra.append(("Location", mode.split(":", 1)[1]))
        elif mode.startswith("abort:"):
            status = int(mode.split(":", 1)[1])
            extra.append(("Webhook-Delivery", "Abort"))
        elif mode.startswith("429:"):
            status = 429
            extra.append(("Retry-After", mode.split(":", 1)[1]))
        else:
            status = int(mode)
        client_cn = None
        if hasattr(self.connection, "getpeercert"):
            cert = self.connection.getpeercert() or {}
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        client_cn = v
        rec = {
            "path": self.path,
            "name": name,
            "method": self.command,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
            "peer": self.client_address[1],
            "client_cn": client_cn,
            "status": "hang" if hang else status,
            "sig_ok": verify(name, headers, body),
            "time": time.time(),
            "inflight": now_inflight,
        }
        with lock:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if hang:
            time.sleep(hang)
        try:
            self.answer(status, extra,
                        b"" if status < 300 else f"mode {mode}\n".encode())
        except OSError:
            pass


def main():
    global log
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", action="append", default=[])
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--tls")
    ap.add_argument("--client-ca")
    args = ap.parse_args()
    for m in args.mode:
        k, _, v = m.partition("=")
        modes[k] = v
    for s in args.secret:
        k, _, v = s.partition("=")
        secrets[k] = v
    log = open(args.log, "a", encoding="utf-8")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls:
        cert, _, key = args.tls.partition(":")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
