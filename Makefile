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
FCGI_LIBS = -lfcgi -lpthread

SLH_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
             -DSLH_VERSION='"$(VERSION)"' -Ilib $(WARN) $(CORE_CFLAGS) \
             $(SAN_FLAGS) -MMD -MP
SLH_LDFLAGS = $(SAN_FLAGS)

# The receive path (lib objects the CGI needs) never pulls in libcurl:
# only deliver.c includes <curl/curl.h>, and it lives in its own archive.
LIB_SRC := $(filter-out lib/deliver.c,$(wildcard lib/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
DELIVER_SRC := $(wildcard lib/deliver.c)
DELIVER_OBJ := $(DELIVER_SRC:%.c=$(B)/%.o)
CGI_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard cgi/*.c))
FCGI_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard fcgi/*.c))
CLI_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard cli/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_SH := $(sort $(wildcard tests/t_*.sh))

PROGRAMS = $(B)/slhook.cgi $(B)/slhook.fcgi $(B)/slhook

all: $(PROGRAMS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SLH_CFLAGS) $(CFLAGS) -c $< -o $@

$(B)/libslhook.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/libslhook-deliver.a: $(DELIVER_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/slhook.cgi: $(CGI_OBJ) $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

$(B)/slhook.fcgi: $(FCGI_OBJ) $(B)/libslhook-deliver.a $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CURL_LIBS) $(FCGI_LIBS)

$(B)/slhook: $(CLI_OBJ) $(B)/libslhook-deliver.a $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CURL_LIBS) -lpthread

$(B)/tests/%: $(B)/tests/%.o $(B)/libslhook-deliver.a $(B)/libslhook.a
	$(CC) $(SLH_LDFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CURL_LIBS) $(FCGI_LIBS)

tests: $(TEST_BIN)

# Every test program and script prints "N passed, N failed" last; the
# runner adds them up and fails when any failed or any program crashed.
test: all tests
	@B=$(B) ./tests/run $(TEST_BIN) $(TEST_SH)

# What CI runs: the tests, then the same tests built with sanitizers.
check: test
	$(MAKE) test SANITIZE=address,undefined

format:
	clang-format -i lib/*.[ch] cgi/*.c fcgi/*.c cli/*.[ch] tests/*.[ch]

format-check:
	clang-format --dry-run --Werror lib/*.[ch] cgi/*.c fcgi/*.c cli/*.[ch] tests/*.[ch]

clean:
	rm -rf build build-san

.PHONY: all tests test check format format-check clean
.PRECIOUS: $(B)/tests/%.o

-include $(shell find $(B) -name '*.d' 2>/dev/null)
