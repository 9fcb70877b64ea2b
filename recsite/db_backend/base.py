"""Django's PostgreSQL backend with a connection health check that costs no query
while nothing has happened to the connection.

With `CONN_HEALTH_CHECKS` Django checks a persistent connection before its first use
in each request, and the stock check is a `SELECT 1`: one more round trip on every
request (about 0.4 ms of web CPU per request here, plus PostgreSQL's; measured with
benchmarks/perf/floor.py's layers). A connection that PostgreSQL ended (restart,
`pg_terminate_backend`, idle timeout) or whose socket was reset has something to read
on its socket, an error message or the end of the stream, while an idle healthy
connection has nothing. So: a connection that is idle, open and silent is usable
without asking; anything else gets the stock `SELECT 1`.

A peer that vanished without closing (a cable pulled) is not seen by either check
in time: `SELECT 1` would wait for TCP's retransmission timeout as the request's own
first query does.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg2 import extensions

_QUIET_STATES = (extensions.TRANSACTION_STATUS_IDLE,)
_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def socket_is_quiet(conn) -> bool:
    """True when the psycopg2 connection is open, idle outside a transaction, and
    its socket has nothing to read (no message or end of stream from the server)."""
    if conn is None or conn.closed:
        return False
    try:
        if conn.info.transaction_status not in _QUIET_STATES:
            return False
        poller = select.poll()
        poller.register(conn.fileno(), _EVENTS)
        return not poller.poll(0)
    except (OSError, ValueError, extensions.InterfaceError):
        return False


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if socket_is_quiet(self.connection):
            return True
        return super().is_usable()  # SELECT 1
