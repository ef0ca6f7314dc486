#!/usr/bin/env python3
"""Load and tally for the reliability tests (Python 3 stdlib only).

  load_client.py load ADDR --template FILE... --events N [--clients C]
                 [--batch K] [--tag TAG] [--ok-log FILE] [--give-up S]
      Sends N distinct events over FastCGI (tests/fcgi_client.py) from C
      parallel clients, 1 to K events per request (a JSON array when more
      than one), cycling through the templates, MessageId TAG-i. Like
      SocketLabs, a request that gets no 200 (503, connection refused or
      cut by a responder killed mid-request) is sent again, the same
      bytes, until it gets a 200 or S seconds (default 120) have passed
      since the load began. Each 200 appends "MessageId Type" for every
      event of the request to the ok-log at once. Prints a summary line.

  load_client.py tally --ok-log FILE --receiver-log FILE --dest NAME
                 [--file FILE --file-types T,T] [--spool DB] [--since T]
      Counts what the crash test reports: events answered 200, delivered
      (unique webhook-id among the receiver's records for destination NAME,
      tests/receiver.py logging a post once it has read the whole body;
      unique MessageId among the lines of FILE, only Types in T,T wanted),
      lost (a 200'd event missing from a destination that wants it),
      duplicates (posts or lines beyond the first), torn lines; with
      --spool, the 200'd events missing from the spool and the delivery
      rows not delivered, dead, or attempted more than once. With --since
      (unix seconds), for the hook: the seconds from T to the first post
      of the 200'd event that got there last, and how many first got
      there more than 10 s after T ("late": those a restart left waiting).
      Prints "key value" lines; exit 1 when anything is lost.
"""
import argparse
import collections
import json
import os
import random
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi_client  # noqa: E402


def cmd_load(a):
    templates = []
    for path in a.template:
        with open(path) as f:
            templates.append(json.load(f))
    lock = threading.Lock()
    next_i = [0]
    counts = collections.Counter()
    oklog = open(a.ok_log, "a") if a.ok_log else None
    t0 = time.monotonic()
    rnd = random.Random(a.seed)

    def take():
        with lock:
            i = next_i[0]
            if i >= a.events:
                return None
            k = min(rnd.randint(1, a.batch), a.events - i)
            next_i[0] = i + k
        evs = []
        for j in range(i, i + k):
            e = dict(templates[j % len(templates)])
            e["MessageId"] = "%s-%d" % (a.tag, j)
            evs.append(e)
        return evs

    def send(body):
        params = fcgi_client.make_params("POST", "application/json", len(body))
        s = fcgi_client.connect(a.addr)
        try:
            s.settimeout(a.timeout)
            status, _, _ = fcgi_client.roundtrip(s, params, body, False)
        finally:
            s.close()
        return status

    def client():
        while True:
            evs = take()
            if evs is None:
                return
            one = evs[0] if len(evs) == 1 else evs
            body = json.dumps(one, separators=(",", ":")).encode()
            tries = 0
            while True:
                tries += 1
                try:
                    status = send(body)
                except OSError as e:
                    status = type(e).__name__
                with lock:
                    counts[status] += 1
                    if tries > 1:
                        counts["retried"] += 1
                    if status == 200:
                        counts["events_acked"] += len(evs)
                        if oklog:
                            oklog.write("".join(
                                "%s %s\n" % (e["MessageId"], e["Type"])
                                for e in evs))
                            oklog.flush()
                if status == 200:
                    break
                if time.monotonic() - t0 > a.give_up:
                    with lock:
                        counts["events_given_up"] += len(evs)
                    break
                time.sleep(0.02 + 0.08 * random.random())

    fcgi_client.run_clients(client, a.clients)
    secs = time.monotonic() - t0
    answers = sum(v for k, v in counts.items() if k not in (
        "retried", "events_acked", "events_given_up"))
    print("events %d acked %d requests %d ok %d seconds %.1f [%s]" % (
        a.events, counts["events_acked"], answers, counts[200], secs,
        fcgi_client.counts_detail(counts)), flush=True)
    return 0 if counts["events_given_up"] == 0 else 1


def read_jsonl(path):
    """Parsed lines, and the number of lines that are not JSON objects."""
    out, torn = [], 0
    if not path or not os.path.exists(path):
        return out, torn
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    out.append(obj)
                    continue
            except ValueError:
                pass
            torn += 1
    return out, torn


def cmd_tally(a):
    acked = {}
    with open(a.ok_log) as f:
        for line in f:
            mid, _, typ = line.strip().partition(" ")
            acked[mid] = typ
    recs, torn_recv = read_jsonl(a.receiver_log)
    posts = collections.Counter()
    hook = {}  # MessageId: when first posted
    for r in recs:
        if r.get("name") != a.dest:
            continue
        wid = r["headers"].get("webhook-id", "")
        posts[wid] += 1
        try:
            mid = json.loads(r["body"])["MessageId"]
            hook[mid] = min(hook.get(mid, r["time"]), r["time"])
        except (ValueError, KeyError):
            pass
    out = collections.OrderedDict()
    out["acked"] = len(acked)
    out["hook_delivered"] = len(posts)
    out["hook_duplicates"] = sum(posts.values()) - len(posts)
    lost_hook = [m for m in acked if m not in hook]
    out["hook_lost"] = len(lost_hook)
    if a.since is not None:
        got = [hook[m] for m in acked if m in hook]
        out["hook_last_after"] = "%.1f" % (max(got) - a.since if got else 0)
        out["hook_late"] = sum(1 for t in got if t > a.since + 10)
    lost_file = []
    if a.file:
        types = set(a.file_types.split(",")) if a.file_types else None
        lines, torn = read_jsonl(a.file)
        seen = collections.Counter(x.get("MessageId") for x in lines)
        wanted = [m for m, t in acked.items() if types is None or t in types]
        lost_file = [m for m in wanted if m not in seen]
        out["file_wanted"] = len(wanted)
        out["file_delivered"] = len(seen)
        out["file_duplicates"] = sum(seen.values()) - len(seen)
        out["file_lost"] = len(lost_file)
        out["file_torn"] = torn
        out["file_unwanted"] = sum(
            1 for x in lines if types is not None and x.get("Type") not in types)
    out["lost"] = len(lost_hook) + len(lost_file)
    out["duplicates"] = out["hook_duplicates"] + out.get("file_duplicates", 0)
    if a.spool:
        db = sqlite3.connect(a.spool, timeout=10)
        stored = set(m for (m,) in db.execute(
            "SELECT json_extract(body, '$.MessageId') FROM event"))
        out["spool_missing"] = sum(1 for m in acked if m not in stored)
        out["rows_not_delivered"] = db.execute(
            "SELECT count(*) FROM delivery WHERE state != 1").fetchone()[0]
        out["rows_dead"] = db.execute(
            "SELECT count(*) FROM delivery WHERE state = 2").fetchone()[0]
        out["rows_reattempted"] = db.execute(
            "SELECT count(*) FROM delivery WHERE attempts > 1").fetchone()[0]
        db.close()
    for k, v in out.items():
        print(k, v)
    for m in (lost_hook + lost_file)[:10]:
        print("lost:", m, acked[m], file=sys.stderr)
    return 1 if out["lost"] else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("addr")
    ld.add_argument("--template", action="append", required=True)
    ld.add_argument("--events", type=int, default=1000)
    ld.add_argument("--clients", type=int, default=8)
    ld.add_argument("--batch", type=int, default=1)
    ld.add_argument("--tag", default="load")
    ld.add_argument("--ok-log")
    ld.add_argument("--give-up", type=float, default=120.0)
    ld.add_argument("--timeout", type=float, default=10.0)
    ld.add_argument("--seed", type=int)
    t = sub.add_parser("tally")
    t.add_argument("--ok-log", required=True)
    t.add_argument("--receiver-log", required=True)
    t.add_argument("--dest", required=True)
    t.add_argument("--file")
    t.add_argument("--file-types")
    t.add_argument("--spool")
    t.add_argument("--since", type=float)
    a = p.parse_args()
    return {"load": cmd_load, "tally": cmd_tally}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
