"""gunicorn's master loads each newly active model version and re-forks its workers.

With `preload_app` the workers are forked from a master that already holds the
active model, so they share its arrays, the hnswlib index and the lookup tables
copy-on-write. A version activated later would be loaded by every worker on its
own (a private hnswlib index each: ≈ 60 MB per worker at 100k items). Instead, a
daemon thread of the master (`watcher_start`, called by gunicorn.conf.py's
`when_ready`) checks the active version every `RECSITE["SERVING_REFRESH_S"]`
seconds, loads a new one into the master and sends the master SIGHUP: gunicorn's
`Arbiter.reload()` (the application is not imported again with `preload_app`)
forks new workers, which share the new model, and stops the old ones gracefully.
Meanwhile the old workers keep serving their model (`serving.MASTER_LOADS_ENV`),
loading the new one themselves only if the master has not replaced them within
`RECSITE["MASTER_RELOAD_GRACE_S"]`.

Fork safety: the check uses Django's database connection and the cache from the
watcher thread. psycopg2 sends Terminate when a connection object is freed, and a
forked child frees the thread-local state of the parent's other threads, so a worker
forked while the watcher held a connection could close the master's connection. Each
check therefore runs under `_lock` and closes that thread's connections before
releasing it, and an at-fork hook takes the same lock, so gunicorn never forks in the
middle of a check (a fork waits for a check in progress, model load included).

gunicorn re-executes gunicorn.conf.py on every reload; the state lives here, in a
module imported once per master, so the watcher starts once.

Switches (environment): GUNICORN_RELOAD_ON_ACTIVATION=0 disables the watcher (each
worker then loads a new version itself); GUNICORN_PRELOAD_MODEL=0 disables it too.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from recsite.memory import trim_heap

RELOAD_ENV = "GUNICORN_RELOAD_ON_ACTIVATION"
PRELOAD_ENV = "GUNICORN_PRELOAD_MODEL"
# The watcher never checks more often than this (test settings use
# SERVING_REFRESH_S = 0: "check on every request").
MIN_INTERVAL_S = 0.25
# A SIGHUP the master did not act on (no reload seen) is sent again after this.
HUP_RETRY_S = 30.0
# While checks keep failing (database down), one log entry per this many seconds.
ERROR_REPORT_S = 60.0

logger = logging.getLogger(__name__)

# Held during a check and across every fork of this process.
_lock = threading.Lock()
_thread: threading.Thread | None = None
_log = logger
# The version the current workers were forked with (None: popularity).
_workers_version: int | None = None
# (version, monotonic time) of the last SIGHUP this module sent.
_hup_sent: tuple[int | None, float] | None = None
_at_fork_registered = False
reloads_requested = 0


def enabled(environ=None) -> bool:
    """Whether the master should load new versions and re-fork (environment)."""
    environ = os.environ if environ is None else environ
    return environ.get(RELOAD_ENV, "1") != "0" and environ.get(PRELOAD_ENV, "1") != "0"


def _before_fork() -> None:
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    # The child has no watcher thread; a fresh lock for anything that forks again.
    global _lock, _thread
    _lock = threading.Lock()
    _thread = None
    # A worker keeps serving its model after an activation, waiting to be replaced
    # by a fork of the master (only in the children: serving defers in any process
    # where this is set, and the master is the one that must load).
    from recommendations import serving

    os.environ[serving.MASTER_LOADS_ENV] = "1"


def watcher_start(server=None) -> bool:
    """In gunicorn's master, after the active model is preloaded: start the watcher
    thread (once) and tell the workers forked from now on that the master loads new
    versions (`serving.MASTER_LOADS_ENV`, set in each child at fork). False if
    disabled or already running."""
    global _thread, _log, _workers_version, _at_fork_registered
    from recommendations import serving

    # Never set in the master itself (serving would defer there too); the workers
    # get it at fork (_after_fork_in_child).
    os.environ.pop(serving.MASTER_LOADS_ENV, None)
    if not enabled():
        # Workers load a new version themselves, without waiting for the master.
        return False
    if _thread is not None and _thread.is_alive():
        return False
    if server is not None and getattr(server, "log", None) is not None:
        _log = server.log
    _workers_version = serving.loaded_version_id()
    if not _at_fork_registered:
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
        _at_fork_registered = True
    _thread = threading.Thread(
        target=_run, args=(os.getpid(),), name="recsite-model-watcher", daemon=True
    )
    _thread.start()
    _log.info(
        "model watcher started: the master loads newly active versions "
        "(serving version %s)",
        _workers_version,
    )
    return True


def on_reload(server=None) -> None:
    """gunicorn's on_reload hook (master, right before new workers are forked)."""
    global _workers_version, _hup_sent
    from recommendations import serving

    _workers_version = serving.loaded_version_id()
    _hup_sent = None


def _interval() -> float:
    from django.conf import settings

    try:
        refresh = float(settings.RECSITE.get("SERVING_REFRESH_S", 3))
    except (TypeError, ValueError):
        refresh = 3.0
    return max(refresh, MIN_INTERVAL_S)


def _close_connections() -> None:
    """Close this thread's database and cache connections (before a fork may run)."""
    from django.core.cache import caches
    from django.db import connections

    try:
        connections.close_all()
    finally:
        caches.close_all()


def check_once() -> int | None:
    """Check the active version now, loading it into this process; the version loaded.

    Runs under the fork lock and leaves no connection of this thread open.
    """
    from recommendations import serving

    with _lock:
        try:
            serving.model_check_now()
            return serving.loaded_version_id()
        finally:
            _close_connections()


def _release_freed_memory() -> None:
    """Give the heap of the replaced model (its hnswlib index, lookup tables) back to
    the system: glibc keeps freed memory in the process otherwise, so the master
    (and, shared with it, every worker forked next) would carry it for good.

    Objects frozen by gunicorn.conf.py (gc.freeze: the workers' collector leaves
    them alone, so their pages stay shared) are collected once and frozen again
    with the new model, before the workers are forked from it.
    """
    import gc

    frozen = gc.get_freeze_count() > 0
    if frozen:
        gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()
    trim_heap()


def preload_catalog(log=None) -> None:
    """Read the item catalog in the master (recommendations/catalog.py), so the
    workers forked next share its arrays and only catch up on what changed since:
    at start (gunicorn.conf.py) and before re-forking for a new model.
    GUNICORN_PRELOAD_CATALOG=0: each worker reads its own."""
    if os.environ.get("GUNICORN_PRELOAD_CATALOG", "1") == "0":
        return
    from recommendations.catalog import catalog

    try:
        catalog.preload()
    except Exception:  # noqa: BLE001 - the workers read their own
        (log or _log).warning("item catalog could not be preloaded", exc_info=True)


def _reload_needed(loaded: int | None, now: float) -> bool:
    if loaded == _workers_version:
        return False
    # One SIGHUP per version; again only if the master has not reloaded meanwhile.
    return not (
        _hup_sent is not None
        and _hup_sent[0] == loaded
        and now - _hup_sent[1] < HUP_RETRY_S
    )


def _run(master_pid: int) -> None:
    global _hup_sent, reloads_requested
    failing_since: float | None = None
    last_report = -1e18
    while True:
        try:
            time.sleep(_interval())
            if os.getpid() != master_pid:  # pragma: no cover - never in a fork
                return
            previous = _workers_version
            loaded = check_once()
            now = time.monotonic()
            if _reload_needed(loaded, now):
                if loaded != previous:
                    with _lock:  # no fork while its connection is open
                        preload_catalog()
                    _release_freed_memory()
                _log.info(
                    "model version %s loaded by the master (workers serve %s): "
                    "re-forking the workers",
                    loaded,
                    _workers_version,
                )
                _hup_sent = (loaded, now)
                reloads_requested += 1
                os.kill(master_pid, signal.SIGHUP)
            if failing_since is not None:
                _log.info("model watcher: checks work again")
                failing_since = None
        except Exception:  # noqa: BLE001 - never let the watcher die, nor the master
            # (database or Redis down: the workers keep serving what they have)
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
            if now - last_report >= ERROR_REPORT_S:
                last_report = now
                _log.exception(
                    "model watcher: check failed (failing for %.0f s); trying again",
                    now - failing_since,
                )
