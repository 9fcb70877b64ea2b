# Shared set-up of ./start.sh and ./test.sh (sourced, not run).
#
# After `recsite_setup <redis-db>`: the cwd is the repository root, `.venv` holds the
# pinned requirements, SECRET_KEY is exported, and DATABASE_URL / REDIS_URL /
# CELERY_BROKER_URL point at the embedded servers unless the caller set them.
# `recsite_release_devservices` (call it from an EXIT trap) stops the embedded servers
# unless another live start.sh / test.sh still uses them.

RECSITE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$RECSITE_ROOT/.venv"
LOCAL_DIR="$RECSITE_ROOT/.local"
RECSITE_HOLDING_DEVSERVICES=0

say() { printf '%s\n' "==> $*" >&2; }
warn() { printf '%s\n' "WARNING: $*" >&2; }
die() { printf '%s\n' "ERROR: $*" >&2; exit 1; }

recsite_python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

recsite_ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local python="${PYTHON:-}"
        if [ -z "$python" ]; then
            for candidate in python3 python3.13 python3.12 python3.11; do
                if command -v "$candidate" >/dev/null 2>&1 && recsite_python_ok "$candidate"; then
                    python="$candidate"
                    break
                fi
            done
        fi
        [ -n "$python" ] && recsite_python_ok "$python" \
            || die "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)."
        say "Creating the virtualenv .venv with $("$python" --version 2>&1)"
        "$python" -m venv "$VENV"
    fi
    # Re-install only when requirements.txt changed since the last successful install.
    local stamp="$VENV/.requirements.sha256" want
    want="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$RECSITE_ROOT/requirements.txt")"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        say "Installing requirements.txt into .venv (the first time builds lightfm: about a minute)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$RECSITE_ROOT/requirements.txt" \
            || die "pip install -r requirements.txt failed (see the messages above)."
        printf '%s\n' "$want" >"$stamp"
    fi
}

recsite_ensure_secret_key() {
    mkdir -p "$LOCAL_DIR"
    if [ -z "${SECRET_KEY:-}" ]; then
        if [ ! -s "$LOCAL_DIR/secret_key" ]; then
            (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))' \
                >"$LOCAL_DIR/secret_key")
        fi
        chmod 600 "$LOCAL_DIR/secret_key"
        SECRET_KEY="$(cat "$LOCAL_DIR/secret_key")"
        export SECRET_KEY
    fi
}

recsite_start_devservices() {
    local redis_db="$1" exports
    if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
        return 0
    fi
    RECSITE_HOLDING_DEVSERVICES=1
    exports="$("$VENV/bin/python" "$RECSITE_ROOT/scripts/devservices.py" start \
        --redis-db "$redis_db" --holder $$)" || die "could not start the embedded servers."
    eval "$exports"
}

recsite_release_devservices() {
    if [ "$RECSITE_HOLDING_DEVSERVICES" = 1 ]; then
        RECSITE_HOLDING_DEVSERVICES=0
        "$VENV/bin/python" "$RECSITE_ROOT/scripts/devservices.py" release --holder $$ || true
    fi
}

recsite_setup() {
    cd "$RECSITE_ROOT"
    recsite_ensure_venv
    recsite_ensure_secret_key
    recsite_start_devservices "$1"
}
