#!/usr/bin/env python3
"""latency.py: accept-to-destination latency under light load, for bench/run.

    latency.py URL BODY_FILE SPOOL_DB SINK_LOG [-n N] [--gap MS] [--tag TAG]

Posts BODY_FILE (a single-event JSON fixture) N times, one at a time with
GAP ms between posts, each with a fresh MessageId TAG-i, over one kept-alive
connection. Then waits for every event to reach the sink (bench/sink -l
SINK_LOG logs the arrival time of each) and prints, in milliseconds, the
percentiles of:
  accepted->destination  sink arrival minus the event's spool `received`
                         time (the moment slhook stored it)
  post->destination      sink arrival minus the time the client sent it
  post->200              the client's own round trip
and one machine-readable line:
  RESULT n=N arrived=N p50_ms=.. p99_ms=.. max_ms=.. post_p50_ms=.. ack_p50_ms=..
"""
import argparse
import http.client
import re
import sqlite3
import sys
import time
import urllib.parse


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def read_arrivals(path, prefix):
    got = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].startswith(prefix):
                    got.setdefault(parts[1], int(parts[0]))
    except FileNotFoundError:
        pass
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("body")
    ap.add_argument("spool_db")
    ap.add_argument("sink_log")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--gap", type=float, default=20.0)
    ap.add_argument("--tag", default="lat%d" % int(time.time()))
    ap.add_argument("--wait", type=float, default=60.0)
    a = ap.parse_args()

    with open(a.body, encoding="utf-8") as f:
        template = f.read().strip()
    if len(re.findall(r'"MessageId":"[^"]*"', template)) != 1:
        sys.exit("latency.py: %s must hold exactly one MessageId" % a.body)
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    sent = {}
    acks = []
    for i in range(a.n):
        mid = "%s-%d" % (a.tag, i)
        body = re.sub(r'"MessageId":"[^"]*"', '"MessageId":"%s"' % mid,
                      template).encode()
        t0 = time.time_ns()
        conn.request("POST", u.path, body,
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        t1 = time.time_ns()
        if r.status != 200:
            sys.exit("latency.py: %s answered %d" % (a.url, r.status))
        sent[mid] = t0 // 1000
        acks.append((t1 - t0) / 1e6)
        time.sleep(a.gap / 1000.0)
    conn.close()

    end = time.time() + a.wait
    got = read_arrivals(a.sink_log, a.tag + "-")
    while len(got) < a.n and time.time() < end:
        time.sleep(0.2)
        got = read_arrivals(a.sink_log, a.tag + "-")

    db = sqlite3.connect("file:%s?mode=ro" % a.spool_db, uri=True, timeout=10)
    received = dict(db.execute(
        "SELECT json_extract(body, '$.MessageId'), received FROM event "
        "WHERE json_extract(body, '$.MessageId') LIKE ?", (a.tag + "-%",)))
    db.close()

    accepted = [(got[m] / 1000.0 - received[m]) for m in got if m in received]
    posted = [(got[m] - sent[m]) / 1000.0 for m in got if m in sent]
    for name, v in (("accepted->destination", accepted),
                    ("post->destination", posted), ("post->200", acks)):
        print("%-22s n=%d p50=%.2f ms p90=%.2f ms p99=%.2f ms max=%.2f ms" %
              (name, len(v), percentile(v, 50), percentile(v, 90),
               percentile(v, 99), max(v) if v else float("nan")))
    print("RESULT n=%d arrived=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
          "post_p50_ms=%.2f ack_p50_ms=%.2f" %
          (a.n, len(got), percentile(accepted, 50), percentile(accepted, 99),
           max(accepted) if accepted else float("nan"),
           percentile(posted, 50), percentile(acks, 50)))
    return 0 if len(got) == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
