#!/bin/sh
# test_fuzz_corpus.sh - the libFuzzer harnesses (tests/fuzz/) build with
# clang and pass over every committed seed (make fuzz-regress): each seed
# is a request or config file that once found a path, and must still run
# without a crash, a leak or a broken invariant.
#
# Run by `make check` in its normal pass only (its own build is already
# ASan + UBSan, so the SANITIZE=1 pass skips it); skipped when clang-14 or
# its fuzzer runtime is missing, unless PREFORKD_REQUIRE_FUZZ=1 (.ci/run).
# Starts no daemon. The last line is "N passed, N failed"; exit 1 on any
# failure.
set -u

src=${PREFORKD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
mk=${PREFORKD_MAKE:-make --no-print-directory}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/preforkd-fuzz.XXXXXX") || exit 1

trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

. "$(dirname "$0")/../lib/tap.inc"

case $mk in
*SANITIZE=1*)
    echo "skipped: the fuzz build is ASan + UBSan already (run in the normal pass)"
    exit 0
    ;;
esac

# A program that links -fsanitize=fuzzer: clang and the runtime are there.
printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }\n' >"$tmp/t.c"
if ! clang-14 -fsanitize=fuzzer,address,undefined -o "$tmp/t" "$tmp/t.c" \
        >"$tmp/cc.out" 2>&1; then
    if [ "${PREFORKD_REQUIRE_FUZZ:-0}" = 1 ]; then
        not_ok "clang-14 cannot build a libFuzzer program (Debian packages: clang-14 libclang-rt-14-dev)" "$tmp/cc.out"
        finish
    fi
    echo "skipped: clang-14 with libFuzzer not installed (Debian packages: clang-14 libclang-rt-14-dev; make fuzz-deps)"
    exit 0
fi

for h in conn config; do
    n=$(find "$src/tests/fuzz/corpus/$h" -type f | wc -l)
    if [ "$n" -ge 10 ]; then
        ok "tests/fuzz/corpus/$h holds $n seeds"
    else
        not_ok "tests/fuzz/corpus/$h holds $n seeds, expected at least 10"
    fi
done

# shellcheck disable=SC2086 # $mk is a command with its arguments
if ! (cd "$src" && $mk fuzz-regress) >"$tmp/regress.out" 2>&1; then
    not_ok "make fuzz-regress (build, or a seed that crashes)" "$tmp/regress.out"
    finish
fi
ok "make fuzz-regress"
for h in conn config; do
    if grep -q "^== fuzz_$h: [0-9]* seeds ok" "$tmp/regress.out"; then
        ok "fuzz_$h: every seed runs clean under ASan + UBSan"
    else
        not_ok "fuzz_$h did not report its seeds" "$tmp/regress.out"
    fi
done
finish
