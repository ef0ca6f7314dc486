#!/usr/bin/env python3
"""A FastCGI client for the tests: speaks the protocol to a responder's
socket, as a web server would, with nothing but the standard library.

  fcgi_client.py ADDR request [--method M] [--type T] [--length L]
                 [--body FILE] [--param NAME=VALUE]... [--req-id N]
                 [--hang-up]
      one request; prints the status line, then the headers and the body;
      with --hang-up, closes the connection once the request is sent and
      prints nothing
  fcgi_client.py ADDR each FILE...
      one request per file (JSON or form, by its first byte); prints
      "NAME STATUS FIRST-BODY-LINE" for each
  fcgi_client.py ADDR load --body FILE --requests N --clients C
                 [--keep-conn] [--ok-log FILE] [--tag TAG]
      N requests from C parallel clients, each with the body's event given
      a distinct MessageId; prints a summary line and appends the
      MessageId of every 200 answer to the ok-log as soon as it arrives.
      A client whose connection is refused stops: the responder is gone.
  fcgi_client.py ADDR hold --body FILE --seconds S
      one request on a kept-alive connection, then holds it open idle
  fcgi_client.py ADDR starve --body FILE [--idle N] [--trickle N]
                 [--seconds S] [--wait S]
      opens N idle connections and N that send a request 1 byte a second
      (half of them send their params at once and trickle the body), waits
      --wait seconds, then times one normal request: prints
      "normal STATUS SECONDS"; keeps the rest open (trickling) for --seconds
      or until the server closes them, then prints "idle closed K of N
      after MAX" and "trickle closed K of N after MAX answered-400 A"
      (MAX: the latest close, in seconds from opening)
  fcgi_client.py ADDR hog --body FILE --conns N --bytes K --seconds S
      opens N connections that each send a request's params and the first
      K bytes of its body, then nothing more; holds them S seconds
  fcgi_client.py ADDR values
      sends FCGI_GET_VALUES; prints each NAME=VALUE of the result
  fcgi_client.py ADDR mpx --body FILE
      begins request 2 while request 1 is being sent on one connection;
      prints "2 END_REQUEST STATUS" and "1 HTTP-STATUS"

ADDR is HOST:PORT or a Unix socket path.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time

VERSION = 1
BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
RESPONDER = 1
KEEP_CONN = 1


def connect(addr):
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr)
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def record(rtype, content, req_id=1):
    pad = -len(content) % 8
    return (struct.pack(">BBHHBB", VERSION, rtype, req_id, len(content), pad, 0)
            + content + b"\0" * pad)


def pair_len(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    out = b""
    for name, value in params.items():
        name, value = name.encode(), value.encode()
        out += pair_len(len(name)) + pair_len(len(value)) + name + value
    return out


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-record")
        buf += chunk
    return buf


def send_request(s, params, body, keep, req_id=1):
    s.sendall(record(BEGIN_REQUEST, struct.pack(
        ">HB5x", RESPONDER, KEEP_CONN if keep else 0), req_id)
        + b"".join(record(PARAMS, c, req_id) for c in
                   chunks(encode_params(params)))
        + b"".join(record(STDIN, c, req_id) for c in chunks(body)))


def chunks(data):
    """data in records' worth, then the empty one that ends a stream."""
    return [data[i:i + 32768] for i in range(0, len(data), 32768)] + [b""]


def roundtrip(s, params, body, keep, req_id=1):
    """Sends one request on s; returns (status, headers, body bytes). Every
    record of the answer must carry req_id, and the request must end
    complete (FCGI_REQUEST_COMPLETE)."""
    send_request(s, params, body, keep, req_id)
    out = b""
    while True:
        _, rtype, rid, clen, plen, _ = struct.unpack(
            ">BBHHBB", recv_exact(s, 8))
        content = recv_exact(s, clen + plen)[:clen]
        if rid != req_id:
            raise ValueError("record for request %d, not %d" % (rid, req_id))
        if rtype == STDOUT:
            out += content
        elif rtype == END_REQUEST:
            if len(content) != 8 or content[4] != 0:
                raise ValueError("request did not end complete: %r" % content)
            break
    head, _, rest = out.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, rest


def make_params(method, ctype, length):
    params = {"REQUEST_METHOD": method, "SCRIPT_NAME": "/slhook",
              "REQUEST_URI": "/slhook", "SERVER_PROTOCOL": "HTTP/1.1",
              "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR": "127.0.0.1"}
    if ctype is not None:
        params["CONTENT_TYPE"] = ctype
    if length is not None:
        params["CONTENT_LENGTH"] = str(length)
    return params


def run_clients(client, n):
    """Runs client() on n threads at once; returns when every one has."""
    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def counts_detail(counts):
    """"KEY=N KEY=N ...", sorted: a load's answers by status or error."""
    return " ".join("%s=%s" % (k, v) for k, v in sorted(
        counts.items(), key=lambda kv: str(kv[0])))


def cmd_request(a):
    body = b""
    if a.body == "-":
        body = sys.stdin.buffer.read()
    elif a.body:
        with open(a.body, "rb") as f:
            body = f.read()
    ctype = a.type
    if ctype is None and a.body:
        ctype = guess_type(body)
    length = a.length if a.length is not None else (
        len(body) if a.method == "POST" else None)
    params = make_params(a.method, ctype, length)
    for p in a.param:
        name, _, value = p.partition("=")
        if value == "" and name in params:
            del params[name]
        else:
            params[name] = value
    with connect(a.addr) as s:
        if a.hang_up:
            send_request(s, params, body, False, a.req_id)
            return 0
        status, headers, out = roundtrip(s, params, body, False, a.req_id)
    print(status)
    for name, value in headers.items():
        print(f"{name}: {value}")
    print()
    sys.stdout.write(out.decode("utf-8", "replace"))
    return 0


def guess_type(body):
    return ("application/json" if body.lstrip()[:1] in (b"{", b"[")
            else "application/x-www-form-urlencoded")


def cmd_each(a):
    for path in a.files:
        with open(path, "rb") as f:
            body = f.read()
        with connect(a.addr) as s:
            status, _, out = roundtrip(
                s, make_params("POST", guess_type(body), len(body)), body,
                False)
        first = out.decode("utf-8", "replace").split("\n")[0]
        print(path.rsplit("/", 1)[-1], status, first)
    return 0


def cmd_load(a):
    with open(a.body) as f:
        template = json.load(f)
    lock = threading.Lock()
    counts = {}
    next_i = [0]
    oklog = open(a.ok_log, "a") if a.ok_log else None

    def client():
        s = None
        while True:
            with lock:
                i = next_i[0]
                if i >= a.requests:
                    break
                next_i[0] += 1
            event = dict(template)
            event["MessageId"] = f"{a.tag}-{i}"
            body = json.dumps(event, separators=(",", ":")).encode()
            params = make_params("POST", "application/json", len(body))
            try:
                if s is None:
                    s = connect(a.addr)
                status, _, _ = roundtrip(s, params, body, a.keep_conn)
                if not a.keep_conn:
                    s.close()
                    s = None
            except OSError as e:
                status = type(e).__name__
                if s is not None:
                    s.close()
                    s = None
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if status == 200 and oklog:
                    oklog.write(event["MessageId"] + "\n")
                    oklog.flush()
            if status in ("ConnectionRefusedError", "FileNotFoundError"):
                break  # the responder is gone: this client is done
        if s is not None:
            s.close()

    t0 = time.monotonic()
    run_clients(client, a.clients)
    secs = time.monotonic() - t0
    ok = counts.get(200, 0)
    sent = sum(counts.values())
    print(f"requests {sent} ok {ok} seconds {secs:.3f} "
          f"rps {sent / secs:.0f} [{counts_detail(counts)}]")
    return 0


def cmd_hold(a):
    with open(a.body, "rb") as f:
        body = f.read()
    with connect(a.addr) as s:
        status, _, _ = roundtrip(
            s, make_params("POST", "application/json", len(body)), body, True)
        print(status, flush=True)
        s.settimeout(a.seconds)
        try:
            gone = s.recv(1) == b""
        except socket.timeout:
            gone = False
        print("closed by server" if gone else "still open", flush=True)
    return 0


def cmd_starve(a):
    import select
    with open(a.body, "rb") as f:
        body = f.read()
    params = make_params("POST", "application/json", len(body))
    whole = (record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0))
             + b"".join(record(PARAMS, c) for c in
                        chunks(encode_params(params)))
             + b"".join(record(STDIN, c) for c in chunks(body)))
    head_len = len(whole) - sum(len(record(STDIN, c)) for c in chunks(body))
    conns = []  # [socket, kind, opened, data, sent, closed_at, answer]
    for _ in range(a.idle):
        conns.append([connect(a.addr), "idle", time.monotonic(), b"", 0,
                      None, b""])
    for i in range(a.trickle):
        s = connect(a.addr)
        sent = 0
        if i % 2 == 1:
            s.sendall(whole[:head_len])
            sent = head_len
        conns.append([s, "trickle", time.monotonic(), whole, sent, None,
                      b""])
    for c in conns:
        c[0].setblocking(False)

    def tick(until):
        next_byte = time.monotonic()
        while time.monotonic() < until:
            now = time.monotonic()
            if now >= next_byte:
                for c in conns:
                    if c[1] == "trickle" and c[5] is None and c[4] < len(c[3]):
                        try:
                            c[0].send(c[3][c[4]:c[4] + 1])
                            c[4] += 1
                        except OSError:
                            pass
                next_byte = now + 1
            open_ = [c[0] for c in conns if c[5] is None]
            if not open_:
                return
            r, _, _ = select.select(open_, [], [],
                                    max(0, min(next_byte, until)
                                        - time.monotonic()))
            for c in conns:
                if c[0] in r:
                    try:
                        got = c[0].recv(65536)
                    except OSError:
                        got = b""
                    if got:
                        c[6] += got
                    else:
                        c[5] = time.monotonic() - c[2]

    tick(time.monotonic() + a.wait)
    t0 = time.monotonic()
    try:
        with connect(a.addr) as s:
            s.settimeout(30)
            status, _, _ = roundtrip(s, params, body, False)
    except (OSError, ValueError) as e:
        status = "error:%s" % e
    print("normal %s %.3f" % (status, time.monotonic() - t0), flush=True)
    tick(time.monotonic() + a.seconds)
    for kind, n in (("idle", a.idle), ("trickle", a.trickle)):
        closed = [c[5] for c in conns if c[1] == kind and c[5] is not None]
        answered = sum(1 for c in conns
                       if c[1] == kind and b"Status: 400" in c[6])
        print("%s closed %d of %d after %.1f answered-400 %d" % (
            kind, len(closed), n, max(closed) if closed else -1, answered),
            flush=True)
    for c in conns:
        c[0].close()
    return 0


def cmd_hog(a):
    with open(a.body, "rb") as f:
        body = f.read()
    params = make_params("POST", "application/json", len(body))
    head = (record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0))
            + b"".join(record(PARAMS, c) for c in
                       chunks(encode_params(params))))
    part = b"".join(record(STDIN, c) for c in chunks(body[:a.bytes])[:-1])
    conns = []
    for _ in range(a.conns):
        s = connect(a.addr)
        s.sendall(head + part)
        conns.append(s)
    print("hogging", flush=True)
    time.sleep(a.seconds)
    for s in conns:
        s.close()
    return 0


def cmd_values(a):
    names = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
    with connect(a.addr) as s:
        s.sendall(record(9, b"".join(pair_len(len(n)) + pair_len(0) + n
                                     for n in names), 0))
        s.settimeout(10)
        _, rtype, rid, clen, plen, _ = struct.unpack(
            ">BBHHBB", recv_exact(s, 8))
        content = recv_exact(s, clen + plen)[:clen]
        if rtype != 10 or rid != 0:
            print("unexpected record type %d id %d" % (rtype, rid))
            return 1
        at = 0
        while at < len(content):
            nl, vl = content[at], content[at + 1]
            at += 2
            print("%s=%s" % (content[at:at + nl].decode(),
                             content[at + nl:at + nl + vl].decode()))
            at += nl + vl
    return 0


def cmd_mpx(a):
    with open(a.body, "rb") as f:
        body = f.read()
    params = make_params("POST", "application/json", len(body))
    with connect(a.addr) as s:
        s.settimeout(10)
        s.sendall(record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0), 1)
                  + record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0),
                           2))
        _, rtype, rid, clen, plen, _ = struct.unpack(
            ">BBHHBB", recv_exact(s, 8))
        content = recv_exact(s, clen + plen)[:clen]
        print("%d %s %d" % (rid, "END_REQUEST" if rtype == END_REQUEST
                            else "type-%d" % rtype, content[4]), flush=True)
        status, _, _ = roundtrip_rest(s, params, body)
        print("1 %d" % status)
    return 0


def roundtrip_rest(s, params, body):
    """The rest of request 1 (its BEGIN_REQUEST already sent)."""
    s.sendall(b"".join(record(PARAMS, c) for c in
                       chunks(encode_params(params)))
              + b"".join(record(STDIN, c) for c in chunks(body)))
    out = b""
    while True:
        _, rtype, rid, clen, plen, _ = struct.unpack(
            ">BBHHBB", recv_exact(s, 8))
        content = recv_exact(s, clen + plen)[:clen]
        if rtype == STDOUT:
            out += content
        elif rtype == END_REQUEST:
            break
    status = int(out.split(b"\r\n")[0].split()[1])
    return status, None, None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("request")
    r.add_argument("--method", default="POST")
    r.add_argument("--type")
    r.add_argument("--length", type=int)
    r.add_argument("--body")
    r.add_argument("--param", action="append", default=[])
    r.add_argument("--req-id", type=int, default=1)
    r.add_argument("--hang-up", action="store_true")
    e = sub.add_parser("each")
    e.add_argument("files", nargs="+")
    ld = sub.add_parser("load")
    ld.add_argument("--body", required=True)
    ld.add_argument("--requests", type=int, default=200)
    ld.add_argument("--clients", type=int, default=16)
    ld.add_argument("--keep-conn", action="store_true")
    ld.add_argument("--ok-log")
    ld.add_argument("--tag", default="load")
    h = sub.add_parser("hold")
    h.add_argument("--body", required=True)
    h.add_argument("--seconds", type=float, default=10)
    st = sub.add_parser("starve")
    st.add_argument("--body", required=True)
    st.add_argument("--idle", type=int, default=64)
    st.add_argument("--trickle", type=int, default=64)
    st.add_argument("--seconds", type=float, default=10)
    st.add_argument("--wait", type=float, default=2)
    hg = sub.add_parser("hog")
    hg.add_argument("--body", required=True)
    hg.add_argument("--conns", type=int, default=3)
    hg.add_argument("--bytes", type=int, default=60000)
    hg.add_argument("--seconds", type=float, default=10)
    sub.add_parser("values")
    mp = sub.add_parser("mpx")
    mp.add_argument("--body", required=True)
    a = p.parse_args()
    return {"request": cmd_request, "each": cmd_each, "load": cmd_load,
            "hold": cmd_hold, "starve": cmd_starve, "hog": cmd_hog, "values": cmd_values,
            "mpx": cmd_mpx}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
