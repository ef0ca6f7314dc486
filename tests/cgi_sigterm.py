"""Runs slhook.cgi N times as lighttpd does: SIGTERM as soon as its stdout
ends. Each request is a new event (fresh MessageId). Prints how many runs
left no log line."""
import json
import os
import signal
import subprocess
import sys

cgi, conf, template, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
event = json.load(open(template))
lost = 0
for i in range(n):
    event["MessageId"] = "sigterm-%d" % i
    body = json.dumps(event).encode()
    env = dict(os.environ, SLHOOK_CONFIG=conf, GATEWAY_INTERFACE="CGI/1.1",
               REQUEST_METHOD="POST", CONTENT_TYPE="application/json",
               CONTENT_LENGTH=str(len(body)))
    p = subprocess.Popen([cgi], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdin.write(body)
    p.stdin.close()
    while p.stdout.read(65536):
        pass
    os.kill(p.pid, signal.SIGTERM)
    if b"slhook: 200" not in p.stderr.read():
        lost += 1
    p.wait()
print(lost)
