# mk/fuzz.mk - libFuzzer harnesses (tests/fuzz/, see its README.md), built
# with clang and -fsanitize=fuzzer,address,undefined in build/fuzz, apart
# from build/ and build/san (project objects get -fsanitize=fuzzer-no-link).
#
#   make fuzz [FUZZ_TIME=60]   build, then fuzz every harness at once for
#                              FUZZ_TIME seconds; prints runs, cov and ft;
#                              fails on a crash and names its input file
#   make fuzz-regress          run each harness once over its seed corpus
#   make fuzz-build            build only
#
# clang-14 and its runtimes (libclang-rt-14-dev) are Debian packages,
# installed by scripts/install-deps.sh the first time they are needed.

FUZZ_CC    ?= clang-14
FUZZ_TIME  ?= 60
FUZZ_OPT   ?= -O1 -g
FUZZ_BUILD := build/fuzz
FUZZ_NAMES := conn config
FUZZ_BINS  := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_OBJS  := $(patsubst src/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out src/main.c,$(SRCS)))
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(FUZZ_OPT) $(FUZZ_SAN) \
              -iquote $(FUZZ_BUILD) $(SRC_INCS) $(DEP_CFLAGS) -MMD -MP

.PHONY: fuzz fuzz-build fuzz-regress fuzz-deps

fuzz-deps:
	$(Q)sh scripts/install-deps.sh clang-14 libclang-rt-14-dev

$(FUZZ_BUILD)/.dir:
	$(Q)mkdir -p $(FUZZ_BUILD)/obj $(FUZZ_BUILD)/harness $(FUZZ_BUILD)/apps \
	  $(FUZZ_BUILD)/include
	$(Q)touch $@

$(FUZZ_BUILD)/paths.h: $(BUILD)/paths.h | $(FUZZ_BUILD)/.dir
	$(Q)cp $< $@

$(FUZZ_BUILD)/include/preforkd.h: src/preforkd.h | $(FUZZ_BUILD)/.dir
	$(Q)cp $< $@

$(FUZZ_BUILD)/obj/%.o: src/%.c $(FUZZ_BUILD)/paths.h | deps fuzz-deps $(FUZZ_BUILD)/.dir
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)mkdir -p $(@D) && $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/harness/%.o: tests/fuzz/%.c $(FUZZ_BUILD)/paths.h | deps fuzz-deps $(FUZZ_BUILD)/.dir
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -c -o $@ $<

# fuzz_conn loads apps/echo.so next to itself, as the daemon does.
$(FUZZ_BUILD)/apps/%.so: src/apps/%.c $(FUZZ_BUILD)/include/preforkd.h | deps fuzz-deps $(FUZZ_BUILD)/.dir
	@$(if $(Q),echo "  FUZZAPP $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -I$(FUZZ_BUILD)/include \
	  -fPIC -shared -o $@ $< -lev

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/harness/fuzz_%.o $(FUZZ_OBJS) src/exports.list
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(LDFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer \
	  -Wl,--dynamic-list=src/exports.list -o $@ $< $(FUZZ_OBJS) $(DEP_LIBS)

fuzz-build: $(FUZZ_BINS) $(FUZZ_BUILD)/apps/echo.so

fuzz: fuzz-build
	$(Q)sh tests/fuzz/run.sh fuzz $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_NAMES)

fuzz-regress: fuzz-build
	$(Q)sh tests/fuzz/run.sh regress $(FUZZ_BUILD) 0 $(FUZZ_NAMES)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_NAMES:%=$(FUZZ_BUILD)/harness/fuzz_%.d)
