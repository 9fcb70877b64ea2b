"""The benchmark's own gunicorn (sync workers, DEBUG off, one BLAS thread)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """Start/stop gunicorn serving recsite (or another WSGI callable: `app`, for the
    serving floor); use as a context manager."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        workers: int = 2,
        port: int | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
        app: str = "recsite.wsgi:application",
    ) -> None:
        self.env = env
        self.app = app
        self.workers = workers
        self.port = port or free_port()
        self.log_path = log_path
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start and wait until every worker answers /api/v1/health/ (any `app` must
        answer 200 there)."""
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            self.app,
            "--workers",
            str(self.workers),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            # keep-alive is ignored by sync workers; a long timeout so a slow
            # first request (model load) is never killed mid-measurement
            "--timeout",
            "300",
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.proc.returncode}; see {self.log_path}"
                )
            if len(self.worker_pids()) >= self.workers and self._healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"gunicorn did not become healthy in {timeout}s; see {self.log_path}"
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.base_url}/api/v1/health/", timeout=5
            ) as r:
                return r.status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (children of the master)."""
        if self.proc is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the master), SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
