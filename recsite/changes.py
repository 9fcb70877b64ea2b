"""Change notifications from PostgreSQL, so a process can keep data in memory and
still see every write at once.

Statement-level triggers (`recommendations` migration 0007) on the tables serving
reads on every request (API keys, items and their labels, business rules) send
`NOTIFY recsite_changes, '<table>:<pks>'` when a statement that changed rows
commits: the changed rows' ids (comma-separated, or `*` for "any row": TRUNCATE,
tables reported as a whole, or an id list longer than 7,000 characters, as a
notification holds at most 8,000 bytes). PostgreSQL
delivers a notification only on commit, to every session listening, in commit
order, and folds identical ones of one transaction together.

Each process runs one `ChangeFeed`: a daemon thread with its own connection that
LISTENs and hands each notification to the handlers registered for its table. The
process's caches are trusted only while the feed is `live()`:

* A cache entry stores `feed.version(table)` as of *before* it read the database,
  and is used only while `feed.version(table)` still equals it. The version changes
  with every notification for the table and every (re)connection, so an entry read
  before a write committed is dropped as soon as that write's notification arrives,
  and nothing read while the feed was down is ever trusted later.
* Handlers that patch a cache in place (the serving catalog) run in the feed's
  thread with its connection, so they can read the changed rows right away.

What it costs: one connection per process, and the time between a write's commit
and its notification being handled (under a millisecond on one machine), during
which a request can still see the old row. When the feed is down or turned off
(`RECSITE["CHANGE_FEED"] = False`, as in the test settings: a test's transaction is
never committed, so it would never notify), every read goes to the database as
before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "recsite_changes"
APPLICATION_NAME = "recsite-change-feed"
RECONNECT_S = (0.5, 1.0, 2.0, 5.0)
IDLE_PING_S = 30.0
TICK_S = 0.5

# Handler: (table, ids or None for "any row", the feed's connection) -> None. It
# runs in the feed's thread. Nothing is called when the feed goes down: every cache
# is judged by `live()` and `version()`, and the connect hooks catch up.
Handler = Callable[[str, "frozenset[int] | None", object], None]


@dataclass(frozen=True)
class Change:
    """One notification: a table and the ids of the rows changed (None: any)."""

    table: str
    ids: frozenset[int] | None

    @classmethod
    def parse(cls, payload: str) -> Change | None:
        table, sep, rest = payload.partition(":")
        if not sep or not table:
            return None
        if rest == "*":
            return cls(table, None)
        try:
            return cls(table, frozenset(int(x) for x in rest.split(",") if x))
        except ValueError:
            return cls(table, None)


def merge_changes(changes: list[Change]) -> list[Change]:
    """One change per table, in first-seen order ("any row" absorbs id lists)."""
    merged: dict[str, frozenset[int] | None] = {}
    for change in changes:
        if change.table in merged:
            known = merged[change.table]
            merged[change.table] = (
                None if known is None or change.ids is None else known | change.ids
            )
        else:
            merged[change.table] = change.ids
    return [Change(table, ids) for table, ids in merged.items()]


class ChangeFeed:
    """One process's listener (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connected = False
        self._epoch = 0  # bumped on every (re)connection and disconnection
        self._counters: dict[str, int] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._connect_hooks: list[Callable[[object], None]] = []
        self._tick_hooks: list[Callable[[object], None]] = []
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_error: str | None = None

    # ---------------------------------------------------------------- consumers

    def live(self) -> bool:
        """True while notifications are being received (starts the feed if needed)."""
        if self._pid != os.getpid():
            self.start()
        return self._connected and self.enabled()

    def version(self, table: str) -> tuple[int, int]:
        """Changes with every notification for `table` and every reconnection."""
        return self._epoch, self._counters.get(table, 0)

    def subscribe(self, table: str, handler: Handler) -> None:
        """Call `handler` for every change to `table` (in the feed's thread)."""
        with self._lock:
            self._handlers.setdefault(table, []).append(handler)

    def on_tick(self, hook: Callable[[object], None]) -> None:
        """Call `hook(connection)` in the feed's thread about every TICK_S while
        live, whether notifications arrive or not (deferred work: a debounce)."""
        with self._lock:
            self._tick_hooks.append(hook)

    def on_connect(self, hook: Callable[[object], None]) -> None:
        """Call `hook(connection)` after each (re)connection, once LISTEN is on and
        before the feed reports itself live (catch-up reads go here)."""
        with self._lock:
            self._connect_hooks.append(hook)

    # ----------------------------------------------------------------- lifecycle

    def enabled(self) -> bool:
        return bool(settings.RECSITE.get("CHANGE_FEED", True))

    def start(self) -> None:
        """Start the listener thread of this process (again after a fork)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._connected = False
            self._epoch += 1
            self._stop = threading.Event()
            if not self.enabled():
                self._thread = None
                return
            self._thread = threading.Thread(
                target=self._run, name="recsite-change-feed", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening (tests); `live()` starts it again."""
        thread = self._thread
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            self._pid = None
            self._thread = None
            self._set_down()

    def wait_live(self, timeout: float = 10.0) -> bool:
        """Block until the feed is live (tests, the benchmark's warm-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.live():
                return True
            time.sleep(0.01)
        return self._connected

    # -------------------------------------------------------------- the thread

    def _connect(self):
        import psycopg2
        from django.db import connections

        params = dict(connections["default"].get_connection_params())
        params["application_name"] = APPLICATION_NAME  # pg_stat_activity shows it
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        failures = 0
        stop = self._stop
        while not stop.is_set():
            conn = None
            try:
                conn = self._connect()
                for hook in list(self._connect_hooks):
                    hook(conn)
                with self._lock:
                    self._epoch += 1
                    self._connected = True
                    self.last_error = None
                if failures:
                    logger.info("change feed: listening again")
                failures = 0
                self._listen(conn, stop)
            except Exception as exc:  # noqa: BLE001 - any failure: caches off, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                if failures == 0:
                    logger.warning(
                        "change feed down (%s): serving reads the database",
                        self.last_error,
                    )
                failures += 1
            finally:
                with self._lock:
                    self._set_down()
                if conn is not None:
                    with contextlib.suppress(Exception):  # already broken
                        conn.close()
            if failures:
                stop.wait(RECONNECT_S[min(failures, len(RECONNECT_S)) - 1])

    def _listen(self, conn, stop: threading.Event) -> None:
        idle_since = last_tick = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - last_tick >= TICK_S:
                last_tick = time.monotonic()
                for hook in list(self._tick_hooks):
                    hook(conn)  # a failure goes down and reconnects, as a handler's
            # Notifications that arrived while this connection ran a query (a
            # handler's re-read, a catch-up) are already read off the socket: handle
            # them before waiting on it again, or they would wait for the next one.
            if not conn.notifies:
                ready, _, _ = select.select([conn], [], [], TICK_S)
                if not ready:
                    if time.monotonic() - idle_since > IDLE_PING_S:
                        with conn.cursor() as cursor:  # notices a dead server
                            cursor.execute("SELECT 1")
                        idle_since = time.monotonic()
                    continue
                idle_since = time.monotonic()
                conn.poll()
                if not conn.notifies:
                    continue
            payloads = [n.payload for n in conn.notifies]
            del conn.notifies[:]
            changes = [c for p in payloads if (c := Change.parse(p)) is not None]
            for change in merge_changes(changes):
                with self._lock:
                    self._counters[change.table] = (
                        self._counters.get(change.table, 0) + 1
                    )
                for handler in list(self._handlers.get(change.table, ())):
                    try:
                        handler(change.table, change.ids, conn)
                    except Exception:
                        # Its cache may now be stale: go down (every cache is
                        # dropped) and reconnect (the connect hooks reload).
                        logger.exception(
                            "change feed handler for %s failed", change.table
                        )
                        raise

    def _set_down(self) -> None:
        self._connected = False
        self._epoch += 1


feed = ChangeFeed()


class VersionedCache:
    """Values read from one table, used while the feed is live and no write to the
    table has been notified since they were read; read through on every call
    otherwise. Bounded: emptied when full."""

    def __init__(self, table: str, max_entries: int) -> None:
        self.table = table
        self.max_entries = max_entries
        self.data: dict = {}

    def get(self, key, read: Callable[[], object]):
        if not feed.live():
            return read()
        version = feed.version(self.table)  # before the read: a later write wins
        entry = self.data.get(key)
        if entry is not None and entry[0] == version:
            return entry[1]
        value = read()
        if len(self.data) >= self.max_entries:
            self.data.clear()
        self.data[key] = (version, value)
        return value

    def clear(self) -> None:
        self.data.clear()


def _after_fork_in_child() -> None:
    # The thread does not survive a fork; `live()` starts a new one in the child.
    feed._lock = threading.Lock()
    feed._connected = False
    feed._thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)
