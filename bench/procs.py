#!/usr/bin/env python3
"""bench/procs.py: the CPU every process of the machine used between two
snapshots, grouped by what it is, per request (bench/run's pg-profile).

  procs.py snap FILE        every process's CPU ticks now, into FILE
  procs.py diff A B N       CPU used from snapshot A to B, grouped, in
                            microseconds per request of N requests (the
                            busiest groups, then all)

Groups: a postgres backend by "user database" (its title's first words,
without the statement or state it shows), every other postgres process by
its title (walwriter, checkpointer...), a kernel worker as "kworker" (its
name changes with the work queue it last ran), any other process by its
command name. A process is the same in A and B when its pid and start time
are: a pid reused, or a process new since A, counts all its CPU. A process
that ended between the snapshots is missing from B: its CPU is not counted
(its parent's reaped-children time has it).
"""
import os
import sys

HZ = os.sysconf("SC_CLK_TCK")
TOP = 14  # groups printed, the busiest


def group(pid):
    """What the process is, for grouping; None when it is gone."""
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        with open("/proc/%s/comm" % pid) as f:
            comm = f.read().strip()
    except OSError:
        return None
    title = argv[0].decode("utf-8", "replace")
    if title.startswith("postgres: "):
        words = title.split()
        if "[local]" in words:  # a client's backend: user, database
            return " ".join(words[: words.index("[local]")])
        return title.strip()
    if comm == "postgres":
        return "postgres (postmaster)"
    if comm.startswith("kworker/"):
        return "kworker"
    return comm


def snap(path):
    with open(path, "w") as out:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            who = "%s.%s" % (pid, fields[19])  # pid.starttime
            g = group(pid)
            if g is not None:
                out.write("%s\t%d\t%s\n" % (who, ticks, g))


def load(path):
    procs = {}
    with open(path) as f:
        for line in f:
            who, ticks, g = line.rstrip("\n").split("\t")
            procs[who] = (int(ticks), g)
    return procs


def diff(a, b, n):
    before, after = load(a), load(b)
    used, count = {}, {}
    for who, (ticks, g) in after.items():
        d = ticks - before.get(who, (0, g))[0]
        used[g] = used.get(g, 0) + d
        count[g] = count.get(g, 0) + (1 if d > 0 else 0)
    total = sum(used.values())
    for g, t in sorted(used.items(), key=lambda kv: -kv[1])[:TOP]:
        if t == 0:
            continue
        us = t * 1e6 / HZ / n
        print("  %-44s %7.1f us a request  %5.1f %%  (%d busy)"
              % (g, us, 100.0 * t / total if total else 0, count[g]))
    print("  %-44s %7.1f us a request" % ("all", total * 1e6 / HZ / n))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "snap":
        snap(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], max(int(sys.argv[4]), 1))
    else:
        sys.exit(__doc__)
