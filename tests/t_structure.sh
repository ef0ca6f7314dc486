#!/bin/sh
# t_structure.sh: the structure that issue 15 asks for, checked on the tree
# as it is (ARCHITECTURE.md says why each rule exists). One line a check,
# naming the offenders:
#   (a) the front ends (cgi/ fcgi/ cli/ front/) include none of sqlite3.h,
#       libpq-fe.h and curl/curl.h: storage and transport are lib/'s;
#   (b) no public lib header mentions sqlite3 or an SQLITE_ code, nor libpq
#       (a spool backend must not drag its library's types along);
#       INTERNAL_HEADERS are exempt;
#   (c) no function in lib/ cgi/ fcgi/ cli/ front/ *.c is over MAX_FN lines,
#       counted from its column-0 `name(` line to its column-0 `}`, both
#       included (clang-format's layout: the return type on a line of its
#       own); the counter checks itself on a made-up file first;
#   (d) no lib/*.c is over MAX_FILE lines;
#   (e) `duplicates` finds no pair with both sides in those folders. It is
#       this workplace's tool, not a Debian package: where it is missing the
#       check says so and counts neither passed nor failed;
#   (f) every tests/t_*.sh is executable as git keeps it.
. "$(dirname "$0")/lib.sh"
lib_init structure

CORE_DIRS="lib cgi fcgi cli front"
FRONT_DIRS="cgi fcgi cli front"
# The backends' own headers, each included by its .c files alone.
INTERNAL_HEADERS="lib/store_sqlite.h lib/store_pg.h"
MAX_FN=80
MAX_FILE=700

cd "$ROOT" || abort "cd $ROOT"

# say_ok DESC: a passed check, printed always (each check is one line).
say_ok() {
    pass=$((pass + 1))
    echo "ok: $1"
}

# verdict DESC OFFENDERS: passes when OFFENDERS is empty, else names them.
verdict() {
    if [ -z "$2" ]; then
        say_ok "$1"
    else
        nok "$1: $(echo "$2" | tr '\n' ' ' | sed 's/ *$//')"
    fi
}

# Existing files of the given folders matching a pattern (a folder may not
# exist yet, e.g. front/ on an old tree).
sources() { # PATTERN DIR...
    pat=$1
    shift
    for d in "$@"; do
        [ -d "$d" ] || continue
        find "$d" -maxdepth 1 -type f -name "$pat"
    done | sort
}

# fn_lengths FILE...: "file:line name length" for each function definition.
# A definition starts at a column-0 `name(` line and is one only if a
# column-0 `{` comes before a `;` ends the line (else it was a prototype or
# a top-level macro call). It ends where its braces balance again, on its
# column-0 `}`: a `}` in column 0 inside an initializer does not end it, and
# braces inside a #define (and its backslash lines), a comment, a string or
# a character constant are not counted.
fn_lengths() {
    awk '
    # code(line): line without comments, strings and character constants;
    # incomment carries an open block comment over to the next line.
    function code(line,    out, i, c, q) {
        out = ""
        for (i = 1; i <= length(line); i++) {
            c = substr(line, i, 1)
            if (incomment) {
                if (c == "*" && substr(line, i + 1, 1) == "/") {
                    incomment = 0
                    i++
                }
                continue
            }
            if (c == "/" && substr(line, i + 1, 1) == "*") {
                incomment = 1
                i++
                continue
            }
            if (c == "/" && substr(line, i + 1, 1) == "/")
                break
            if (c == "\"" || c == "\047") {
                q = c
                for (i++; i <= length(line); i++) {
                    c = substr(line, i, 1)
                    if (c == "\\") i++
                    else if (c == q) break
                }
                out = out q q
                continue
            }
            out = out c
        }
        return out
    }
    FNR == 1 { state = 0; cont = 0; incomment = 0 }
    {
        raw = $0
        inmacro = cont || (!incomment && raw ~ /^[ \t]*#/)
        cont = (raw ~ /\\$/)
        if (inmacro) next
        wascomment = incomment
        line = code(raw)
        if (state == 0 && !wascomment && line ~ /^[A-Za-z_][A-Za-z0-9_]*\(/) {
            name = line
            sub(/\(.*/, "", name)
            start = FNR
            state = 1
        }
        if (state == 1) {
            if (line ~ /^\{/) {
                state = 2
                depth = 0
            } else {
                if (line ~ /;[ \t]*$/) state = 0
                next
            }
        }
        if (state == 2) {
            depth += gsub(/\{/, "{", line) - gsub(/\}/, "}", line)
            if (depth <= 0) {
                printf "%s:%d %s %d\n", FILENAME, start, name, FNR - start + 1
                state = 0
            }
        }
    }' "$@"
}

# The counter on a made-up file whose lengths are known: a prototype over
# two lines, a top-level macro call, an initializer closing at column 0, a
# macro with a column-0 `}`, a comment with one; in a function, a macro, a
# comment and an unformatted initializer with one, braces in a string, a
# character constant and a // comment; and a function after them.
cat >"$T/made_up.c" <<'EOF'
static int
proto(int a,
      int b);
SLH_ASSERT(sizeof(int) == 4);
static const struct x table[] = {
    {1, 2},
};
static int
five(void)
{
    return 5;
}
#define BLOCK(x) \
    do { \
} while (0)
/* a comment
}
 */
int
with_macro(int v)
{
#define CLOSE(y) \
    y; \
}
    int t[] = {
        1,
    };
    /*
}
    */
    /* clang-format off */
    int u[] = {
1,
};
    /* clang-format on */
    const char *s = "}\"}"; // }
    char c = '}';
    return v + t[0] + u[0] + s[0] + c;
}
static int
after(void)
{
    return 0;
}
EOF
got=$(fn_lengths "$T/made_up.c" | sed "s|^$T/||" | tr '\n' ';')
want="made_up.c:9 five 4;made_up.c:20 with_macro 20;made_up.c:41 after 4;"
if [ "$got" = "$want" ]; then
    say_ok "the function counter counts a made-up file right: $want"
else
    nok "the function counter on a made-up file: want '$want', got '$got'"
fi

# (a)
inc=$(for f in $(sources '*.[ch]' $FRONT_DIRS); do
    grep -lE '^[ \t]*#[ \t]*include[ \t]*[<"](sqlite3\.h|libpq-fe\.h|curl/curl\.h)[>"]' "$f"
done)
verdict "(a) no front end ($FRONT_DIRS) includes sqlite3.h, libpq-fe.h or curl/curl.h" \
    "$inc"

# (b)
pub=$(for f in $(sources '*.h' lib); do
    case " $INTERNAL_HEADERS " in *" $f "*) continue ;; esac
    grep -qE 'sqlite3|SQLITE3|SQLITE_[A-Z]|libpq|PGconn|PGresult' "$f" &&
        echo "$f"
done)
verdict "(b) no public lib header mentions sqlite3 or libpq (exempt: $INTERNAL_HEADERS)" \
    "$pub"

# (c)
long=$(fn_lengths $(sources '*.c' $CORE_DIRS) |
    awk -v max="$MAX_FN" '$3 > max { printf "%s(%s:%d)\n", $2, $1, $3 }')
nfn=$(fn_lengths $(sources '*.c' $CORE_DIRS) | wc -l)
verdict "(c) no function of $nfn in $CORE_DIRS over $MAX_FN lines" "$long"

# (d)
big=$(for f in $(sources '*.c' lib); do
    n=$(wc -l <"$f")
    [ "$n" -le "$MAX_FILE" ] || echo "$f($n)"
done)
verdict "(d) no lib/*.c over $MAX_FILE lines" "$big"

# (f) tests/run runs each tests/t_*.sh itself: one that git keeps without
# its executable bit fails on every fresh clone ("Permission denied") and
# passes on the machine that wrote it.
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    verdict "(f) every tests/t_*.sh is executable in git" \
        "$(git -C "$ROOT" ls-files -s -- 'tests/t_*.sh' | grep -v '^100755' |
            awk '{ print $4 }')"
else
    nok "(f) every tests/t_*.sh is executable in git: no git checkout at $ROOT"
fi

# (e)
if command -v duplicates >/dev/null 2>&1; then
    duplicates --repo "$ROOT" --most 200 --seconds 120 >"$T/dups" 2>&1
    re=$(echo "$CORE_DIRS" | sed 's/ /|/g')
    pairs=$(grep -E "^D[0-9]+ ($re)/[^ ]* ~ ($re)/" "$T/dups" |
        cut -d' ' -f2-4 | sed 's/ ~ /~/')
    inc=$(grep '^incomplete:' "$T/dups")
    verdict "(e) duplicates: no pair within $CORE_DIRS${inc:+ ($inc)}" \
        "$pairs${inc:+ incomplete}"
else
    echo "NOT CHECKED: (e) duplicates is not installed here" \
        "(this workplace's tool, not a Debian package): neither passed nor failed"
fi

finish
