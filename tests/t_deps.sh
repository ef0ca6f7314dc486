#!/bin/sh
# install-deps against what the tests, the benchmark, the demo, CI and the
# shipped configs load: each program, server module and Python module comes
# with a Debian package that install-deps installs (tests/deps_check.py).
exec python3 "$(dirname "$0")/deps_check.py"
