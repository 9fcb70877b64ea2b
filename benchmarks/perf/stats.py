"""Small helpers: timing, medians, process memory."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import psutil

MB = 1024 * 1024


@contextmanager
def timer():
    """`with timer() as t: ...` then `t()` is the elapsed seconds."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def median(values) -> float | None:
    """Median of the non-None values (None when empty)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    if a is None or not b:
        return None
    return a / b


def process_memory(pid: int) -> dict:
    """RSS, USS, PSS and shared of one process, in MB (psutil memory_full_info)."""
    info = psutil.Process(pid).memory_full_info()
    return {
        "rss_mb": info.rss / MB,
        "uss_mb": info.uss / MB,
        "pss_mb": getattr(info, "pss", 0) / MB,
        "shared_mb": getattr(info, "shared", 0) / MB,
    }


def mapped_files(pid: int, under: str) -> list[str]:
    """Files below `under` that the process has memory-mapped."""
    try:
        return sorted(
            {
                m.path
                for m in psutil.Process(pid).memory_maps()
                if m.path.startswith(under)
            }
        )
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return []
