# bench/fork.awk - how long preforkd's workers take from fork to serving and
# to their first accepted connection, from the /stats answers that the
# "fork" step of bench/run.sh collected. Runs under any POSIX awk on the
# benchmark machine; prints four lines and exits 0.
# Input files: /stats before the load (its workers do not count, nor do its
# retirements), then the polls during the load and one after it. In each
# worker object (one line of /stats) pid, boot_ms (fork -> serving) and
# first_accept_ms (fork -> first accept; null until then), in ms with
# microsecond precision. Every worker seen with a first accept counts once.
# -v rps=: req/s of the load; -v every=: milliseconds between polls.

function sort(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j > 0 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
}

# Nearest rank: the smallest value with at least q of the values at or
# below it.
function rank(a, n, q,    i) {
    i = int(q * n + 0.999999)
    return a[i < 1 ? 1 : i]
}

# The number after "KEY": on the current line, or "" when it is not a number.
function num(key) {
    if (!match($0, "\"" key "\": [0-9.]+"))
        return ""
    return substr($0, RSTART + length(key) + 4, RLENGTH - length(key) - 4) + 0
}

function line(what, a, n) {
    sort(a, n)
    printf "  %-30s median %7.3f ms, 90%% %7.3f ms, max %7.3f ms\n", what,
        rank(a, n, 0.5), rank(a, n, 0.9), a[n]
}

/"retired": / {
    r = num("max_requests")
    if (FILENAME == ARGV[1])
        retired0 = r
    retired1 = r
}
/"master": / && FILENAME != ARGV[1] { polls++ }

# A whole worker line only: a poll cut short ends in the middle of one.
/^ *\{"slot": .*\},?$/ {
    pid = num("pid")
    if (FILENAME == ARGV[1]) {
        before[pid] = 1
        next
    }
    if (pid in before || pid in accept)
        next
    seen[pid] = 1
    if ($0 ~ /"first_accept_ms": [0-9.]+[,}]/) {
        accept[pid] = num("first_accept_ms")
        boot[pid] = num("boot_ms")
    }
}

END {
    for (p in seen) {
        if (!(p in accept)) {
            idle++
            continue
        }
        n++
        a[n] = accept[p]
        b[n] = boot[p]
    }
    printf "fork to first accept (preforkd, /stats, Connection: close load of %.0f req/s):\n", rps
    if (n == 0) {
        print "  no worker forked under load was seen with a first accept"
    } else {
        line("fork -> serving (boot_ms)", b, n)
        line("fork -> first accept", a, n)
    }
    printf "  over %d workers seen with a first accept in %d polls, one every %d ms; " \
        "%d recycled by max_requests during the load", n, polls, every,
        retired1 - retired0
    if (idle)
        printf "; %d seen before their first accept only", idle
    printf "\n"
}
