"""The connection health check (recsite/db_backend): no query on a quiet connection,
the stock `SELECT 1` and a reconnect on one PostgreSQL has ended."""

import time

import psycopg2
import pytest
from django.db import connection

from recsite.db_backend.base import socket_is_quiet


def _server_query_of(pid: int) -> str:
    """What PostgreSQL says backend `pid` ran last, asked over a second connection."""
    params = connection.get_connection_params()
    with psycopg2.connect(**params) as other, other.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    other = psycopg2.connect(**params)
    other.autocommit = True
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    other.close()


@pytest.mark.django_db(transaction=True)
def test_a_quiet_connection_is_usable_without_a_query():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'health-check-marker'")
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    assert socket_is_quiet(connection.connection)
    assert connection.is_usable()
    # The server saw no SELECT 1: its last statement is still ours.
    assert _server_query_of(pid) == "SELECT pg_backend_pid()"


@pytest.mark.django_db(transaction=True)
def test_a_connection_inside_a_transaction_is_checked_the_stock_way():
    from django.db import transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert not socket_is_quiet(connection.connection)
        assert connection.is_usable()  # SELECT 1 in the open transaction


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_before_the_next_request():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    _terminate(pid)
    deadline = time.monotonic() + 5
    while socket_is_quiet(connection.connection) and time.monotonic() < deadline:
        time.sleep(0.02)  # the server's goodbye is on its way
    assert not socket_is_quiet(connection.connection)
    assert not connection.is_usable()

    # What Django does at the start of a request's first query.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_closed_or_missing_connection_is_not_quiet():
    assert not socket_is_quiet(None)

    class Closed:
        closed = 1

    assert not socket_is_quiet(Closed())
