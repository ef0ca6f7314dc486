#!/usr/bin/env python3
"""What large hostile bodies cost slhook.fcgi in memory, and whether it is
given back (issue 14, item 6).

  bench/mem_bodies.py BINARY [--clients 16] [--size 1048576] [--idle 20]
                      [--rounds 1] [--threads 16]

Starts BINARY (a slhook.fcgi) on a fresh spool with max_body 1m, posts
--clients bodies of --size bytes at once (a JSON array of as many tiny
events as fit: the most objects per byte for the parser), --rounds times,
and prints VmRSS and VmHWM from /proc/PID/status: at the start, right after
the burst, and after --idle seconds without requests. Then stops it.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import fcgi_client  # noqa: E402


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return "VmRSS %6.1f MiB  VmHWM %6.1f MiB" % (out["VmRSS"], out["VmHWM"])


def body(size):
    one = b'{"Type":"Delivered","SecretKey":"x"},'
    n = (size - 2) // len(one)
    b = b"[" + one * n
    b = b[:-1] + b"]"
    return b + b" " * (size - len(b))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--size", type=int, default=1048576)
    p.add_argument("--idle", type=float, default=20)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=16)
    a = p.parse_args()
    d = tempfile.mkdtemp(prefix="slhook-mem.")
    with open(os.path.join(d, "c.conf"), "w") as f:
        f.write("[receiver]\nsecret_key = k\nmax_body = 1m\nspool = %s\n"
                % os.path.join(d, "spool"))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    addr = "127.0.0.1:%d" % port
    log = open(os.path.join(d, "log"), "w")
    srv = subprocess.Popen([a.binary, "-c", os.path.join(d, "c.conf"),
                            "--listen", addr, "--no-deliver",
                            "--threads", str(a.threads)],
                           stdin=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        print("start:        %s" % status(srv.pid))
        data = body(a.size)
        params = fcgi_client.make_params("POST", "application/json",
                                         len(data))
        statuses = []

        def client():
            with fcgi_client.connect(addr) as c:
                c.settimeout(120)
                st, _, _ = fcgi_client.roundtrip(c, params, data, False)
                statuses.append(st)

        t0 = time.monotonic()
        for _ in range(a.rounds):
            fcgi_client.run_clients(client, a.clients)
        print("burst:        %s  (%d x %d bytes, %s, %.1f s)" % (
            status(srv.pid), a.clients, a.size,
            ",".join(sorted(set(str(x) for x in statuses))),
            time.monotonic() - t0))
        time.sleep(a.idle)
        print("after %3.0f s:  %s" % (a.idle, status(srv.pid)))
    finally:
        srv.terminate()
        srv.wait(30)
        log.close()
        subprocess.run(["rm", "-rf", d])
    return 0


if __name__ == "__main__":
    sys.exit(main())
