#!/usr/bin/env bash
# Run the whole test suite: ./test.sh [pytest arguments...]
#
# Same set-up as ./start.sh (.venv, requirements, secret key, embedded PostgreSQL and
# Redis unless DATABASE_URL / REDIS_URL are set), then `pytest` from the repository
# root. Exits with pytest's status; "no tests collected" (5) is reported as a failure.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/scripts/common.sh"

trap recsite_release_devservices EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The browser tests drive Debian's Chromium with Playwright (never `playwright install`).
ensure_chromium() {
    if [ -n "${CHROMIUM_BIN:-}" ] || [ -x /usr/bin/chromium ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        warn "no Chromium (/usr/bin/chromium or CHROMIUM_BIN): browser tests will be skipped."
        return 0
    fi
    say "Installing Chromium for the browser tests (apt-get)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            chromium chromium-driver >/dev/null; }; then
        warn "could not install chromium with apt-get: browser tests will be skipped."
    fi
}

# Redis database 1: a ./start.sh sharing the embedded Redis keeps database 0 to itself.
recsite_setup 1
ensure_chromium

say "Running pytest $*"
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    printf '%s\n' "ERROR: pytest collected no tests (exit status 5); this counts as a failure." >&2
fi
exit "$status"
