"""Giving freed heap memory back to the system."""

import ctypes


def trim_heap() -> None:
    """`malloc_trim(0)`: glibc keeps freed memory in the process (in every thread's
    arena), so a large transient allocation (a replaced model, a catalog read into
    memory) would otherwise stay in its RSS for good. No-op on another libc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass
