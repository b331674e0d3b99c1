# bench/fork.awk - how long preforkd's workers take from fork to their first
# request, from the "fork" step of bench/run.sh. Runs under any POSIX awk on
# the benchmark machine; prints one line and exits 0.
# Input lines "EPOCH EVENT PID", EPOCH in seconds with milliseconds:
#   spawn    the master's "worker N spawned (pid PID, ...)" log line (fork)
#   serving  the worker's "serving" log line (accepting from now on)
#   request  an access-log line of that worker ($msec: a request head
#            complete; the earliest one per worker is its first request)
# -v since=EPOCH: only workers forked after the load started count.

function sort(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j > 0 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
}

function rank(a, n, q,    i) {
    i = int(q * n + 0.999999)
    return a[i < 1 ? 1 : i]
}

$2 == "spawn" && $1 >= since { spawn[$3] = $1 }
$2 == "serving" && !($3 in up) { up[$3] = $1 }
$2 == "request" && (!($3 in first) || $1 < first[$3]) { first[$3] = $1 }

END {
    for (p in spawn) {
        if (!(p in first)) {
            idle++
            continue
        }
        n++
        d[n] = (first[p] - spawn[p]) * 1000
        if (p in up)
            s[++m] = (up[p] - spawn[p]) * 1000
    }
    if (n == 0) {
        print "fork to first request: no worker was forked and served under load"
        exit 0
    }
    sort(d, n)
    sort(s, m)
    printf "fork to first request (preforkd): median %.0f ms, 90%% %.0f ms, " \
        "max %.0f ms, over %d workers forked under load\n",
        rank(d, n, 0.5), rank(d, n, 0.9), d[n], n
    printf "fork to serving (preforkd): median %.0f ms, max %.0f ms " \
        "(log timestamps: millisecond resolution)\n", rank(s, m, 0.5), s[m]
    if (idle)
        printf "  and %d forked workers that served no request\n", idle
}
