# bench/wsgi/report.awk - the Python (WSGI) table of bench/run.sh and its
# targets. Runs under any POSIX awk on the benchmark machine; prints the
# table and exits 0.
# Input files, in this order:
#   1. the in-process cost of each app callable (bench/wsgi/appcost.py):
#      app, CPU us per call, calls per batch (tab-separated);
#   2. one line per wrk run, as bench/report.awk reads them, with scenario
#      ids "wsgi-APP-keepalive" and "wsgi-APP-close": id, label, server,
#      round, req/s, p50 ms, p99 ms, non-2xx, socket errors, ok|fail,
#      requests, server CPU us per request, % of the server's and of wrk's
#      CPUs taken by other processes ("-": not measured), wrk output;
#   3. private memory per worker after load (bench/lib.sh mem_sample):
#      when, server ("APP: SHOWN"), kind, KiB of each worker.
# -v pf=: the name of the preforkd wsgi row the targets use; -v cref=: the
# preforkd C hello row's; -v skipped=: why preforkd wsgi did not run, if it
# did not.
# Per app and server: medians over the rounds of req/s, p99 and CPU us per
# request, keep-alive and close side by side; errors summed over both.

BEGIN { FS = "\t"; modes[1] = "keepalive"; modes[2] = "close" }

function median(k, f,    a, i, j, t, m) {
    m = runs[k]
    for (i = 1; i <= m; i++) {
        t = val[k, f, i]
        for (j = i - 1; j > 0 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}

FILENAME == ARGV[1] {
    appcost[$1] = $2
    next
}

FILENAME == ARGV[3] {
    mem[$2] = $4
    next
}

$1 ~ /^wsgi-/ {
    split($1, id, "-")
    app = id[2]
    mode = id[3]
    if (!(app in seenapp)) {
        seenapp[app] = 1
        apps[++napps] = app
    }
    if (!((app, $3) in seenrow)) {
        seenrow[app, $3] = 1
        row[app, ++nrows[app]] = $3
    }
    k = app SUBSEP $3 SUBSEP mode
    i = ++runs[k]
    val[k, "rps", i] = $5
    val[k, "p99", i] = $7
    val[k, "cpu", i] = $12 == "-" ? 0 : $12
    if ($12 == "-")
        nocpu[k] = 1
    disturbed($2 ", " $3 ", round " $4, $13, $14, $15)
    errors[app, $3] += $8 + $9
    if ($10 != "ok")
        failed[app, $3] = 1
    if ($8 + $9 > 0 || $10 != "ok")
        notes[++nnotes] = sprintf("  %s, %s, round %s: %s; %d non-2xx, %d socket errors (%s)",
            $2, $3, $4, $10 == "ok" ? "ran" : "wrk FAILED", $8, $9, $15)
}

function has(app, server, mode) {
    return (app SUBSEP server SUBSEP mode) in runs
}

function get(app, server, mode, f,    k) {
    k = app SUBSEP server SUBSEP mode
    if (!(k in runs) || (f == "cpu" && (k in nocpu)))
        return ""
    return median(k, f)
}

function fmt(v, p) {
    return v == "" ? "-" : sprintf(p, v)
}

function line(a, b, c, d, e, f, g, h, i,    t) {
    t = sprintf("%-7s %-26s %9s %7s %7s  %9s %7s %7s %7s", a, b, c, d, e, f, g, h, i)
    sub(/ +$/, "", t)
    print t
}

# One target line: "what", the ratio of a to b per mode (req/s, and the
# inverse ratio of CPU per request), "met"/"missed" per mode on req/s.
function target(app, what, a, b, want,    m, r, cr, x, y, out, verdict, ra, rb) {
    if (!(app in seenapp))
        return
    out = ""
    verdict = ""
    for (m = 1; m <= 2; m++) {
        ra = get(app, a, modes[m], "rps")
        rb = get(app, b, modes[m], "rps")
        x = get(app, a, modes[m], "cpu")
        y = get(app, b, modes[m], "cpu")
        r = (ra != "" && rb > 0) ? ra / rb : ""
        cr = (x > 0 && y != "") ? y / x : ""
        out = out (m > 1 ? " | " : "") sprintf("%6s", r == "" ? "-" : sprintf("%.2fx", r))
        cpu[m] = cr == "" ? "-" : sprintf("%.2fx", cr)
        verdict = verdict (m > 1 ? " | " : "") \
            (r == "" ? "n/a" : (r >= want ? "met" : "missed"))
    }
    printf "  %-52s %s  (CPU %s | %s)  %s\n", what, out, cpu[1], cpu[2], verdict
}

END {
    print "Python (WSGI): the same 14-byte hello from each server (bench/wsgi), 1 worker each"
    if (skipped != "")
        print "  " skipped
    printf "%35s%s  %s\n", "", "------- keep-alive ------", "--- Connection: close ---"
    line("app", "server", "req/s", "p99 ms", "us/req", "req/s", "p99 ms", "us/req", "errors")
    for (a = 1; a <= napps; a++) {
        app = apps[a]
        for (r = 1; r <= nrows[app]; r++) {
            s = row[app, r]
            line(r == 1 ? app : "", s,
                 fmt(get(app, s, "keepalive", "rps"), "%.0f"),
                 fmt(get(app, s, "keepalive", "p99"), "%.2f"),
                 fmt(get(app, s, "keepalive", "cpu"), "%.2f"),
                 fmt(get(app, s, "close", "rps"), "%.0f"),
                 fmt(get(app, s, "close", "p99"), "%.2f"),
                 fmt(get(app, s, "close", "cpu"), "%.2f"),
                 errors[app, s] (failed[app, s] ? " FAILED" : ""))
        }
    }
    print "us/req: the server's CPU time (its whole process tree, /proc) per request wrk completed"

    out = ""
    for (a = 1; a <= napps; a++)
        if (apps[a] in appcost)
            out = out sprintf("%s %s us, ", apps[a], appcost[apps[a]])
    if (out != "") {
        sub(/, $/, "", out)
        print "the app callable alone, in process (bench/wsgi/appcost.py): " out " of CPU per call"
        print "host cost: server us/req minus the app's (keep-alive | close):"
        for (a = 1; a <= napps; a++) {
            app = apps[a]
            if (!(app in appcost))
                continue
            for (r = 1; r <= nrows[app]; r++) {
                s = row[app, r]
                if (s == cref)
                    continue
                x = get(app, s, "keepalive", "cpu")
                y = get(app, s, "close", "cpu")
                printf "  %-7s %-26s %7s | %s us\n", app, s,
                    x == "" ? "-" : sprintf("%.2f", x - appcost[app]),
                    y == "" ? "-" : sprintf("%.2f", y - appcost[app])
            }
        }
    }

    print "targets: req/s ratio keep-alive | close, (the same from CPU us/req), verdict on req/s:"
    target("hello", "hello: " pf " >= 0.85x " cref, pf, cref, 0.85)
    target("hello", "hello: " pf " >= 5x uwsgi", pf, "uwsgi", 5)
    target("flask", "flask: " pf " >= 2x uwsgi", pf, "uwsgi", 2)
    target("flask", "flask: " pf " >= 4x gunicorn sync", pf, "gunicorn sync", 4)
    target("django", "django: " pf " >= 2x uwsgi", pf, "uwsgi", 2)
    target("django", "django: " pf " >= 4x gunicorn sync", pf, "gunicorn sync", 4)
    x = get("hello", pf, "keepalive", "cpu")
    y = get("hello", pf, "close", "cpu")
    if (("hello" in appcost) && x != "") {
        printf "  %-52s %.2f | %s us  %s | %s\n", "hello: host cost of " pf " <= 3 us",
            x - appcost["hello"],
            y == "" ? "-" : sprintf("%.2f", y - appcost["hello"]),
            x - appcost["hello"] <= 3 ? "met" : "missed",
            y == "" ? "n/a" : (y - appcost["hello"] <= 3 ? "met" : "missed")
        z = get("hello", cref, "keepalive", "cpu")
        if (z != "")
            printf "  (%s alone costs %.2f us/req keep-alive: the WSGI layer adds %.2f us)\n",
                cref, z, x - appcost["hello"] - z
    } else if ("hello" in seenapp) {
        printf "  %-52s n/a\n", "hello: host cost of " pf " <= 3 us"
    }

    out = ""
    for (a = 1; a <= napps; a++)
        for (r = 1; r <= nrows[apps[a]]; r++) {
            s = apps[a] ": " row[apps[a], r]
            if (s in mem)
                out = out sprintf("  %-36s %s\n", s, mem[s])
        }
    if (out != "")
        printf "private memory per worker after load (KiB):\n%s", out
    if (nnotes) {
        print "runs with errors:"
        for (i = 1; i <= nnotes; i++)
            print notes[i]
    }
    disturbed_summary()
}
