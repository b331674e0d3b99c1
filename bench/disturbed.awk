# bench/disturbed.awk - functions for bench/report.awk and
# bench/wsgi/report.awk (loaded with -f before them): how much of the
# benchmark's CPUs other processes took during the runs of a table
# (parse_wrk in bench/lib.sh measures it per run), so that a reader knows
# when a machine shared with other work made the figures unreliable.

# disturbed(RUN, SERVER_PCT, CLIENT_PCT, FILE): records one run; "-" is
# not measured (CPUs not pinned).
function disturbed(run, s, c, file) {
    if (s == "-" || c == "-")
        return
    ds[++dn] = s + 0
    dc[dn] = c + 0
    if (s + 0 > 10)
        dnotes[++dnn] = sprintf("  %s: %d %% of the server's CPUs and %d %% of wrk's (%s)",
            run, s, c, file)
}

function dsort(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j > 0 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
}

# disturbed_summary(): one line (median and maximum over the runs), and
# the runs where others took over 10 % of the server's CPUs.
function disturbed_summary(    i, a, b) {
    if (dn == 0)
        return
    for (i = 1; i <= dn; i++) {
        a[i] = ds[i]
        b[i] = dc[i]
    }
    dsort(a, dn)
    dsort(b, dn)
    printf "other processes took (median, max over the runs): %d %%, %d %% of the server's CPUs; %d %%, %d %% of wrk's\n",
        a[int((dn + 1) / 2)], a[dn], b[int((dn + 1) / 2)], b[dn]
    if (dnn) {
        print "runs where other processes took over 10 % of the server's CPUs (figures less reliable):"
        for (i = 1; i <= dnn; i++)
            print dnotes[i]
    }
}
