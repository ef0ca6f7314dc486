#!/usr/bin/env python3
"""Keeps tools/install-deps honest (run by tests/t_deps.sh).

A green run on a machine where someone once installed a package by hand
hides a missing install step: lighttpd's mod_openssl lives in
lighttpd-mod-openssl, which install-deps did not list, and `make check`
failed on the next fresh machine. This reads what the tests, the benchmark,
the demo, CI and the shipped configs load, finds the Debian package that
provides each (dpkg -S), and checks that the package is one install-deps
installs: listed there, Essential, or pulled in by those through Depends.

What is read:
- programs: the first word of each shell command line and pipeline stage
  (after |, &&, ||, ;, $(, `exec`, `timeout N`, `env X=Y`, and the
  command `xargs OPTIONS` runs) in tests/*.sh,
  bench's scripts, tools/demo, .ci/run and the Makefile's recipes, and the
  programs Python tests start (["prog", ...] / "prog" in subprocess calls);
  a word counts when it is a program on PATH and not a shell builtin;
- lighttpd modules: every "mod_NAME" in lighttpd configs and scripts: a
  .so in /usr/lib/lighttpd, or built into the lighttpd binary;
- Apache modules: `a2enmod` lines of apache/*.conf and the modules
  tests/t_e2e_apache.sh loads (its `for m in` list and apache_conf
  arguments);
- Python modules imported by tests/*.py and bench/*.py.
Every check prints ok/FAIL; the last line is "N passed, N failed".
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
passed = failed = 0


def ok(desc):
    global passed
    passed += 1
    if os.environ.get("VERBOSE"):
        print("ok: " + desc)


def nok(desc):
    global failed
    failed += 1
    print("FAIL: " + desc)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def files(pattern_dir, suffixes):
    d = os.path.join(ROOT, pattern_dir)
    out = []
    for name in sorted(os.listdir(d)):
        if any(name.endswith(s) for s in suffixes) or "" in suffixes and \
                "." not in name:
            out.append(os.path.join(pattern_dir, name))
    return out


# --- what install-deps installs -------------------------------------------

def listed_packages():
    text = read("tools/install-deps")
    m = re.search(r'^PACKAGES="\n(.*?)^"', text, re.S | re.M)
    if m is None:
        nok("install-deps has a PACKAGES list")
        return set()
    ok("install-deps has a PACKAGES list")
    return set(m.group(1).split())


def installed_db():
    """{package: (essential, [[alternatives], ...])} of installed packages."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f",
         "${Package}\t${Essential}\t${Pre-Depends}\t${Depends}\t"
         "${db:Status-Status}\n"],
        capture_output=True, text=True, check=True).stdout
    db = {}
    for line in out.splitlines():
        name, essential, pre, dep, status = line.split("\t")
        if status != "installed":
            continue
        groups = []
        for part in (pre + "," + dep).split(","):
            alts = [re.sub(r"[ (:].*", "", a.strip())
                    for a in part.split("|") if a.strip()]
            if alts:
                groups.append(alts)
        db[name] = (essential == "yes", groups)
    return db


def closure(roots, db):
    """Installed packages reachable from roots through (Pre-)Depends."""
    seen, todo = set(), list(roots)
    provides = {}
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Provides}\n"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        name, prov = line.split("\t")
        for p in prov.split(","):
            p = re.sub(r"[ (].*", "", p.strip())
            if p:
                provides.setdefault(p, []).append(name)
    while todo:
        p = todo.pop()
        if p in seen or p not in db:
            continue
        seen.add(p)
        for alts in db[p][1]:
            for a in alts:
                for real in [a] + provides.get(a, []):
                    if real in db and real not in seen:
                        todo.append(real)
    return seen


def owner(path):
    """The package dpkg says provides path (trying /usr-merged twins)."""
    candidates = [path, os.path.realpath(path)]
    for c in list(candidates):
        if c.startswith("/usr/"):
            candidates.append(c[4:])
        else:
            candidates.append("/usr" + c)
    for c in candidates:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode != 0:
            continue
        for line in r.stdout.splitlines():
            if not line.startswith("diversion"):
                return line.split(":")[0].split(",")[0].strip()
    return None


# --- what the tests load ---------------------------------------------------

SHELL_WORDS = set("""
if then else elif fi for while until do done case esac in function return
break continue local export unset set shift trap wait read eval exec exit
cd echo printf test true false command type umask ulimit source alias
kill pwd getopts hash times
""".split())


def strip_comment(line):
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;"):
            break
        out.append(ch)
    return "".join(out)


def command_words(text):
    """First words of commands in shell text (heuristic, see the top)."""
    words = set()
    heredoc = None
    for raw in text.splitlines():
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", raw)
        line = strip_comment(raw)
        for seg in re.split(r"\|\||&&|[|;&]|\$\(|`|\bthen\b|\bdo\b|\belse\b",
                            line):
            toks = seg.split()
            while toks and (re.match(r"^\w+=", toks[0]) or
                            toks[0] in ("exec", "env", "!", "nohup",
                                        "{", "(", "time")):
                toks = toks[1:]
            if toks and toks[0] == "timeout":
                toks = toks[2:] if len(toks) > 2 else []
            if len(toks) > 1 and toks[1] == "=":
                continue  # an INI line inside a quoted string: "file = x"
            if toks and toks[0] == "xargs":
                # xargs is a program, and so is the command it runs.
                words.add("xargs")
                toks = toks[1:]
                while toks and toks[0].startswith("-"):
                    opt = toks.pop(0)
                    if opt in ("-n", "-P", "-I", "-L", "-s", "-d", "-E",
                               "-a") and toks:
                        toks.pop(0)
            if toks and re.fullmatch(r"[a-z][a-z0-9_.+-]*", toks[0]):
                words.add(toks[0])
        if m is not None:
            heredoc = m.group(1)
    return words


def makefile_words(text):
    words = set()
    for line in text.splitlines():
        if line.startswith("\t"):
            words |= command_words(line.lstrip("\t@-"))
    return words


def python_programs(text):
    progs = set()
    for m in re.finditer(r"\[\s*[\"']([a-z][a-z0-9_.+-]*)[\"']\s*,", text):
        progs.add(m.group(1))
    return progs


def python_imports(text):
    mods = set()
    for m in re.finditer(r"^\s*(?:import|from)\s+([a-zA-Z_][\w]*)", text, re.M):
        mods.add(m.group(1))
    return mods


def debian_paths(word):
    """Where a fresh Debian machine would find the program word: the system
    directories only (a developer's own PATH, pyenv's python3 say, is not
    what CI's fresh machine has). None when word is no program anywhere on
    PATH; [] when it is one, but only outside the system directories."""
    if shutil.which(word) is None:
        return None
    return [p for p in (os.path.join(d, word) for d in SYSTEM_PATH)
            if os.access(p, os.X_OK)]


# Programs a test uses only where they are installed, saying so in a line
# of its own where they are not; never Debian packages, so never listed.
OPTIONAL = {
    "duplicates": "this workplace's repeated-code finder; tests/t_structure.sh"
                  " says NOT CHECKED without it",
}

SYSTEM_PATH = "/usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin" \
    .split()
PYTHON = "/usr/bin/python3"


def main():
    listed = listed_packages()
    db = installed_db()
    for p in sorted(listed):
        if p in db:
            ok("listed package %s is installed" % p)
        else:
            nok("listed package %s is installed (run tools/install-deps)" % p)
    essential = {p for p, (e, _) in db.items() if e}
    allowed = closure(listed | essential, db)

    def need(what, path):
        if path is None:
            nok("%s is present" % what)
            return
        pkg = owner(path)
        if pkg is None:
            nok("%s (%s) belongs to a Debian package" % (what, path))
        elif pkg in allowed:
            ok("%s (%s) comes with %s" % (what, path, pkg))
        else:
            nok("%s (%s) comes with %s, which install-deps does not install"
                % (what, path, pkg))

    # Programs.
    shell_files = (files("tests", [".sh"]) + ["tests/run", "bench/run",
                   "bench/ab", "bench/contended", "tools/demo", ".ci/run"])
    words = set()
    for f in shell_files:
        words |= command_words(read(f))
    words |= makefile_words(read("Makefile"))
    py_files = files("tests", [".py"]) + files("bench", [".py"])
    for f in py_files:
        words |= python_programs(read(f))
    own = {"slhook", "slhook.cgi", "slhook-pg.cgi", "slhook.fcgi"}
    for w in sorted(words & set(OPTIONAL)):
        ok("program %s is optional: %s" % (w, OPTIONAL[w]))
    for w in sorted(words - SHELL_WORDS - own - set(OPTIONAL)):
        paths = debian_paths(w)
        if paths is None:
            continue  # not a program: a function, a variable, a word
        need("program %s" % w, paths[0] if paths else None)

    # lighttpd modules.
    lfiles = (files("lighttpd", [".conf"]) + files("tests", [".sh"]) +
              ["bench/lighttpd.conf.in", "tools/demo"])
    lmods = set()
    for f in lfiles:
        lmods |= set(re.findall(r'"(mod_[a-z0-9_]+)"', read(f)))
    lighttpd = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
    builtin = b""
    if os.path.exists(lighttpd):
        with open(lighttpd, "rb") as f:
            builtin = f.read()
    if not lmods:
        nok("lighttpd modules found in the configs")
    for m in sorted(lmods):
        so = "/usr/lib/lighttpd/%s.so" % m
        if os.path.exists(so):
            need("lighttpd module %s" % m, so)
        elif (m + "_plugin_init").encode() in builtin:
            ok("lighttpd module %s is built into lighttpd" % m)
        else:
            nok("lighttpd module %s is present (neither %s nor built in)"
                % (m, so))

    # Apache modules.
    amods = set()
    for f in files("apache", [".conf"]):
        for m in re.finditer(r"a2enmod\s+([\w ]+)", read(f)):
            amods |= set(m.group(1).split())
    t = read("tests/t_e2e_apache.sh")
    for m in re.finditer(r"for m in ([\w ]+)", t):
        amods |= set(m.group(1).split())
    for m in re.finditer(r'^apache_conf\s+"?([\w ]+)"?', t, re.M):
        amods |= set(m.group(1).split())
    if not amods:
        nok("Apache modules found in the configs")
    for m in sorted(amods):
        need("Apache module %s" % m, "/usr/lib/apache2/modules/mod_%s.so" % m
             if os.path.exists("/usr/lib/apache2/modules/mod_%s.so" % m)
             else None)

    # Python modules.
    mods = set()
    for f in py_files:
        mods |= python_imports(read(f))
    for f in files("tests", [".sh"]):
        for m in re.finditer(r"python3 -c '(.*?)'", read(f), re.S):
            mods |= python_imports(m.group(1))
    local = {os.path.splitext(os.path.basename(f))[0] for f in py_files}
    for m in sorted(mods - local):
        r = subprocess.run(
            [PYTHON, "-c",
             "import %s, sys; print(getattr(%s, '__file__', '') or '')"
             % (m, m)], capture_output=True, text=True)
        if r.returncode != 0:
            nok("python3 module %s imports" % m)
        elif r.stdout.strip() == "":
            ok("python3 module %s is built into python3" % m)
        else:
            need("python3 module %s" % m, r.stdout.strip())

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
