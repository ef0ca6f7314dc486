#!/usr/bin/env python3
"""What the end-to-end tests expect downstream, computed independently of
the C code from the contract (shared spec, "Event identity").

  e2e_check.py expect FILE...          ids of the events the request bodies
                                       carry (Validation left out), one a line
  e2e_check.py compare IDS RECEIVED    checks the receiver's JSON lines
                                       against the ids: every id arrived, no
                                       other, each body an event object
                                       without SecretKey; exit 1 if not

A FILE ending in .txt is a form body, anything else JSON.
"""
import hashlib
import json
import sys
import urllib.parse

FIELDS = ("Type", "ServerId", "MessageId", "MailingId", "Address",
          "DateTime", "TrackingType", "Url")


class Raw(str):
    """A JSON number's text."""


def events(path):
    raw = open(path, "rb").read().decode("utf-8")
    if path.endswith(".txt"):
        # A file's final newline is not part of the last value (slhook
        # trims it too: no encoder sends a raw one).
        pairs = urllib.parse.parse_qsl(raw.rstrip("\r\n"),
                                       keep_blank_values=True)
        return [dict(pairs)]
    # Numbers keep their JSON spelling: the identity hashes them as received.
    doc = json.loads(raw, parse_int=Raw, parse_float=Raw)
    if isinstance(doc, dict) and len(doc) == 1 and \
            next(iter(doc)).lower() == "data":
        doc = next(iter(doc.values()))
    return doc if isinstance(doc, list) else [doc]


def field(ev, name):
    for k, v in ev.items():
        if k.lower() == name.lower():
            if v is None:
                return ""
            if isinstance(v, str):
                return str(v)
            return json.dumps(v, separators=(",", ":"))
    return ""


def identity(ev):
    text = "|".join(field(ev, f) for f in FIELDS)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expect(files):
    seen = []
    for path in files:
        for ev in events(path):
            if field(ev, "Type").lower() == "validation":
                continue
            i = identity(ev)
            if i not in seen:
                seen.append(i)
    for i in seen:
        print(i)
    return 0


def compare(ids_path, received_path):
    want = set(open(ids_path).read().split())
    got = {}
    problems = []
    try:
        lines = open(received_path).read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        req = json.loads(line)
        hid = req["headers"].get("webhook-id", "")
        got[hid] = got.get(hid, 0) + 1
        if req["method"] != "POST":
            problems.append("%s: method %s" % (hid, req["method"]))
        ctype = req["headers"].get("content-type", "")
        if not ctype.startswith("application/json"):
            problems.append("%s: Content-Type %r" % (hid, ctype))
        try:
            body = json.loads(req["body"], parse_int=Raw, parse_float=Raw)
        except ValueError:
            problems.append("%s: body not JSON" % hid)
            continue
        if not isinstance(body, dict) or "data" in body:
            problems.append("%s: body not one unwrapped event" % hid)
            continue
        if any(k.lower() == "secretkey" for k in body):
            problems.append("%s: SecretKey relayed" % hid)
        if identity(body) != hid:
            problems.append("%s: body's identity is %s" % (hid, identity(body)))
    missing = want - set(got)
    extra = set(got) - want
    if missing:
        problems.append("%d of %d events missing" % (len(missing), len(want)))
    if extra:
        problems.append("%d unexpected ids" % len(extra))
    if problems:
        print("; ".join(problems[:8]))
        return 1
    print("%d events, %d posts" % (len(want), len(lines)))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "expect":
        return expect(argv[2:])
    if len(argv) == 4 and argv[1] == "compare":
        return compare(argv[2], argv[3])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
