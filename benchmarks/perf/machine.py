"""What machine a benchmark ran on (numbers only mean something next to this)."""

from __future__ import annotations

import os
import platform
import subprocess

import psutil


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def postgres_version(dsn: str) -> str:
    """`SHOW server_version` of the benchmark's server."""
    import psycopg2

    try:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return cur.fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"unknown ({exc.__class__.__name__})"


def blas_info() -> str:
    """Which BLAS numpy uses and with which kernel (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info

        parts = [
            " ".join(
                str(i.get(k) or "") for k in ("internal_api", "version", "architecture")
            ).strip()
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        return ", ".join(parts) or "none"
    except Exception:  # noqa: BLE001
        return "unknown"


def machine_info(dsn: str) -> dict:
    """nproc, CPU model, memory, versions, load: the context of every figure."""
    mem = psutil.virtual_memory()
    wrk = "missing"
    try:
        out = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, timeout=5
        )
        wrk = (out.stdout or out.stderr).splitlines()[0].split("Copyright")[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(mem.total / 2**30, 1),
        "python": platform.python_version(),
        "postgres": postgres_version(dsn),
        "blas": blas_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "wrk": wrk,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "kernel": platform.release(),
    }
