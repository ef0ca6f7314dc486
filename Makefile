# slhook: a plain Makefile. User settings (CC, CFLAGS, LDFLAGS, PREFIX,
# DESTDIR) are honoured; the project's own flags are kept apart and appended.

VERSION = 0.1.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/lib/slhook
SYSCONFDIR ?= /etc
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/slhook

CC ?= cc
CFLAGS ?= -O2 -g
PKG_CONFIG ?= pkg-config

# SANITIZE=address,undefined builds everything into build-san/ instead.
ifneq ($(SANITIZE),)
B ?= build-san
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
else
B ?= build
SAN_FLAGS =
endif

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wformat=2 -Wconversion -Wno-sign-conversion -Wpointer-arith \
       -Wcast-qual -Wundef -Wvla -Wnull-dereference
ifneq ($(WERROR),)
WARN += -Werror
endif

CORE_PKGS = jansson sqlite3 libcrypto inih
CORE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(CORE_PKGS) libcurl)
CORE_LIBS := $(shell $(PKG_CONFIG) --libs $(CORE_PKGS))
CURL_LIBS := $(shell $(PKG_CONFIG) --libs libcurl)
# libpq for the PostgreSQL spool (lib/store_pg*.c); slhook.cgi has none
# (below).
PG_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpq)
PG_LIBS := $(shell $(PKG_CONFIG) --libs libpq)
FCGI_LIBS = -lfcgi -lpthread

SLH_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
             -DSLH_VERSION='"$(VERSION)"' \
             -Ilib -Ifront $(WARN) $(CORE_CFLAGS) $(PG_CFLAGS) $(SAN_FLAGS) \
             -MMD -MP
SLH_LDFLAGS = $(SAN_FLAGS)

# The receive path (lib objects the CGI needs) never pulls in libcurl:
# the delivering side, lib/deliver*.c (the only files that include
# <curl/curl.h> or call a deliverer), lives in an archive of its own.
DELIVER_SRC := $(wildcard lib/deliver*.c)
# The PostgreSQL backend is linked as objects (store.c's table names it)
# into every program but slhook.cgi, which gets lib/store_pg_none.c, a
# backend that claims the same spools and refuses them (503): a static
# libpq needs Kerberos' and OpenLDAP's static libraries, which Debian does
# not ship, and the CGI is linked fully static (below).
PG_NONE_SRC := lib/store_pg_none.c
PG_SRC := $(filter-out $(PG_NONE_SRC),$(wildcard lib/store_pg*.c))
PG_OBJ := $(PG_SRC:%.c=$(B)/%.o)
LIB_SRC := $(filter-out $(DELIVER_SRC) $(PG_SRC) $(PG_NONE_SRC),$(wildcard lib/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(B)/lib/page_assets.o
DELIVER_OBJ := $(DELIVER_SRC:%.c=$(B)/%.o)
# slhook.cgi and slhook-pg.cgi, its sibling for a PostgreSQL spool, share
# cgi/main.c; cgi/cgi.h says what differs (static.c, pg.c).
CGI_OBJ := $(B)/cgi/main.o $(B)/cgi/nodl.o $(B)/cgi/static.o $(B)/cgi/tool.o
CGI_PG_OBJ := $(B)/cgi/main.o $(B)/cgi/pg.o
FCGI_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard fcgi/*.c))
CLI_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard cli/*.c))
# What the three front ends share and lib/ must not do (front/log.c: where
# log lines go).
FRONT_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard front/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_SH := $(sort $(wildcard tests/t_*.sh))

PROGRAMS = $(B)/slhook.cgi $(B)/slhook-pg.cgi $(B)/slhook.fcgi $(B)/slhook

all: $(PROGRAMS)

# The tests run make with B absolute (tests/lib.sh), people with B=build:
# each .d names its object both ways, or a header changed after a test run
# rebuilt nothing that includes it (a stale struct layout, a crash).
DEP_NAMES = -MT $(abspath $@) -MT $(patsubst $(CURDIR)/%,%,$(abspath $@))

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SLH_CFLAGS) $(CFLAGS) $(DEP_NAMES) -c $< -o $@

# The operator's page (lib/page.h): web/'s files and uPlot's, from npm
# (web/package-lock.json; tools/install-deps runs npm ci), each with a gzip
# -9 -n copy, in $(B)/web/ for lib/page_assets.S to include. The page names
# each asset with a hash of its bytes, so that a browser may keep them.
UPLOT = web/node_modules/uplot/dist
WEB_ASSETS = page.css page.js uPlot.iife.min.js uPlot.min.css
WEB_FILES = $(addprefix $(B)/web/,page.html events.html $(WEB_ASSETS))

web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	npm ci --prefix web --no-audit --no-fund

$(UPLOT)/%: web/node_modules/.package-lock.json
	@test -f $@ || { echo "$@ missing: npm ci --prefix web"; exit 1; }

$(B)/web/uPlot.%: $(UPLOT)/uPlot.%
	@mkdir -p $(dir $@)
	cp $< $@

$(B)/web/page.%: web/page.%
	@mkdir -p $(dir $@)
	cp $< $@

$(B)/web/page.html: web/page.html $(addprefix $(B)/web/,$(WEB_ASSETS))
	@mkdir -p $(dir $@)
	sed $(foreach f,$(WEB_ASSETS),-e "s|assets/$(f)\"|assets/$(f)?v=$$(sha256sum $(B)/web/$(f) | cut -c1-12)\"|") $< >$@

# The same document for .../events/ID, its assets one level up, at the
# handler's own path (the page's CSP has base-uri 'none': no <base>).
$(B)/web/events.html: $(B)/web/page.html
	sed 's|"assets/|"../assets/|g' $< >$@

$(B)/web/%.gz: $(B)/web/%
	gzip -9 -n -c $< >$@

$(B)/lib/page_assets.o: lib/page_assets.S $(WEB_FILES) $(WEB_FILES:%=%.gz)
	@mkdir -p $(dir $@)
	$(CC) -Wa,-I,$(B)/web $(CFLAGS) -c $< -o $@

$(B)/libslhook.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/libslhook-deliver.a: $(DELIVER_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# A CGI process is started for every request, and the dynamic loader's work
# was most of what it paid over a trivial CGI: resolving four shared
# libraries cost about 1 ms of 3 (libcrypto alone 1.25 ms), and glibc's own
# loading 0.35-0.5 ms more. slhook.cgi is linked fully static (-static).
# SQLite's extension loader, which slhook never uses, calls dlopen(); in a
# static program that would need this very glibc's shared libraries at run
# time, and the linker warned so. --wrap=dlopen sends SQLite's calls to a
# stub that fails (cgi/nodl.c): nothing to warn about, nothing hidden.
# Sanitizer builds cannot be static: there the four libraries are static
# and glibc is not. CGI_STATIC=0 links everything dynamically.
CGI_STATIC ?= 1
ifeq ($(CGI_STATIC),1)
ifeq ($(SANITIZE),)
CGI_LIBS = -static -Wl,--wrap=dlopen $(CORE_LIBS) -lm -lpthread
else
CGI_LIBS = -Wl,-Bstatic $(CORE_LIBS) -Wl,-Bdynamic -lm -ldl -lpthread
endif
else
CGI_LIBS = $(CORE_LIBS)
endif

# slhook.cgi carries the slhook tool, which it runs from memory to deliver
# (cgi/tool.S, lib/kick.h): copied alone into a cgi-bin, it still relays,
# and never with a tool of another version. Its debug information is left
# out (build/slhook keeps it); the receive path never touches these bytes.
STRIP ?= strip
$(B)/slhook.embed: $(B)/slhook
	$(STRIP) --strip-debug -o $@ $<

$(B)/cgi/tool.o: cgi/tool.S $(B)/slhook.embed
	@mkdir -p $(dir $@)
	$(CC) -DSLH_TOOL_FILE='"$(B)/slhook.embed"' $(CFLAGS) -c $< -o $@

$(B)/slhook.cgi: $(CGI_OBJ) $(FRONT_OBJ) $(B)/lib/store_pg_none.o $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CGI_LIBS)

# What slhook.cgi runs in its place for a PostgreSQL spool (cgi/cgi.h),
# installed beside it: linked dynamically, with libpq, and without the
# tool (it starts no deliverer) or libcurl.
$(B)/slhook-pg.cgi: $(CGI_PG_OBJ) $(FRONT_OBJ) $(PG_OBJ) $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(PG_LIBS) -lm -lpthread

$(B)/slhook.fcgi: $(FCGI_OBJ) $(FRONT_OBJ) $(PG_OBJ) $(B)/libslhook-deliver.a $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CURL_LIBS) $(PG_LIBS) $(FCGI_LIBS)

$(B)/slhook: $(CLI_OBJ) $(FRONT_OBJ) $(PG_OBJ) $(B)/libslhook-deliver.a $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CURL_LIBS) $(PG_LIBS) -lpthread

$(B)/tests/%: $(B)/tests/%.o $(PG_OBJ) $(B)/libslhook-deliver.a $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CURL_LIBS) $(PG_LIBS) $(FCGI_LIBS)

# The FastCGI record parser is fcgi/'s (lib/ never sees a FastCGI header).
$(B)/tests/test_fcgi_proto: $(B)/fcgi/proto.o
# Which config file a front end loads reads the environment: front/'s.
$(B)/tests/test_config_path: $(B)/front/config_path.o

tests: $(TEST_BIN)

# Every test program and script prints "N passed, N failed" last; the
# runner adds them up and fails when any failed or any program crashed.
# test_store runs inside tests/t_pg_store.sh, which starts the PostgreSQL
# cluster its second half needs (alone, that half fails), and
# test_pg_owner inside tests/t_pg_fence.sh.
PG_TEST_BIN = $(B)/tests/test_store $(B)/tests/test_pg_owner
test: all tests
	@B=$(B) ./tests/run $(filter-out $(PG_TEST_BIN),$(TEST_BIN)) $(TEST_SH)

# What CI runs: clang-tidy, the tests, then the same tests built with
# sanitizers.
check: tidy test
	$(MAKE) test SANITIZE=address,undefined

# clang-tidy (.clang-tidy says which checks and why) over what ships, with
# the build's own flags; any finding fails. Two files at a time.
TIDY_SRC := $(sort $(wildcard lib/*.c cgi/*.c fcgi/*.c cli/*.c front/*.c))
TIDY_FLAGS = $(filter-out -MMD -MP $(SAN_FLAGS),$(SLH_CFLAGS))
tidy:
	@printf '%s\n' $(TIDY_SRC) | \
	    xargs -P2 -I{} clang-tidy --quiet {} -- $(TIDY_FLAGS) || \
	    { echo "clang-tidy: findings above"; exit 1; }
	@echo "clang-tidy: no findings in $(words $(TIDY_SRC)) files"

# Every C file clang-format lays out, the fuzzers and benchmarks included.
FORMAT_SRC = $(wildcard lib/*.[ch] front/*.[ch] cgi/*.[ch] fcgi/*.[ch] \
             cli/*.[ch] tests/*.[ch] fuzz/*.[ch] bench/*.[ch])

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-san

.PHONY: all tests test check tidy format format-check clean
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# --- fuzzing ---
# libFuzzer targets (fuzz/*.c), built with clang into build-fuzz/ from the
# lib sources themselves (not the gcc-built archive), with ASan and UBSan.
# `make fuzz` runs each for FUZZ_SECONDS; `make fuzz-smoke` for 20 seconds
# (CI). New inputs go to build-fuzz/corpus/; crashes to build-fuzz/crash-*.
# `make valgrind` runs every test program under valgrind.
FUZZ_CC ?= clang
FUZZ_B = build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
           -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
              -DSLH_VERSION='"$(VERSION)"' -Ilib $(WARN) $(CORE_CFLAGS) \
              -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP
FUZZ_TARGETS = event config handler
FUZZ_BIN = $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=$(FUZZ_B)/%.o) $(PG_NONE_SRC:%.c=$(FUZZ_B)/%.o)
# Longest input per target: a few fixtures' worth for bodies, and a little
# over the handler's max_body (4096, plus 3 selector bytes) to reach 413.
FUZZ_MAXLEN_event = 8192
FUZZ_MAXLEN_config = 4096
FUZZ_MAXLEN_handler = 4200
FUZZ_DICT_event = fuzz/json.dict
FUZZ_DICT_config = fuzz/config.dict
FUZZ_DICT_handler = fuzz/json.dict

$(FUZZ_B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_B)/libslhook-fuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/fuzz/fuzz_%.o $(FUZZ_B)/libslhook-fuzz.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(CORE_LIBS)

fuzz-build: $(FUZZ_BIN)

# Runs every target, each from the seeds in fuzz/corpus/ and what earlier
# runs kept, and fails when any found a crash, a leak or a broken check.
# SLH_FUZZ_KNOWN relaxes the check of a reported finding (fuzz/README.md).
fuzz: fuzz-build
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(CURDIR)/$(FUZZ_B)/corpus/$$t; \
	    case $$t in event) len=$(FUZZ_MAXLEN_event) dict=$(FUZZ_DICT_event);; \
	        config) len=$(FUZZ_MAXLEN_config) dict=$(FUZZ_DICT_config);; \
	        *) len=$(FUZZ_MAXLEN_handler) dict=$(FUZZ_DICT_handler);; esac; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	    $(CURDIR)/$(FUZZ_B)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=$$len -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -dict=$(CURDIR)/$$dict \
	        -artifact_prefix=$(CURDIR)/$(FUZZ_B)/crash-$$t- \
	        $(CURDIR)/$(FUZZ_B)/corpus/$$t $(CURDIR)/fuzz/corpus/$$t \
	        >$(CURDIR)/$(FUZZ_B)/fuzz_$$t.log 2>&1 \
	    || failed="$$failed $$t"; \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
	        $(CURDIR)/$(FUZZ_B)/fuzz_$$t.log | sed 's/^/  /'; \
	done; \
	if [ -n "$$failed" ]; then \
	    for t in $$failed; do echo "fuzz_$$t FAILED:"; \
	        grep -E -A 30 '^==[0-9]+==|runtime error|fuzz invariant|deadly signal' \
	            $(CURDIR)/$(FUZZ_B)/fuzz_$$t.log | head -n 60; done; \
	    echo "fuzzing found problems in:$$failed (inputs: $(FUZZ_B)/crash-*)"; \
	    exit 1; \
	fi; \
	echo "fuzzing: no crashes"

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=20

fuzz-clean:
	rm -rf $(FUZZ_B)
clean: fuzz-clean

# Every test program under valgrind; any memory error or definite/indirect
# leak fails (exit 99, the report is shown), as does a failing test. Built
# without sanitizers (valgrind and ASan do not mix). Programs that start
# servers are followed no further than the fork (--trace-children=no).
# test_store and test_pg_owner run with a PostgreSQL cluster of their own
# (tests/with_pg.sh).
VALGRIND = valgrind --error-exitcode=99 --leak-check=full \
           --errors-for-leak-kinds=definite,indirect --trace-children=no \
           --quiet
valgrind: tests
	@failed=""; \
	for t in $(TEST_BIN); do \
	    printf '%-40s ' "$$t"; \
	    wrap=; case $$t in */test_store|*/test_pg_owner) wrap=tests/with_pg.sh ;; esac; \
	    $$wrap $(VALGRIND) --log-file=$$t.valgrind $$t >$$t.vgout 2>&1; rc=$$?; \
	    if [ $$rc -eq 0 ]; then \
	        tail -n 1 $$t.vgout; \
	    elif [ $$rc -eq 99 ]; then \
	        echo "VALGRIND ERRORS"; failed="$$failed $$t"; \
	        head -n 80 $$t.valgrind; \
	    else \
	        echo "FAILED (exit $$rc): $$(tail -n 1 $$t.vgout)"; \
	        failed="$$failed $$t"; \
	        grep -E '^FAIL' $$t.vgout | head -n 20; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then echo "valgrind run failed:$$failed"; exit 1; fi; \
	echo "valgrind: no errors, no leaks"

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-clean valgrind
.PRECIOUS: $(FUZZ_B)/fuzz/%.o
-include $(shell find $(FUZZ_B) -name '*.d' 2>/dev/null)
# --- end fuzzing ---

# --- bench ---
# `make bench`: the performance figures of issue 5 (bench/run says what it
# measures and which BENCH_* variables tune it). Baselines and the sink are
# built here; the results are printed and kept in $(B)/bench-run/, not
# asserted.
BENCH_BIN = $(B)/bench/sink $(B)/bench/trivial_fcgi $(B)/bench/trivial_cgi \
            $(B)/bench/trivial_cgi_curl $(B)/bench/core

# The handler alone, linked like slhook.cgi's core (no libcurl).
$(B)/bench/core: $(B)/bench/core.o $(B)/lib/store_pg_none.o $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

$(B)/bench/trivial_fcgi: $(B)/bench/trivial_fcgi.o
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(FCGI_LIBS)

# The CGI baseline again, made to load libcurl (never called): what linking
# it alone costs a CGI process at start.
$(B)/bench/trivial_cgi_curl: $(B)/bench/trivial_cgi.o
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ -Wl,--no-as-needed $(CURL_LIBS)

$(B)/bench/%: $(B)/bench/%.o
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^

bench-build: all $(BENCH_BIN)

bench: bench-build
	B=$(B) ./bench/run

# The same, with strace and perf evidence of where the time goes.
bench-profile: bench-build
	B=$(B) BENCH_PHASES="startup throughput profile drain" ./bench/run

.PHONY: bench bench-build bench-profile
# --- end bench ---

# --- install, uninstall, demo ---
# `make install` (PREFIX, DESTDIR, and the *DIR variables above): slhook
# into $(BINDIR); the two handlers, which web servers run rather than
# people, into $(LIBEXECDIR) (slhook.cgi carries the slhook it starts to
# deliver; slhook-pg.cgi, which it runs for a PostgreSQL spool, beside it);
# man pages; systemd units and a
# tmpfiles.d entry for the spool; the server configs of apache/, lighttpd/,
# nginx/ and the commented slhook.conf into $(DOCDIR)/examples; and
# slhook.conf into $(SYSCONFDIR)/slhook/ unless one is there already (mode
# 0640; CONFGROUP=www-data makes it that group's). Paths in the shipped
# files name the default install and are rewritten to these directories.
# `make uninstall` removes all of it but $(SYSCONFDIR)/slhook/slhook.conf.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
CONFGROUP ?=
INSTALL ?= install
MAN_PAGES = man/slhook.1 man/slhook.conf.5 man/slhook.cgi.8 man/slhook.fcgi.8
UNITS = systemd/slhook-fcgi.socket systemd/slhook-fcgi.service \
        systemd/slhook-deliver.service
EXAMPLES = $(wildcard apache/*.conf lighttpd/*.conf nginx/*.conf)
SUBST = sed -e 's|/usr/local/share/doc/slhook|$(DOCDIR)|g' \
            -e 's|/usr/local/lib/slhook|$(LIBEXECDIR)|g' \
            -e 's|/usr/local/bin|$(BINDIR)|g' \
            -e 's|/etc/slhook|$(SYSCONFDIR)/slhook|g'

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/slhook \
	    $(DESTDIR)$(DOCDIR)/examples/apache \
	    $(DESTDIR)$(DOCDIR)/examples/lighttpd \
	    $(DESTDIR)$(DOCDIR)/examples/nginx
	$(INSTALL) -m 0755 $(B)/slhook $(DESTDIR)$(BINDIR)/slhook
	$(INSTALL) -m 0755 $(B)/slhook.cgi $(B)/slhook-pg.cgi $(B)/slhook.fcgi \
	    $(DESTDIR)$(LIBEXECDIR)/
	for f in $(MAN_PAGES); do \
	    $(SUBST) $$f >$(DESTDIR)$(MANDIR)/man$${f##*.}/$${f##*/} && \
	    chmod 0644 $(DESTDIR)$(MANDIR)/man$${f##*.}/$${f##*/} || exit 1; \
	done
	for f in $(UNITS); do \
	    $(SUBST) $$f >$(DESTDIR)$(SYSTEMDUNITDIR)/$${f##*/} && \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${f##*/} || exit 1; \
	done
	$(INSTALL) -m 0644 systemd/slhook.tmpfiles $(DESTDIR)$(TMPFILESDIR)/slhook.conf
	for f in $(EXAMPLES) etc/slhook.conf; do \
	    d=$(DESTDIR)$(DOCDIR)/examples/$${f%/*}; \
	    [ "$${f%/*}" != etc ] || d=$(DESTDIR)$(DOCDIR)/examples; \
	    $(SUBST) $$f >$$d/$${f##*/} && chmod 0644 $$d/$${f##*/} || exit 1; \
	done
	@conf=$(DESTDIR)$(SYSCONFDIR)/slhook/slhook.conf; \
	if [ -e $$conf ]; then \
	    echo "kept $$conf (the new example: $(DOCDIR)/examples/slhook.conf)"; \
	else \
	    $(SUBST) etc/slhook.conf >$$conf && chmod 0640 $$conf && \
	    { [ -z "$(CONFGROUP)" ] || chgrp $(CONFGROUP) $$conf; } && \
	    echo "installed $$conf: set secret_key, then run slhook check" || \
	    exit 1; \
	fi

# $(LIBEXECDIR)/slhook: the link that earlier versions installed.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/slhook $(DESTDIR)$(LIBEXECDIR)/slhook \
	    $(DESTDIR)$(LIBEXECDIR)/slhook.cgi $(DESTDIR)$(LIBEXECDIR)/slhook-pg.cgi \
	    $(DESTDIR)$(LIBEXECDIR)/slhook.fcgi \
	    $(DESTDIR)$(TMPFILESDIR)/slhook.conf
	for f in $(MAN_PAGES); do \
	    rm -f $(DESTDIR)$(MANDIR)/man$${f##*.}/$${f##*/}; done
	for f in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$${f##*/}; done
	rm -rf $(DESTDIR)$(DOCDIR)/examples
	rmdir $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/slhook/slhook.conf and the spool"

# A local lighttpd with both handlers behind it; see tools/demo.
demo: all
	B=$(B) ./tools/demo

.PHONY: install uninstall demo
# --- end install, uninstall, demo ---

# --- reliability ---
# Issue 6's tests that try to break it (tests/t_crash.sh, t_durability.sh,
# t_faults.sh, t_disk.sh), and issue 14's t_recover.sh, run short in `make
# test`. `make crash` runs the crash test long: more events and clients,
# more SIGKILLs. `make reliability` runs the five as `make test` does.
# They need root (mount), strace, openssl.
CRASH_EVENTS ?= 50000
CRASH_CLIENTS ?= 12
CRASH_KILLS ?= 25
CRASH_DKILLS ?= 25
RELIABILITY_SH = tests/t_crash.sh tests/t_durability.sh tests/t_faults.sh \
                 tests/t_disk.sh tests/t_recover.sh

crash: all
	B=$(B) CRASH_EVENTS=$(CRASH_EVENTS) CRASH_CLIENTS=$(CRASH_CLIENTS) \
	    CRASH_KILLS=$(CRASH_KILLS) CRASH_DKILLS=$(CRASH_DKILLS) \
	    ./tests/t_crash.sh

reliability: all
	@B=$(B) ./tests/run $(RELIABILITY_SH)

.PHONY: crash reliability
# --- end reliability ---
