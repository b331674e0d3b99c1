# bench/report.awk - the summary table of bench/run.sh. Runs under any
# POSIX awk on the benchmark machine; prints the table and exits 0.
# Input: one line per wrk run, tab-separated: scenario id, scenario label,
# server, round, req/s, p50 ms, p99 ms, non-2xx responses, socket errors,
# ok|fail, requests, server CPU us per request, % of the server's CPUs and
# of wrk's CPUs taken by other processes ("-": not measured), wrk output
# file. Per scenario and server: medians over the rounds, errors summed
# over them, and each preforkd row's ratios to the nginx and h2o rows of
# its scenario (req/s, and p99 for nginx). A run with errors is listed
# under the table, and so is one disturbed by other processes (bench.awk).

BEGIN { FS = "\t" }

function disturbed_run() {
    disturbed($2 ", " $3 ", round " $4, $13, $14, $15)
}

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

function ratio(a, b) {
    return b > 0 ? sprintf("%.2fx", a / b) : "-"
}

{
    k = $1 SUBSEP $3
    if (!($1 in label)) {
        scen[++nscen] = $1
        label[$1] = $2
    }
    if (!(k in runs))
        row[$1, ++nrows[$1]] = $3
    has[k] = 1
    i = ++runs[k]
    val[k, "rps", i] = $5
    val[k, "p50", i] = $6
    val[k, "p99", i] = $7
    if ($12 == "-")
        nocpu[k] = 1
    val[k, "cpu", i] = $12
    errors[k] += $8 + $9
    if ($10 != "ok")
        failed[k]++
    disturbed_run()
    if ($8 + $9 > 0 || $10 != "ok")
        notes[++nnotes] = sprintf("  %s, %s, round %s: %s; %d non-2xx, %d socket errors (%s)",
            $2, $3, $4, $10 == "ok" ? "ran" : "wrk FAILED", $8, $9, $15)
}

function line(a, b, c, d, e, f, g, h, i, j,    t) {
    t = sprintf("%-26s %-28s %9s %7s %7s %7s %7s %7s %7s %9s", a, b, c, d, e, f, g, h, i, j)
    sub(/ +$/, "", t)
    print t
}

END {
    line("scenario", "server", "req/s", "p50 ms", "p99 ms", "us/req", "errors",
         "x nginx", "x h2o", "p99/nginx")
    for (s = 1; s <= nscen; s++) {
        id = scen[s]
        for (r = 1; r <= nrows[id]; r++) {
            k = id SUBSEP row[id, r]
            rps[k] = median(k, "rps")
            p99[k] = median(k, "p99")
        }
        ng = id SUBSEP "nginx"
        h2 = id SUBSEP "h2o"
        base = id SUBSEP "preforkd"
        for (r = 1; r <= nrows[id]; r++) {
            name = row[id, r]
            k = id SUBSEP name
            err = errors[k] (failed[k] ? " FAILED" : "")
            xn = xh = xp = ""
            if (name == "preforkd" && (ng in has)) {
                xn = ratio(rps[k], rps[ng])
                xp = ratio(p99[k], p99[ng])
            }
            if (name == "preforkd" && (h2 in has))
                xh = ratio(rps[k], rps[h2])
            line(r == 1 ? label[id] : "", name, sprintf("%.0f", rps[k]),
                 sprintf("%.2f", median(k, "p50")), sprintf("%.2f", p99[k]),
                 (k in nocpu) ? "-" : sprintf("%.2f", median(k, "cpu")),
                 err, xn, xh, xp)
            if (name ~ /^preforkd ./ && (base in has))
                extra[id] = sprintf("  %s: %s the req/s of plain preforkd (cost %.1f%%), p99 %.2f vs %.2f ms",
                    name, ratio(rps[k], rps[base]),
                    100 * (1 - rps[k] / rps[base]), p99[k], p99[base])
        }
        if (id in extra)
            print extra[id]
    }
    print "us/req: the server's CPU time (its whole process tree, /proc) per request wrk completed"
    if (nnotes) {
        print "runs with errors:"
        for (i = 1; i <= nnotes; i++)
            print notes[i]
    }
    disturbed_summary()
}
