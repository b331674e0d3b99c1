#!/bin/sh
# run.sh - runs the libFuzzer harnesses built by mk/fuzz.mk (make fuzz,
# make fuzz-regress); not a test suite of its own.
#
#   run.sh fuzz BUILD SECONDS NAME...   fuzz every NAME at once for SECONDS,
#       the seeds tests/fuzz/corpus/NAME read-only and BUILD/corpus/NAME as
#       the working corpus; prints each one's runs, exec/s, cov and ft
#   run.sh regress BUILD 0 NAME...      run each NAME once over its seeds
#
# The last line is "fuzz: N passed, N failed"; exit 1 when a harness fails
# (a crash, a leak, a broken invariant): its log is printed, with the path
# of the input that did it. Every process it starts, it ends.
set -u

mode=$1 build=$2 secs=$3
shift 3
here=$(dirname "$0")
pids=

stop() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    exit 1
}
trap stop HUP INT TERM

# libFuzzer's last status line ("#N DONE cov: ... ft: ...") and final stats.
summary() {
    grep -E '^#[0-9]+[[:space:]]+DONE' "$1" | tail -n 1
    grep -E '^(Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|new_units_added))' "$1"
}

failed() {
    echo "== fuzz_$1: FAILED (log $2)"
    tail -n 60 "$2"
    grep -E 'Test unit written to' "$2"
}

fuzz_one() {
    dict=
    [ -f "$here/$1.dict" ] && dict="-dict=$here/$1.dict"
    mkdir -p "$build/corpus/$1" "$build/crashes/$1"
    # shellcheck disable=SC2086 # $dict is one word or none
    exec "$build/fuzz_$1" -max_total_time="$secs" -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$build/crashes/$1/" $dict \
        "$build/corpus/$1" "$here/corpus/$1" >"$build/$1.log" 2>&1
}

# Every seed once, no mutation: a file per argument.
regress_one() {
    "$build/fuzz_$1" -runs=1 "$here/corpus/$1"/* >"$build/$1.regress.log" 2>&1
}

npass=0
nfail=0
pass() { npass=$((npass + 1)); }
fail() { nfail=$((nfail + 1)); }

case $mode in
fuzz)
    names=$*
    for name in $names; do
        echo "== fuzz_$name: ${secs}s, log $build/$name.log"
        fuzz_one "$name" &
        pids="$pids $!"
    done
    # shellcheck disable=SC2086 # one pid a word
    set -- $pids
    for name in $names; do
        if wait "$1"; then
            echo "== fuzz_$name: ok"
            summary "$build/$name.log"
            pass
        else
            failed "$name" "$build/$name.log"
            fail
        fi
        shift
    done
    ;;
regress)
    for name in "$@"; do
        if regress_one "$name"; then
            echo "== fuzz_$name: $(find "$here/corpus/$name" -type f | wc -l) seeds ok"
            pass
        else
            failed "$name" "$build/$name.regress.log"
            fail
        fi
    done
    ;;
*)
    echo "usage: run.sh fuzz|regress BUILD SECONDS NAME..." >&2
    exit 2
    ;;
esac
echo "fuzz: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
