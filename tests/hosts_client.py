#!/usr/bin/env python3
"""The clients, the destination and the tallies of tests/t_pg_hosts.sh:
several hosts on one PostgreSQL spool (Python 3 stdlib only).

  hosts_client.py receive --spans FILE --port-file FILE [--delay S]
      The destination: an HTTP server on 127.0.0.1 (a free port, written to
      the port file) that answers every POST 200 after S seconds (PUT
      /_delay with seconds as body changes it) and, once it has answered,
      appends {"id": webhook-id, "by": the X-Slhook-Host header (which host
      posted), "mid": the body's MessageId, "start", "end", "cut"} to FILE:
      a post's whole span, so that two posts of one event at once show. A
      poster that closes the connection first (it gave the attempt up, or
      died) ends the span there: "cut" true, no answer.

  hosts_client.py load --url URL --template FILE... --tag TAG
                 [--clients 8] [--rate R] [--seconds S] [--stop-file F]
                 [--dup-every K] [--cgi-every K] [--ok-log F] [--answers F]
                 [--give-up S]
      C clients post distinct events (MessageId TAG-i, the templates in
      turn) through the web server at URL: /slhook (both hosts), every K-th
      event through /a/slhook and then /b/slhook (one host each: the same
      event at both), with --cgi-every every K-th through /cgi/slhook.
      Each client starts at most R events a second, new ones until S
      seconds have passed or F exists. Like SocketLabs, a post that gets no
      200 is sent again until it does or S (--give-up) seconds have passed
      since its event's first try. Each 200 appends "MID PATH TIME" to the
      ok-log; every answer "START END PATH STATUS RETRY-AFTER(0/1) MID" to
      the answers log. Prints a summary line.

  hosts_client.py both --url URL --template FILE --tag TAG --events N
                 [--cgi] [--ok-log F]
      N events, each posted at the same moment through /a/slhook and
      /b/slhook (and /cgi/slhook with --cgi), each post retried until 200.

  hosts_client.py check --ok-log F --spans F --stored F [--kills F]
                 [--tag TAG]
      What was acknowledged (the ok-log, events TAG-* only with --tag)
      against the spool (--stored: "MID COUNT" lines, the database's
      events per MessageId) and the destination (the spans): acked,
      missing_stored (200 but not in the database), stored_twice,
      not_relayed, posts, reposts (posts beyond an event's first: a
      killed host's attempts are tried again), once_only (1 when every
      acknowledged event was posted exactly once), overlaps (two posts of
      one webhook-id at the same time, a killed host's post counted as
      ended when it was killed: --kills holds "HOST TIME" lines). Prints
      "key value" lines, then up to 5 examples of each failure.

  hosts_client.py window --answers F --from T1 --to T2 --after T3
      Answers given while PostgreSQL was down (sent at T1 or later,
      answered by T2): how many, 200s among them, 503s, 503s without
      Retry-After, others; and 200s to posts sent at T3 or later.
"""
import argparse
import collections
import http.client
import json
import os
import random
import select
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# ---- receive ----

class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    delay = 0.0
    spans = None

    def log_message(self, fmt, *args):
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if self.path == "/_delay":
            Receiver.delay = float(body.decode().strip())
            return self.answer(204)
        return self.answer(404)

    def wait_or_cut(self, secs):
        """Sleeps secs, or until the poster closes the connection: True
        then."""
        end = time.time() + secs
        while True:
            left = end - time.time()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.connection], [], [], left)
            if not readable:
                return False
            try:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return True
            except OSError:
                return True
            # Bytes of a next request, not a close: the delay runs out.
            time.sleep(max(0.0, end - time.time()))
            return False

    def do_POST(self):
        start = time.time()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        cut = self.wait_or_cut(Receiver.delay)
        if cut:
            self.close_connection = True
        else:
            try:
                self.answer(200)
            except OSError:
                cut = True
        try:
            mid = json.loads(body).get("MessageId")
        except (ValueError, AttributeError):
            mid = None
        rec = {"id": self.headers.get("webhook-id", ""),
               "by": self.headers.get("x-slhook-host", ""),
               "mid": mid, "start": start, "end": time.time(), "cut": cut}
        with Receiver.lock:
            Receiver.spans.write(json.dumps(rec) + "\n")
            Receiver.spans.flush()


def cmd_receive(a):
    Receiver.delay = a.delay
    Receiver.spans = open(a.spans, "a", encoding="utf-8")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    with open(a.port_file + ".new", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(a.port_file + ".new", a.port_file)
    srv.serve_forever()


# ---- load and both ----

class Poster:
    """Posts through the web server; logs answers and 200s."""

    def __init__(self, a):
        u = urllib.parse.urlsplit(a.url)
        self.host, self.port = u.hostname, u.port
        self.lock = threading.Lock()
        self.ok_log = open(a.ok_log, "a") if a.ok_log else None
        self.answers = open(a.answers, "a") if getattr(
            a, "answers", None) else None
        self.counts = collections.Counter()
        self.give_up = getattr(a, "give_up", 60.0)

    def post_once(self, path, body):
        t0 = time.time()
        retry_after = 0
        try:
            c = http.client.HTTPConnection(self.host, self.port, timeout=20)
            c.request("POST", path, body,
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            status = r.status
            retry_after = 1 if (r.getheader("Retry-After") or "").strip() \
                .isdigit() else 0
            c.close()
        except (OSError, http.client.HTTPException) as e:
            status = type(e).__name__
        return t0, time.time(), status, retry_after

    def post(self, path, mid, body):
        """Until 200 or give_up; True on a 200."""
        first = time.time()
        while True:
            t0, t1, status, ra = self.post_once(path, body)
            with self.lock:
                self.counts[status] += 1
                if self.answers:
                    self.answers.write("%.6f %.6f %s %s %d %s\n" % (
                        t0, t1, path, status, ra, mid))
                    self.answers.flush()
                if status == 200:
                    self.counts["acked"] += 1
                    if self.ok_log:
                        self.ok_log.write("%s %s %.6f\n" % (mid, path, t1))
                        self.ok_log.flush()
            if status == 200:
                return True
            if time.time() - first > self.give_up:
                with self.lock:
                    self.counts["given_up"] += 1
                return False
            time.sleep(0.05 + 0.1 * random.random())

    def summary(self, what, secs):
        detail = " ".join("%s=%d" % (k, v) for k, v in sorted(
            self.counts.items(), key=lambda kv: str(kv[0])))
        print("%s seconds %.1f [%s]" % (what, secs, detail), flush=True)


def templates(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.append(json.load(f))
    return out


def event(tmpls, tag, i):
    e = dict(tmpls[i % len(tmpls)])
    e["MessageId"] = "%s-%d" % (tag, i)
    return e["MessageId"], json.dumps(e, separators=(",", ":")).encode()


def cmd_load(a):
    tmpls = templates(a.template)
    p = Poster(a)
    lock = threading.Lock()
    next_i = [0]
    t0 = time.time()

    def done():
        return time.time() - t0 > a.seconds or (
            a.stop_file and os.path.exists(a.stop_file))

    def paths(i):
        if a.cgi_every and i % a.cgi_every == 1:
            return ["/cgi/slhook"]
        if a.dup_every and i % a.dup_every == 0:
            return ["/a/slhook", "/b/slhook"]
        return ["/slhook"]

    def client():
        while not done():
            started = time.time()
            with lock:
                i = next_i[0]
                next_i[0] += 1
            mid, body = event(tmpls, a.tag, i)
            for path in paths(i):
                p.post(path, mid, body)
            pause = 1.0 / a.rate - (time.time() - started)
            if pause > 0:
                time.sleep(pause)

    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.summary("events %d" % next_i[0], time.time() - t0)
    return 0 if p.counts["given_up"] == 0 else 1


def cmd_both(a):
    tmpls = templates(a.template)
    p = Poster(a)
    where = ["/a/slhook", "/b/slhook"] + (["/cgi/slhook"] if a.cgi else [])
    t0 = time.time()
    for i in range(a.events):
        mid, body = event(tmpls, a.tag, i)
        go = threading.Barrier(len(where))

        def one(path, mid=mid, body=body, go=go):
            go.wait()
            p.post(path, mid, body)

        threads = [threading.Thread(target=one, args=(w,)) for w in where]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    p.summary("events %d" % a.events, time.time() - t0)
    return 0 if p.counts["given_up"] == 0 else 1


# ---- check and window ----

def read_spans(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def overlaps(spans, kills):
    """Pairs of posts of one webhook-id at once; a post by a host that was
    killed while it was in flight ends at the kill (the receiver went on
    sleeping, the host did not)."""
    def end(s):
        later = [k for k in kills.get(s["by"], ()) if k > s["start"]]
        return min([s["end"]] + later)

    by_id = collections.defaultdict(list)
    for s in spans:
        by_id[s["id"]].append((s["start"], end(s), s["by"]))
    out = []
    for wid, posts in by_id.items():
        posts.sort()
        last = None
        for p in posts:
            if last is not None and p[0] < last[1]:
                out.append((wid, last, p))
            if last is None or p[1] > last[1]:
                last = p
    return out


def cmd_check(a):
    acked = set()
    with open(a.ok_log) as f:
        for line in f:
            mid = line.split(" ", 1)[0]
            if not a.tag or mid.startswith(a.tag + "-"):
                acked.add(mid)
    stored = {}
    with open(a.stored) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                stored[parts[0]] = int(parts[1])
    spans = [s for s in read_spans(a.spans)
             if not a.tag or (s["mid"] or "").startswith(a.tag + "-")]
    kills = collections.defaultdict(list)
    if a.kills and os.path.exists(a.kills):
        with open(a.kills) as f:
            for line in f:
                host, t = line.split()
                kills[host].append(float(t))
    posts = collections.Counter(s["mid"] for s in spans)
    missing = sorted(m for m in acked if m not in stored)
    twice = sorted(m for m, n in stored.items()
                   if n > 1 and (not a.tag or m.startswith(a.tag + "-")))
    not_relayed = sorted(m for m in acked if m not in posts)
    over = overlaps(spans, kills)
    out = collections.OrderedDict()
    out["acked"] = len(acked)
    out["missing_stored"] = len(missing)
    out["stored_twice"] = len(twice)
    out["not_relayed"] = len(not_relayed)
    out["posts"] = len(spans)
    out["reposts"] = len(spans) - len(posts)
    out["once_only"] = int(all(posts[m] == 1 for m in acked))
    out["overlaps"] = len(over)
    for k, v in out.items():
        print(k, v)
    for m in missing[:5]:
        print("missing_stored:", m)
    for m in twice[:5]:
        print("stored_twice:", m, stored[m])
    for m in not_relayed[:5]:
        print("not_relayed:", m)
    for wid, p, q in over[:5]:
        print("overlap: %s by %s %.3f-%.3f and by %s %.3f-%.3f" % (
            wid[:16], p[2], p[0], p[1], q[2], q[0], q[1]))
    return 0


def cmd_window(a):
    out = collections.OrderedDict(
        (k, 0) for k in ("window_answers", "window_200", "window_503",
                         "window_503_no_retry_after", "window_other",
                         "after_200"))
    with open(a.answers) as f:
        for line in f:
            t0, t1, _, status, ra, _ = line.split()
            t0, t1 = float(t0), float(t1)
            if t0 >= a.after and status == "200":
                out["after_200"] += 1
            if t0 < a.from_ or t1 > a.to:
                continue
            out["window_answers"] += 1
            if status == "200":
                out["window_200"] += 1
            elif status == "503":
                out["window_503"] += 1
                if ra == "0":
                    out["window_503_no_retry_after"] += 1
            else:
                out["window_other"] += 1
    for k, v in out.items():
        print(k, v)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("receive")
    r.add_argument("--spans", required=True)
    r.add_argument("--port-file", required=True)
    r.add_argument("--delay", type=float, default=0.0)
    ld = sub.add_parser("load")
    ld.add_argument("--url", required=True)
    ld.add_argument("--template", action="append", required=True)
    ld.add_argument("--tag", required=True)
    ld.add_argument("--clients", type=int, default=8)
    ld.add_argument("--rate", type=float, default=20.0)
    ld.add_argument("--seconds", type=float, default=60.0)
    ld.add_argument("--stop-file")
    ld.add_argument("--dup-every", type=int, default=0)
    ld.add_argument("--cgi-every", type=int, default=0)
    ld.add_argument("--ok-log")
    ld.add_argument("--answers")
    ld.add_argument("--give-up", type=float, default=60.0)
    b = sub.add_parser("both")
    b.add_argument("--url", required=True)
    b.add_argument("--template", action="append", required=True)
    b.add_argument("--tag", required=True)
    b.add_argument("--events", type=int, default=20)
    b.add_argument("--cgi", action="store_true")
    b.add_argument("--ok-log")
    b.add_argument("--give-up", type=float, default=30.0)
    c = sub.add_parser("check")
    c.add_argument("--ok-log", required=True)
    c.add_argument("--spans", required=True)
    c.add_argument("--stored", required=True)
    c.add_argument("--kills")
    c.add_argument("--tag")
    w = sub.add_parser("window")
    w.add_argument("--answers", required=True)
    w.add_argument("--from", dest="from_", type=float, required=True)
    w.add_argument("--to", type=float, required=True)
    w.add_argument("--after", type=float, required=True)
    a = ap.parse_args()
    return {"receive": cmd_receive, "load": cmd_load, "both": cmd_both,
            "check": cmd_check, "window": cmd_window}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
