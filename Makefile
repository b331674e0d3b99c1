# preforkd - plain GNU make.
#
#   make                 build build/preforkd, build/apps/*.so, build/preforkd.pc
#   make check           build and run every test
#   make run             start preforkd in the foreground with conf/preforkd.ini
#   make install         PREFIX=/usr/local DESTDIR= (binary, apps, header, .pc,
#                        systemd units in UNITDIR, and SYSCONFDIR/preforkd/
#                        preforkd.ini from conf/system.ini unless it exists)
#   make SANITIZE=1 ...  ASan + UBSan build in build/san (check, run too)
#   make WERROR=1 ...    warnings are errors (CI)
#   make V=1 ...         print every command
#   make deb             Debian packages (debian/) of a copy of the working
#                        tree, in $(BUILD)/deb/*.deb: dpkg-buildpackage with
#                        PREFIX=/usr; log in $(BUILD)/deb/build.log (mk/deb.mk)
#
# Missing Debian build dependencies are installed by scripts/install-deps.sh
# (with sudo when not root) the first time any target needs them.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
SBINDIR   ?= $(PREFIX)/sbin
LIBDIR    ?= $(PREFIX)/lib
APPDIR    ?= $(LIBDIR)/preforkd/apps
INCLUDEDIR ?= $(PREFIX)/include
PCDIR     ?= $(LIBDIR)/pkgconfig
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
# systemd reads units from /usr/local/lib and /usr/lib (Debian: /lib).
UNITDIR   ?= $(LIBDIR)/systemd/system

CC        ?= cc
ifeq ($(origin CC),default)
CC        := cc
endif
OPT       ?= -O2 -g
CFLAGS    ?= $(OPT)
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wformat=2 -Wpointer-arith -Wcast-qual -Wwrite-strings \
             -Wundef -Wvla -Wno-unused-parameter
SANITIZE  ?=
WERROR    ?=

ifeq ($(SANITIZE),1)
BUILD     ?= build/san
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
else
BUILD     ?= build
SANFLAGS  :=
endif
ifeq ($(WERROR),1)
WARN      += -Werror
endif

# Evaluated in recipes only (recursive =), i.e. after `deps` has run.
DEP_CFLAGS = $(shell pkg-config --cflags inih)
DEP_LIBS   = $(shell pkg-config --libs inih) -lev -lhttp_parser -lm -pthread
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS   = $(shell pkg-config --libs check)

# src/ is laid out by process (docs/architecture.md): main.c and the public
# header at the top, then a folder per owner. Headers are included by their
# bare name from any of them, as nginx's src/core, src/event, src/http are.
SRC_DIRS  := src src/common src/master src/mold src/worker src/upstream src/check
SRC_INCS  := $(addprefix -iquote ,$(SRC_DIRS))
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) \
             -iquote $(BUILD) $(SRC_INCS) $(DEP_CFLAGS) -MMD -MP
# -z now: every symbol bound at start-up, in the master, so that a forked
# worker does not resolve them again (a symbol lookup and a copy-on-write
# fault of the GOT each); relro then makes the GOT read-only. Also the
# Debian hardening default.
ALL_LDFLAGS = -Wl,-z,relro,-z,now $(LDFLAGS) $(SANFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

SRCS      := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
CTL_SRCS  := $(wildcard src/ctl/*.c)
CTL_OBJS  := $(CTL_SRCS:src/ctl/%.c=$(BUILD)/obj/ctl/%.o)
APP_SRCS  := $(wildcard src/apps/*.c)
APPS      := $(APP_SRCS:src/apps/%.c=$(BUILD)/apps/%.so)
# The wsgi module: a folder of its own, linked with libpython.
WSGI_SRCS := $(wildcard src/apps/wsgi/*.c)
WSGI_OBJS := $(WSGI_SRCS:src/apps/wsgi/%.c=$(BUILD)/obj/apps/wsgi/%.o)
APPS      += $(if $(WSGI_SRCS),$(BUILD)/apps/wsgi.so)
TAPP_SRCS := $(wildcard tests/apps/*.c)
TAPPS     := $(TAPP_SRCS:tests/apps/%.c=$(BUILD)/tests/apps/%.so)
# tests/unit: suites that call the code in-process; tests/integration: suites
# and scripts that run the programs. Unit suites run first. tests/lib: what
# they share (the daemon harness, a load generator, a fake upstream).
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
TEST_SRCS := $(UNIT_SRCS) $(INTEG_SRCS)
TESTS     := $(addprefix $(BUILD)/tests/,$(basename $(notdir $(TEST_SRCS))))
TEST_SCRIPTS := $(wildcard tests/integration/test_*.sh)
THELP_SRCS := $(wildcard tests/lib/*.c)
THELP_OBJS := $(THELP_SRCS:tests/lib/%.c=$(BUILD)/tests/obj/%.o)

.PHONY: all check run install uninstall clean deps
# Keep test objects between runs (they are intermediate files to make). Named
# ones only: a bare .SECONDARY: would also make FORCE secondary, and then
# build/paths.h would not be remade when PREFIX changes.
.SECONDARY: $(TESTS:$(BUILD)/tests/%=$(BUILD)/tests/obj/%.o)
all: $(BUILD)/preforkd $(if $(CTL_SRCS),$(BUILD)/preforkctl) $(APPS) $(BUILD)/preforkd.pc

deps:
	$(Q)sh scripts/install-deps.sh

# Compiled-in paths live in a generated header that changes only when a
# path changes, so `make install PREFIX=...` rebuilds exactly what uses it
# (preforkd.pc too: every path it names is in here).
$(BUILD)/paths.h: FORCE | $(BUILD)/.dir
	$(Q)printf '#define PF_VERSION "%s"\n#define PF_APPDIR "%s"\n#define PF_SYSCONFDIR "%s"\n/* %s %s */\n' \
	  '$(VERSION)' '$(APPDIR)' '$(SYSCONFDIR)' 'prefix=$(PREFIX)' 'includedir=$(INCLUDEDIR)' > $@.tmp
	$(Q)cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(BUILD)/.dir:
	$(Q)mkdir -p $(BUILD)/obj $(BUILD)/apps $(BUILD)/tests/obj $(BUILD)/tests/apps $(BUILD)/include
	$(Q)touch $@

# Modules see only the public header, as they would out of tree.
$(BUILD)/include/preforkd.h: src/preforkd.h
	$(Q)mkdir -p $(@D) && cp $< $@
APP_CFLAGS = $(ALL_CFLAGS) -I$(BUILD)/include -fPIC -shared

$(BUILD)/obj/%.o: src/%.c $(BUILD)/paths.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  CC      $<")
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -c -o $@ $<

# The executable exports the pf_* ABI (and nothing else) to app modules.
$(BUILD)/preforkd: $(OBJS) src/exports.list
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -Wl,--dynamic-list=src/exports.list -o $@ $(OBJS) $(DEP_LIBS)

# preforkctl: the operator's front end, a separate small program (src/ctl/).
$(BUILD)/obj/ctl/%.o: src/ctl/%.c $(BUILD)/paths.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  CC      $<")
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -c -o $@ $<

# It reads the same INI file (config.c) to find the daemon.
CTL_LIB_OBJS = $(addprefix $(BUILD)/obj/common/,config.o config_errors.o config_ini.o config_keys.o config_units.o cgroup.o listen.o log.o buf.o)
$(BUILD)/preforkctl: $(CTL_OBJS) $(CTL_LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(CTL_OBJS) $(CTL_LIB_OBJS) $(DEP_LIBS)

$(BUILD)/apps/%.so: src/apps/%.c $(BUILD)/include/preforkd.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  APP     $@")
	$(Q)$(CC) $(APP_CFLAGS) $(ALL_LDFLAGS) -o $@ $< -lev

# Debian's CPython (python3-dev): its headers as system headers, so that our
# warnings apply to our code only. pkg-config, never a python3 on PATH.
PY_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags python3-embed)) \
            -DWSGI_PY_PREFIX='"$(shell pkg-config --variable=prefix python3-embed)"'
PY_LIBS   = $(shell pkg-config --libs python3-embed)

$(BUILD)/obj/apps/wsgi/%.o: src/apps/wsgi/%.c $(BUILD)/include/preforkd.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  CC      $<")
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -I$(BUILD)/include -fPIC $(PY_CFLAGS) -c -o $@ $<

# -z nodelete: Python keeps pointers to the module's types and functions for
# the life of the process, so a dlclose() must never unmap it.
$(BUILD)/apps/wsgi.so: $(WSGI_OBJS)
	@$(if $(Q),echo "  APP     $@")
	$(Q)$(CC) $(APP_CFLAGS) $(ALL_LDFLAGS) -Wl,-z,nodelete -o $@ $(WSGI_OBJS) $(PY_LIBS) -lev -pthread

$(BUILD)/tests/apps/%.so: tests/apps/%.c $(BUILD)/include/preforkd.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  APP     $@")
	$(Q)$(CC) $(APP_CFLAGS) $(ALL_LDFLAGS) -o $@ $< -lev

TEST_CFLAGS = $(ALL_CFLAGS) -iquote tests/lib $(CHECK_CFLAGS)
$(BUILD)/tests/obj/%.o: tests/unit/%.c $(BUILD)/paths.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TEST_CFLAGS) -c -o $@ $<
$(BUILD)/tests/obj/%.o: tests/integration/%.c $(BUILD)/paths.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TEST_CFLAGS) -c -o $@ $<
$(BUILD)/tests/obj/%.o: tests/lib/%.c $(BUILD)/paths.h | deps $(BUILD)/.dir
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/obj/test_%.o $(THELP_OBJS) $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -Wl,--dynamic-list=src/exports.list -o $@ $^ $(DEP_LIBS) $(CHECK_LIBS)

$(BUILD)/preforkd.pc: Makefile $(BUILD)/paths.h | $(BUILD)/.dir
	$(Q)printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$(INCLUDEDIR)' \
	  'appdir=$(APPDIR)' '' 'Name: preforkd' \
	  'Description: preforkd application module ABI' 'Version: $(VERSION)' \
	  'Cflags: -I$${includedir} -fPIC' > $@

# Every test binary runs even when one fails.
# Tests find the daemon and fixtures through these variables.
TEST_ENV = PREFORKD_BIN=$(abspath $(BUILD)/preforkd) \
           PREFORKD_APPS=$(abspath $(BUILD)/apps) \
           PREFORKD_TEST_APPS=$(abspath $(BUILD)/tests/apps) \
           PREFORKD_CTL=$(abspath $(BUILD)/preforkctl) \
           PREFORKD_SRC=$(abspath .) \
           PREFORKD_SANITIZE=$(SANITIZE) \
           PREFORKD_MAKE="$(MAKE) --no-print-directory SANITIZE=$(SANITIZE)" \
           LSAN_OPTIONS="suppressions=$(abspath tests/lsan.supp):print_suppressions=0$${LSAN_OPTIONS:+:$$LSAN_OPTIONS}"

# Each suite's output is also kept in $(BUILD)/check/; at the end the tail of
# every failed suite is repeated and the last line names them, because CI logs
# are often read from the tail.
check: all $(TAPPS) $(TESTS)
	$(Q)mkdir -p $(BUILD)/check; failed=; \
	for t in $(TESTS) $(TEST_SCRIPTS); do \
	  n=$${t##*/}; log=$(BUILD)/check/$$n.log; echo "== $$t"; \
	  case $$t in *.sh) run="sh $$t";; *) run=$$t;; esac; \
	  env $(TEST_ENV) $$run > $$log 2>&1 || failed="$$failed $$n"; cat $$log; \
	done; \
	for n in $$failed; do \
	  echo "== failed: $$n (last 40 lines of $(BUILD)/check/$$n.log)"; \
	  tail -n 40 $(BUILD)/check/$$n.log; \
	done; \
	for n in $$failed; do \
	  grep -E ':[EF]:|^not ok' $(BUILD)/check/$$n.log | head -n 5; \
	done; \
	if [ -n "$$failed" ]; then echo "make check: FAILED:$$failed"; exit 1; fi; \
	echo "make check: all tests passed"

run: all
	$(BUILD)/preforkd -c conf/preforkd.ini

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(APPDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR)
	install -m 0755 $(BUILD)/preforkd $(DESTDIR)$(SBINDIR)/preforkd
	$(if $(CTL_SRCS),install -m 0755 $(BUILD)/preforkctl $(DESTDIR)$(SBINDIR)/preforkctl)
	install -m 0644 $(APPS) $(DESTDIR)$(APPDIR)/
	install -m 0644 src/preforkd.h $(DESTDIR)$(INCLUDEDIR)/preforkd.h
	install -m 0644 $(BUILD)/preforkd.pc $(DESTDIR)$(PCDIR)/preforkd.pc
# The manual pages, naming this installation's paths ("-" is "\-" in roff).
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	for m in preforkd.8 preforkctl.8 preforkd.ini.5; do \
	  d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
	  sed -e 's|/usr/local/lib/preforkd/apps/|$(subst -,\\-,$(APPDIR))/|g' \
	    -e 's|/usr/local/lib/pkgconfig/|$(subst -,\\-,$(PCDIR))/|g' \
	    -e 's|/usr/local/include/|$(subst -,\\-,$(INCLUDEDIR))/|g' \
	    -e 's|/usr/local/sbin/|$(subst -,\\-,$(SBINDIR))/|g' \
	    -e 's|/etc/preforkd/|$(subst -,\\-,$(SYSCONFDIR))/preforkd/|g' man/$$m > $$d/$$m.tmp && \
	  chmod 0644 $$d/$$m.tmp && mv -f $$d/$$m.tmp $$d/$$m || exit 1; \
	done
# The units with this installation's paths; conf/system.ini (admin socket,
# user preforkd) as the default config, never over an existing one.
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/preforkd
	for u in preforkd.service preforkd.socket; do \
	  sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/etc/preforkd/|$(SYSCONFDIR)/preforkd/|g' \
	    systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	[ -e $(DESTDIR)$(SYSCONFDIR)/preforkd/preforkd.ini ] || \
	  install -m 0644 conf/system.ini $(DESTDIR)$(SYSCONFDIR)/preforkd/preforkd.ini

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/preforkd $(DESTDIR)$(SBINDIR)/preforkctl $(DESTDIR)$(INCLUDEDIR)/preforkd.h \
	  $(DESTDIR)$(PCDIR)/preforkd.pc $(DESTDIR)$(UNITDIR)/preforkd.service \
	  $(DESTDIR)$(UNITDIR)/preforkd.socket
	rm -rf $(DESTDIR)$(LIBDIR)/preforkd
	rm -f $(DESTDIR)$(MANDIR)/man8/preforkd.8 $(DESTDIR)$(MANDIR)/man8/preforkctl.8 \
	  $(DESTDIR)$(MANDIR)/man5/preforkd.ini.5
# SYSCONFDIR/preforkd/preforkd.ini stays: it may hold local changes.

clean:
	rm -rf build

# Optional tool targets (fuzz, valgrind, bench) live in mk/*.mk: each uses
# the variables above and adds its own phony targets.
include $(sort $(wildcard mk/*.mk))

-include $(OBJS:.o=.d) $(CTL_OBJS:.o=.d) $(WSGI_OBJS:.o=.d) $(THELP_OBJS:.o=.d) $(TESTS:$(BUILD)/tests/%=$(BUILD)/tests/obj/%.d)
