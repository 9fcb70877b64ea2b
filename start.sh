#!/usr/bin/env bash
# Run recsite on this machine: web (gunicorn), Celery workers (default, training), beat.
#
# Needs only Python 3.11+. Creates .venv, installs requirements.txt, and - unless
# DATABASE_URL / REDIS_URL are set - starts an embedded PostgreSQL and Redis with their
# state in .local/. Migrates, loads demo data once, prints the demo credentials, then
# runs everything in the foreground. Ctrl-C (or SIGTERM) stops all of it; if one
# process dies, the rest are stopped and the script exits non-zero.
# Logs: .local/logs/<process>.log, also streamed here with a prefix.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/scripts/common.sh"

PORT="${PORT:-8000}"
WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
CELERY_CONCURRENCY="${CELERY_CONCURRENCY:-2}"
export PORT PYTHONUNBUFFERED=1
# start.sh serves plain HTTP on 127.0.0.1: Secure-only cookies would break the admin
# login in browsers that do not exempt loopback. Behind TLS, set SECURE_COOKIES=1.
export SECURE_COOKIES="${SECURE_COOKIES:-0}"

CHILD_PIDS=()
CHILD_NAMES=()
LOG_PID=""

# Is any process of the child's process group (it leads one, via setsid) still alive?
group_alive() {
    kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null
}

signal_group() {  # signal_group SIG PID
    kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
}

wait_children() {  # wait_children SECONDS: until every child's group is gone
    local deadline=$((SECONDS + $1)) pid
    while [ "$SECONDS" -lt "$deadline" ]; do
        for pid in "${CHILD_PIDS[@]}"; do
            if group_alive "$pid"; then
                sleep 0.2
                continue 2
            fi
        done
        return 0
    done
    return 1
}

stop_children() {
    local pid i
    # 1. SIGTERM to each main process: gunicorn stops its workers, Celery does a warm
    #    shutdown (a running task may finish).
    for pid in "${CHILD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if ! wait_children "${STOP_GRACE_S:-10}"; then
        # 2. SIGTERM to whole groups: a task still running is cut short and Celery
        #    puts it back on the queue (acks late, reject on worker lost).
        for pid in "${CHILD_PIDS[@]}"; do signal_group TERM "$pid"; done
        if ! wait_children 10; then
            for i in "${!CHILD_PIDS[@]}"; do
                if group_alive "${CHILD_PIDS[$i]}"; then
                    warn "${CHILD_NAMES[$i]} did not stop; killing it"
                    signal_group KILL "${CHILD_PIDS[$i]}"
                fi
            done
        fi
    fi
    CHILD_PIDS=()
    CHILD_NAMES=()
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [ "${#CHILD_PIDS[@]}" -gt 0 ]; then
        say "Stopping web, workers and beat"
        stop_children
    fi
    if [ -n "$LOG_PID" ]; then
        kill -TERM -- "-$LOG_PID" 2>/dev/null || kill -TERM "$LOG_PID" 2>/dev/null || true
    fi
    recsite_release_devservices
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Run "$@" in the background in its own session, output to .local/logs/<name>.log.
start_child() {
    local name="$1"
    shift
    local log="$LOCAL_DIR/logs/$name.log"
    printf '\n----- %s started %s -----\n' "$name" "$(date '+%Y-%m-%d %H:%M:%S')" >>"$log"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" </dev/null >>"$log" 2>&1 &
    else
        "$@" </dev/null >>"$log" 2>&1 &
    fi
    CHILD_PIDS+=("$!")
    CHILD_NAMES+=("$name")
}

# The first child that has exited, as "index" (empty when all are alive).
dead_child() {
    local i
    for i in "${!CHILD_PIDS[@]}"; do
        if ! kill -0 "${CHILD_PIDS[$i]}" 2>/dev/null; then
            printf '%s\n' "$i"
            return 0
        fi
    done
}

report_death() {
    local i="$1" status=0 name log
    name="${CHILD_NAMES[$i]}"
    log="$LOCAL_DIR/logs/$name.log"
    wait "${CHILD_PIDS[$i]}" 2>/dev/null || status=$?
    printf '\n' >&2
    warn "$name exited (status $status); stopping everything. Last lines of $log:"
    tail -n 25 "$log" >&2 || true
}

health_ok() {
    "$VENV/bin/python" - "$PORT" <<'PY' 2>/dev/null
import json, sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/health/"
with urllib.request.urlopen(url, timeout=2) as response:
    body = json.load(response)
sys.exit(0 if response.status == 200 and body["database"]["status"] == "up" else 1)
PY
}

recsite_setup 0
mkdir -p "$LOCAL_DIR/logs"
MANAGE=("$VENV/bin/python" "$RECSITE_ROOT/manage.py")

say "Applying migrations"
"${MANAGE[@]}" migrate --noinput -v 0
"${MANAGE[@]}" collectstatic --noinput -v 0
if "${MANAGE[@]}" help setup_periodic_tasks >/dev/null 2>&1; then
    "${MANAGE[@]}" setup_periodic_tasks
fi
say "Preparing the demo account"
BANNER="$("${MANAGE[@]}" setup_demo)"

# Stream every log here, prefixed with its process name.
log_files=()
for name in web worker training beat; do
    log_files+=("$LOCAL_DIR/logs/$name.log")
    touch "$LOCAL_DIR/logs/$name.log"
done
stream_logs() {
    tail -n 0 -F "$@" 2>/dev/null | awk '
        /^==> .* <==$/ { n = split($2, parts, "/"); name = parts[n]; sub(/\.log$/, "", name); next }
        NF { printf "%-9s| %s\n", name, $0; fflush() }'
}
if command -v setsid >/dev/null 2>&1; then
    export -f stream_logs
    setsid bash -c 'stream_logs "$@"' stream_logs "${log_files[@]}" &
else
    stream_logs "${log_files[@]}" &
fi
LOG_PID=$!

say "Starting gunicorn on 127.0.0.1:$PORT, Celery workers and beat (logs in .local/logs/)"
# BLAS pinned to one thread per web worker: with several threads per worker, scoring
# throughput fell by half on 2 cores (docs in /work/shared/NOTES.md, "Speed limits").
start_child web env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
    "$VENV/bin/gunicorn" recsite.wsgi --bind "127.0.0.1:$PORT" \
    --workers "$WEB_CONCURRENCY" --worker-class sync --timeout 60 --graceful-timeout 10 \
    --error-logfile -
start_child worker "$VENV/bin/celery" -A recsite worker -Q default -n "default@%h" \
    --concurrency "$CELERY_CONCURRENCY" --loglevel INFO
start_child training "$VENV/bin/celery" -A recsite worker -Q training -n "training@%h" \
    --concurrency 1 --loglevel INFO
start_child beat "$VENV/bin/celery" -A recsite beat \
    -S django_celery_beat.schedulers:DatabaseScheduler --loglevel INFO

deadline=$((SECONDS + 120))
until health_ok; do
    dead="$(dead_child)"
    if [ -n "$dead" ]; then
        report_death "$dead"
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        die "http://127.0.0.1:$PORT/api/v1/health/ did not answer within 120 s (see .local/logs/web.log)"
    fi
    sleep 0.5
done
printf '\n%s\n\n' "$BANNER"
say "recsite is running at http://127.0.0.1:$PORT/ - press Ctrl-C to stop"

while true; do
    dead="$(dead_child)"
    if [ -n "$dead" ]; then
        report_death "$dead"
        exit 1
    fi
    # A background sleep keeps signals prompt: `wait` returns as soon as one arrives.
    sleep 1 &
    wait $! || true
done
