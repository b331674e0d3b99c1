# shellcheck shell=bash
# bench/wsgi/bench.sh - the "wsgi" step of bench/run.sh: the apps of this
# folder (plain WSGI hello, Flask, Django) served with 1 worker by
# preforkd's wsgi module, Gunicorn (sync and gthread) and uWSGI, from
# Debian, under /usr/bin/python3, with preforkd's C hello beside them as
# the reference; and the CPU time of each app callable alone, in process.
# Sourced by run.sh after lib.sh (uses its globals: SRC, DIR, OUT, APPS,
# WORKERS, SERVER_CPUS...). Method: docs/performance.md, "Python (WSGI)".
# PORT, KIND and SHOWN are lib.sh's associative arrays (SC2004); some
# globals here are read by run.sh, and scenario reads the locals of
# bench_wsgi (SC2034).
# shellcheck disable=SC2004,SC2034

PY=/usr/bin/python3             # Debian's, whatever python3 PATH finds first
WSGI_DIR=$SRC/bench/wsgi
WSGI_TSV=                       # the WSGI step's runs (report: wsgi_report)
WSGI_SKIP=                      # why preforkd's wsgi rows are missing
WSGI_PF="preforkd wsgi"         # the shown name of its main row
WSGI_C="preforkd hello.so (C)"  # the shown name of the reference row
declare -A WSGI_MODULE=([hello]=hello [flask]=flaskapp [django]=djangoapp)

# The Debian packages of this step, and whether they are all here.
WSGI_PACKAGES="python3 gunicorn uwsgi-core uwsgi-plugin-python3 python3-flask python3-django"
wsgi_tools_missing() {
    [ -x "$PY" ] && [ -x /usr/bin/gunicorn ] && command -v uwsgi > /dev/null &&
        [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] &&
        "$PY" -c 'import flask, django' 2> /dev/null && return 1
    return 0
}

# start_gunicorn NAME SHOWN CLASS MODULE: Gunicorn with WORKERS workers of
# CLASS (sync; gthread with 4 threads) on a free port. Keep-alive as
# preforkd's (5 s; the sync worker closes every connection anyway); its
# heartbeat file in /dev/shm, as Gunicorn's docs advise where /tmp may be
# a disk.
start_gunicorn() {
    local name=$1 shown=$2 class=$3 module=$4 extra=()
    [ "$class" != gthread ] || extra=(--threads 4)
    PORT[$name]=$(free_port) KIND[$name]=gunicorn SHOWN[$name]=$shown
    launch "$name" "$SERVER_CPUS" "$PY" /usr/bin/gunicorn --chdir "$WSGI_DIR" \
        --workers "$WORKERS" --worker-class "$class" "${extra[@]}" \
        --keep-alive 5 --worker-tmp-dir /dev/shm --log-level warning \
        --error-logfile "$DIR/$name-error.log" --bind "127.0.0.1:${PORT[$name]}" \
        "$module:application"
    wait_ready "$name"
}

# start_uwsgi NAME SHOWN MODULE: uWSGI, a master and WORKERS processes, on
# an HTTP socket of its own (no router in front). --http-socket answers
# one request per connection: "Connection: close" says so to the client.
# (--http11-socket keeps connections, but a process without threads or
# async cores then serves one connection until it closes while the others
# wait: no comparison with 64 connections.) --die-on-term: TERM stops it
# (uWSGI 2.0 reloads on TERM otherwise).
start_uwsgi() {
    local name=$1 shown=$2 module=$3
    PORT[$name]=$(free_port) KIND[$name]=uwsgi SHOWN[$name]=$shown
    launch "$name" "$SERVER_CPUS" uwsgi --plugin python3 \
        --http-socket "127.0.0.1:${PORT[$name]}" --add-header "Connection: close" \
        --pythonpath "$WSGI_DIR" --module "$module:application" --need-app \
        --master --processes "$WORKERS" --listen 1024 --disable-logging \
        --die-on-term --logto "$DIR/$name-error.log"
    wait_ready "$name"
}

# start_pf_wsgi NAME SHOWN MODULE THREADS: preforkd's wsgi module; THREADS
# empty for the module's default.
start_pf_wsgi() {
    local name=$1 shown=$2 module=$3 threads=$4 line
    line="; threads: the module's default"
    [ -z "$threads" ] || line="threads = $threads"
    start_preforkd "$name" "$shown" preforkd-wsgi.ini.in \
        "WSGI_APP=$module:application" "WSGI_PATH=$WSGI_DIR" "THREADS=$line"
}

# wsgi_app_costs: each app callable's CPU time per call, in process, on
# the servers' CPUs while nothing else of the benchmark runs.
wsgi_app_costs() {
    local app
    : > "$OUT/wsgi-appcost.tsv"
    for app in $WSGI_APPS; do
        # shellcheck disable=SC2046
        (cd "$WSGI_DIR" && $(pin "$SERVER_CPUS") "$PY" appcost.py "$app" \
            "${WSGI_MODULE[$app]}:application" 1) >> "$OUT/wsgi-appcost.tsv" ||
            die "bench/wsgi/appcost.py failed for $app"
    done
    note "app callables alone: $(cut -f1,2 "$OUT/wsgi-appcost.tsv" | tr '\t\n' '= ')(us per call)"
}

# wsgi_memory APP NAME...: the private memory of each server's workers,
# after its load, as "APP: SHOWN" lines of wsgi-memory.tsv.
wsgi_memory() {
    local app=$1 name pid vals
    shift
    for name in "$@"; do
        vals=
        for pid in $(workers_of "$name"); do
            vals="$vals${vals:+ }$(private_kib "$pid")"
        done
        printf 'after load\t%s: %s\t%s\t%s\n' "$app" "${SHOWN[$name]}" \
            "${KIND[$name]}" "${vals:-none}" >> "$OUT/wsgi-memory.tsv"
    done
}

# bench_wsgi_app APP: APP's servers, started together and measured in
# alternation, keep-alive then Connection: close; hello also has preforkd's
# C hello and the wsgi module with threads = 0. Server names start with
# APP: each has its own log (run_preforkd reads its port from there).
bench_wsgi_app() {
    local app=$1 module=${WSGI_MODULE[$1]} servers=
    if [ "$app" = hello ]; then
        start_preforkd "$app-c" "$WSGI_C" preforkd-hello.ini.in MAX_REQUESTS=0 \
            ACCESS_LOG=off
        servers="$app-c"
    fi
    if [ -z "$WSGI_SKIP" ]; then
        start_pf_wsgi "$app-pf" "$WSGI_PF" "$module" "$WSGI_THREADS"
        servers="$servers $app-pf"
        if [ "$app" = hello ] && [ "$WSGI_THREADS" != 0 ]; then
            start_pf_wsgi "$app-pf0" "preforkd wsgi threads=0" "$module" 0
            servers="$servers $app-pf0"
        fi
    fi
    start_gunicorn "$app-gsync" "gunicorn sync" sync "$module"
    start_gunicorn "$app-gthread" "gunicorn gthread" gthread "$module"
    start_uwsgi "$app-uwsgi" uwsgi "$module"
    servers="$servers $app-gsync $app-gthread $app-uwsgi"
    scenario "wsgi-$app-keepalive" "WSGI $app, keep-alive" "$servers"
    scenario "wsgi-$app-close" "WSGI $app, Connection: close" "$servers" \
        -H "Connection: close"
    # shellcheck disable=SC2086
    wsgi_memory "$app" $servers
    # shellcheck disable=SC2086
    stop_servers $servers
}

# bench_wsgi: the whole step. Its runs are shorter than the other
# scenarios' (WSGI_DURATION, WSGI_WARMUP: scenario reads DURATION and
# WARMUP, made local here) and go to their own table (RUNS_TSV).
bench_wsgi() {
    local DURATION=$WSGI_DURATION WARMUP=$WSGI_WARMUP RUNS_TSV=$OUT/wsgi-runs.tsv app
    WSGI_TSV=$RUNS_TSV
    : > "$WSGI_TSV"
    : > "$OUT/wsgi-memory.tsv"
    if [ ! -f "$APPS/wsgi.so" ]; then
        WSGI_SKIP="preforkd wsgi: SKIPPED, $APPS/wsgi.so is not built (make all builds it once src/apps/wsgi is in)"
        warn "$WSGI_SKIP"
    elif [ -n "$WSGI_THREADS" ]; then
        WSGI_PF="preforkd wsgi threads=$WSGI_THREADS"
    fi
    wsgi_app_costs
    for app in $WSGI_APPS; do
        bench_wsgi_app "$app"
    done
}

# wsgi_header: the versions of this step's servers and libraries.
wsgi_header() {
    echo "WSGI: $("$PY" -c 'import sys, flask, django, gunicorn
print("Python %s (/usr/bin/python3), gunicorn %s, Flask %s, Django %s" % (sys.version.split()[0],
    gunicorn.__version__, flask.__version__, django.get_version()))'), uWSGI $(uwsgi --version);" \
        "${WSGI_DURATION}s runs after a ${WSGI_WARMUP}s warm-up, preforkd wsgi threads:" \
        "${WSGI_THREADS:-the module default}"
}

# wsgi_report: the WSGI table, when the step ran.
wsgi_report() {
    [ -n "$WSGI_TSV" ] || return 0
    echo
    wsgi_header
    awk -v pf="$WSGI_PF" -v cref="$WSGI_C" -v skipped="$WSGI_SKIP" \
        -f "$SRC/bench/disturbed.awk" -f "$SRC/bench/wsgi/report.awk" \
        "$OUT/wsgi-appcost.tsv" "$WSGI_TSV" \
        "$OUT/wsgi-memory.tsv"
}
