#!/bin/sh
# `make install` into a DESTDIR puts every file where the man pages and
# configs say, with paths rewritten for the PREFIX; the programs run; the
# man pages render cleanly; the systemd units verify; the example
# slhook.conf is refused as shipped (no secret) and accepted with every
# example key; `make uninstall` removes everything but the config.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
pass=0
fail=0
check() {
    desc=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
        echo "ok: $desc"
    else
        fail=$((fail + 1))
        echo "FAIL: $desc"
    fi
}

T=$(mktemp -d "${TMPDIR:-/tmp}/slhook-install.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
DEST=$T/root

# B is an absolute path here; the Makefile takes it as the build directory.
if ! make -s -C "$ROOT" install DESTDIR="$DEST" PREFIX=/usr B="$B" \
    >"$T/install.log" 2>&1; then
    cat "$T/install.log"
    echo "FAIL: make install"
    echo "0 passed, 1 failed"
    exit 1
fi
check "make install" true

# has MODE PATH: a regular file with that mode.
has() {
    [ -f "$DEST$2" ] && [ ! -L "$DEST$2" ] &&
        [ "$(stat -c %a "$DEST$2")" = "$1" ]
}
for f in /usr/bin/slhook /usr/lib/slhook/slhook.cgi \
    /usr/lib/slhook/slhook-pg.cgi /usr/lib/slhook/slhook.fcgi; do
    check "$f, mode 755" has 755 "$f"
done
# slhook.cgi carries the slhook it starts: nothing to link beside it.
check "no /usr/lib/slhook/slhook beside the handlers" \
    test ! -e "$DEST/usr/lib/slhook/slhook" -a ! -L "$DEST/usr/lib/slhook/slhook"
for f in /usr/share/man/man1/slhook.1 /usr/share/man/man5/slhook.conf.5 \
    /usr/share/man/man8/slhook.cgi.8 /usr/share/man/man8/slhook.fcgi.8 \
    /usr/lib/systemd/system/slhook-fcgi.socket \
    /usr/lib/systemd/system/slhook-fcgi.service \
    /usr/lib/systemd/system/slhook-deliver.service \
    /usr/lib/tmpfiles.d/slhook.conf \
    /usr/share/doc/slhook/examples/slhook.conf \
    /usr/share/doc/slhook/examples/apache/slhook-cgi.conf \
    /usr/share/doc/slhook/examples/apache/slhook-fcgid.conf \
    /usr/share/doc/slhook/examples/apache/slhook-proxy-fcgi.conf \
    /usr/share/doc/slhook/examples/lighttpd/50-slhook-cgi.conf \
    /usr/share/doc/slhook/examples/lighttpd/50-slhook-fastcgi.conf \
    /usr/share/doc/slhook/examples/lighttpd/50-slhook-spawn-fcgi.conf \
    /usr/share/doc/slhook/examples/nginx/slhook.conf; do
    check "$f, mode 644" has 644 "$f"
done
check "/etc/slhook/slhook.conf, mode 640" has 640 /etc/slhook/slhook.conf
n=$(find "$DEST" -type f -o -type l | wc -l)
check "nothing else installed ($n files)" test "$n" -eq 21

check "no /usr/local left in installed text files" \
    sh -c "! grep -rIl /usr/local '$DEST'"
check "configs name the installed handlers" \
    grep -q '^ *ScriptAlias /slhook /usr/lib/slhook/slhook.cgi$' \
    "$DEST/usr/share/doc/slhook/examples/apache/slhook-cgi.conf"
check "units name the installed programs" \
    grep -q '^ExecStart=/usr/bin/slhook -c /etc/slhook/slhook.conf deliver$' \
    "$DEST/usr/lib/systemd/system/slhook-deliver.service"

check "installed slhook runs" \
    test "$("$DEST/usr/bin/slhook" --version)" = "slhook $(sed -n \
        's/^VERSION = //p' "$ROOT/Makefile")"
check "installed slhook.fcgi runs" \
    sh -c "'$DEST/usr/lib/slhook/slhook.fcgi' --help >/dev/null"
check "installed slhook.cgi runs" \
    sh -c "'$DEST/usr/lib/slhook/slhook.cgi' --help >/dev/null"

# groff -ww: every warning; the .so link resolves from the man directory.
render() {
    if ! (cd "$DEST/usr/share/man" &&
        LC_ALL=C.UTF-8 groff -mandoc -Tutf8 -ww "$1" 2>"$T/groff.err" \
            >"$T/groff.out") || [ -s "$T/groff.err" ]; then
        cat "$T/groff.err"
        return 1
    fi
    grep -q "$2" "$T/groff.out"
}
check "man slhook renders without warnings" render man1/slhook.1 'deliver'
check "man slhook.conf renders without warnings" \
    render man5/slhook.conf.5 'allow_from'
check "man slhook.cgi renders without warnings" \
    render man8/slhook.cgi.8 'FastCGI'
check "man slhook.fcgi is slhook.cgi's page" render man8/slhook.fcgi.8 'FastCGI responder'

# From the repository too, as a reader of a checkout would open them: `man
# -l` resolves a .so request from the current directory, not the page's.
man_l() {
    (cd "$T" && LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$ROOT/man/$1" \
        2>"$T/man.err" >"$T/man.out") && ! [ -s "$T/man.err" ] &&
        grep -q "$2" "$T/man.out" || { cat "$T/man.err"; return 1; }
}
check "man -l man/slhook.fcgi.8 from elsewhere" man_l slhook.fcgi.8 'FastCGI responder'
for page in slhook.1 slhook.conf.5 slhook.cgi.8; do
    check "man -l man/$page" man_l "$page" 'slhook'
done
# Debian 12 has no sudo unless someone installs it; runuser is in util-linux.
check "no man page or example tells to use sudo" \
    sh -c "! grep -rn 'sudo' '$ROOT/man' '$ROOT/README.md' '$ROOT/etc' \
        '$ROOT/apache' '$ROOT/lighttpd' '$ROOT/nginx' '$ROOT/systemd'"

# The units, pointed at the installed programs in DESTDIR, verify without a
# word (unknown keys are only warnings).
verify_units() {
    mkdir -p "$T/units"
    for u in "$DEST"/usr/lib/systemd/system/*; do
        sed "s|=/usr/|=$DEST/usr/|" "$u" >"$T/units/${u##*/}"
    done
    if ! systemd-analyze verify --man=no "$T/units"/* >"$T/verify.log" 2>&1 ||
        [ -s "$T/verify.log" ]; then
        cat "$T/verify.log"
        return 1
    fi
}
if command -v systemd-analyze >/dev/null 2>&1; then
    check "systemd units verify" verify_units
else
    check "systemd-analyze is installed (tools/install-deps)" false
fi

# The example config: refused as shipped, accepted with every key.
conf=$DEST/etc/slhook/slhook.conf
"$DEST/usr/bin/slhook" -c "$conf" check >"$T/check.out" 2>&1
rc=$?
check "shipped slhook.conf is refused until a secret is set" \
    sh -c "[ $rc -eq 1 ] && grep -q 'needs secret_key' '$T/check.out'"
echo "example-key-from-a-file" >"$T/secret"
# ca_file, client_cert and client_key must name readable files.
mkdir -p "$T/tls"
for f in private-ca.pem crm-client.pem crm-client.key; do : >"$T/tls/$f"; done
sed -E -e 's/^;([a-z_]+ = )/\1/' -e 's/^;(\[destination )/\1/' \
    -e "s|/etc/slhook/secret|$T/secret|" -e "s|/etc/slhook/tls/|$T/tls/|" \
    -e "s|/var/spool/slhook|$T/spool|" -e "s|/var/log/slhook/|$T/|" \
    "$conf" >"$T/all.conf"
check "every example key of slhook.conf is accepted" \
    sh -c "'$DEST/usr/bin/slhook' -c '$T/all.conf' check >'$T/check.out' 2>&1 ||
        { cat '$T/check.out'; false; }"
check "... two keys and both destinations" \
    grep -q '2 secret key(s), 2 destination(s)' "$T/check.out"

# Installing again keeps an edited config.
echo "; edited" >>"$conf"
make -s -C "$ROOT" install DESTDIR="$DEST" PREFIX=/usr B="$B" \
    >"$T/install2.log" 2>&1
check "install again keeps /etc/slhook/slhook.conf" \
    grep -q '^; edited$' "$conf"

make -s -C "$ROOT" uninstall DESTDIR="$DEST" PREFIX=/usr B="$B" \
    >"$T/uninstall.log" 2>&1
check "make uninstall" test $? -eq 0
left=$(cd "$DEST" && find . -type f -o -type l)
check "uninstall leaves only the config (left: $(echo "$left" | tr '\n' ' '))" \
    test "$left" = ./etc/slhook/slhook.conf

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
