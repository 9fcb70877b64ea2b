#!/bin/sh
# Container entry point: wait for PostgreSQL, migrate (web only), run one role.
#
#   release   migrate and create the default schedules, then exit (run once per
#             deployment before the other roles; compose's `release` service)
#   web       gunicorn on 0.0.0.0:$PORT with $WEB_CONCURRENCY sync workers
#   worker    Celery worker for queue "default" ($CELERY_CONCURRENCY processes)
#   training  Celery worker for queue "training" (one training at a time)
#   beat      Celery beat with django-celery-beat's DatabaseScheduler
#   manage    `python manage.py ...` (e.g. `manage createsuperuser`)
#   anything else is executed as given.
#
# MIGRATE_ON_START=0 stops the web role from migrating (when the release role does, as in
# docker-compose.yml, where several web replicas start at once).
set -eu

role="${1:-web}"
if [ "$#" -gt 0 ]; then shift; fi

wait_for_database() {
    python - <<'PY'
import os, sys, time

import dj_database_url
import psycopg2

url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/recsite")
params = dj_database_url.parse(url)
deadline = time.monotonic() + int(os.environ.get("DB_WAIT_TIMEOUT", "60"))
while True:
    try:
        psycopg2.connect(
            host=params["HOST"] or None, port=params["PORT"] or None,
            user=params["USER"] or None, password=params["PASSWORD"] or None,
            dbname=params["NAME"], connect_timeout=3,
        ).close()
        break
    except psycopg2.OperationalError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"database not reachable: {exc}")
        print("waiting for the database...", file=sys.stderr, flush=True)
        time.sleep(1)
PY
}

release_steps() {
    python manage.py migrate --noinput
    python manage.py setup_periodic_tasks
}

case "$role" in
    release)
        wait_for_database
        release_steps
        ;;
    web)
        wait_for_database
        if [ "${MIGRATE_ON_START:-1}" != "0" ]; then
            release_steps
        fi
        # One BLAS thread per web worker: scoring throughput halves otherwise.
        export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
        exec gunicorn recsite.wsgi --bind "0.0.0.0:${PORT:-8000}" \
            --workers "${WEB_CONCURRENCY:-2}" --worker-class sync \
            --timeout 60 --graceful-timeout 20 --access-logfile - "$@"
        ;;
    worker)
        wait_for_database
        exec celery -A recsite worker -Q default -n "default@%h" \
            --concurrency "${CELERY_CONCURRENCY:-2}" --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    training)
        wait_for_database
        exec celery -A recsite worker -Q training -n "training@%h" \
            --concurrency 1 --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    beat)
        wait_for_database
        exec celery -A recsite beat -S django_celery_beat.schedulers:DatabaseScheduler \
            --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    manage)
        wait_for_database
        exec python manage.py "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
