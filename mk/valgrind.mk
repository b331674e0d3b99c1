# mk/valgrind.mk - `make valgrind`: whole worker lifetimes of the normal
# build under valgrind memcheck, master and workers alike
# (tests/integration/test_valgrind.sh: hello, proxy, echo and the test app slow;
# keep-alive and Connection: close; recycling by max_requests, TTIN/TTOU
# during an admin request, SIGHUP, client aborts, SIGTERM; about 15 s).
# Fails on any memory error, on a block definitely
# or indirectly lost through preforkd's code, or on a socket left open at
# exit. `make check` runs the same script but skips it when valgrind is
# missing; here valgrind is required. Not with SANITIZE=1: ASan and
# valgrind do not mix.

.PHONY: valgrind

ifeq ($(SANITIZE),1)
valgrind:
	@echo "make valgrind: runs on the normal build; drop SANITIZE=1" >&2; exit 2
else
valgrind: all $(TAPPS)
	$(Q)env $(TEST_ENV) PREFORKD_REQUIRE_VALGRIND=1 sh tests/integration/test_valgrind.sh
endif
