"""Schemathesis against the project's own OpenAPI document, in-process through WSGI.

Shared by the bounded suite test (tests/reliability/test_fuzz_schemathesis.py) and the
longer run (benchmarks/fuzz_schemathesis.py). Needs a configured Django and a database
whose writes commit (a `transaction=True` test, or a real database).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import hypothesis.errors
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase
from schemathesis.checks import load_all_checks
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

SCHEMA_URL = "/api/schema/?format=json"
# The OpenAPI document and the docs pages are static; fuzzing them finds nothing.
SKIPPED_PATH_PREFIXES = ("/api/schema", "/api/docs", "/api/redoc")


def _checks(names: tuple[str, ...]):
    load_all_checks()
    from schemathesis import checks as st_checks
    from schemathesis.specs.openapi import checks as openapi_checks

    found = []
    for name in names:
        check = getattr(openapi_checks, name, None) or getattr(st_checks, name, None)
        if check is None:
            raise LookupError(f"unknown schemathesis check {name!r}")
        found.append(check)
    return found


# No 5xx; every documented response matches its schema and media type.
SUITE_CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "content_type_conformance",
)


@dataclass
class Failure:
    operation: str
    mode: str
    message: str
    request: str

    def __str__(self) -> str:
        return (
            f"{self.mode} {self.operation}: {self.message}\n    request: {self.request}"
        )


@dataclass
class FuzzReport:
    operations: list[str] = field(default_factory=list)
    examples: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_examples(self) -> int:
        return sum(self.examples.values())

    def summary(self) -> str:
        lines = [
            f"{len(self.operations)} operations, {self.total_examples} requests in "
            f"{self.seconds:.1f} s; "
            f"status classes {dict(sorted(self.statuses.items()))}; "
            f"{len(self.failures)} failures"
        ]
        lines += [str(failure) for failure in self.failures[:30]]
        return "\n".join(lines)


class _InTestTransaction:
    """WSGI app that leaves the database connection open between requests.

    Django closes a connection whose autocommit differs from the settings at each
    request's end; inside a test's transaction that would end the test's transaction.
    The test client avoids it the same way (by disconnecting `close_old_connections`).
    """

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        with _connections_kept():
            result = self.app(environ, start_response)
        return _ClosingIterable(result)


class _ClosingIterable:
    def __init__(self, result) -> None:
        self.result = result

    def __iter__(self):
        return iter(self.result)

    def close(self) -> None:
        with _connections_kept():
            if hasattr(self.result, "close"):
                self.result.close()


@contextlib.contextmanager
def _connections_kept():
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def load_schema(*, in_test_transaction: bool = False):
    """The OpenAPI document our own view serves, bound to a fresh WSGI application.

    `in_test_transaction=True` for tests using `db` (rolled back) rather than
    `transactional_db` (committed, like production).
    """
    response = Client().get(SCHEMA_URL)
    assert response.status_code == 200, response.content[:500]
    schema = schemathesis.openapi.from_dict(json.loads(response.content))
    app = get_wsgi_application()
    schema.app = _InTestTransaction(app) if in_test_transaction else app
    return schema


def validation_errors(case, response, headers, checks=SUITE_CHECKS) -> list[str]:
    """The schemathesis check failures of one response, as short messages."""
    try:
        case.validate_response(response, checks=_checks(checks), headers=headers)
    except (AssertionError, BaseExceptionGroup) as exc:
        return [_headline(exc)]
    return []


def _headline(exc: BaseException) -> str:
    errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    parts = []
    for error in errors:
        lines = [
            line.strip() for line in str(error).strip().splitlines() if line.strip()
        ]
        parts.append(" / ".join(lines[:3]))
    return " | ".join(parts)[:700]


def _kinds(exc: BaseException) -> str:
    errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    return ",".join(sorted(type(error).__name__ for error in errors))


def _describe(case) -> str:
    body = "" if case.body is None or isinstance(case.body, NotSet) else case.body
    text = json.dumps(body, default=repr, ensure_ascii=True)
    return f"{case.method} {case.formatted_path} query={case.query!r} body={text[:300]}"


def run_fuzz(
    *,
    headers: dict[str, str],
    max_examples: int,
    seed: int,
    modes: tuple[GenerationMode, ...] = (
        GenerationMode.POSITIVE,
        GenerationMode.NEGATIVE,
    ),
    checks: tuple[str, ...] = SUITE_CHECKS,
    methods: tuple[str, ...] | None = None,
    report: FuzzReport | None = None,
) -> FuzzReport:
    """Fuzz every operation in each mode; collect failures instead of stopping."""
    report = report or FuzzReport()
    schema = load_schema()
    check_functions = _checks(checks)
    started = time.perf_counter()
    request_logger = logging.getLogger("django.request")
    level = request_logger.level
    request_logger.setLevel(logging.ERROR)  # thousands of expected 4xx warnings
    try:
        _run_all(
            schema, headers, max_examples, seed, modes, check_functions, methods, report
        )
    finally:
        request_logger.setLevel(level)
    report.seconds += time.perf_counter() - started
    return report


def _run_all(
    schema, headers, max_examples, seed, modes, check_functions, methods, report
):
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith(SKIPPED_PATH_PREFIXES):
            continue
        if methods is not None and operation.method.upper() not in methods:
            continue
        label = f"{operation.method.upper()} {operation.path}"
        if label not in report.operations:
            report.operations.append(label)
        for mode in modes:
            _fuzz_operation(
                operation,
                label,
                mode,
                headers,
                max_examples,
                seed,
                check_functions,
                report,
            )


def _fuzz_operation(
    operation, label, mode, headers, max_examples, seed, checks, report
):
    seen_messages: set[str] = set()

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.seed(seed)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def one_example(case):
        response = case.call(headers=headers)
        report.examples[f"{label} {mode.value}"] += 1
        report.statuses[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # FailureGroup of Failures
            headline = _headline(exc)
            key = f"{response.status_code} {_kinds(exc)}"
            if key not in seen_messages:  # one report per distinct failure
                seen_messages.add(key)
                report.failures.append(
                    Failure(label, mode.value, headline, _describe(case))
                )

    try:
        one_example()
    except hypothesis.errors.Unsatisfiable:
        # e.g. negative data for an operation that takes no input at all.
        report.examples[f"{label} {mode.value}"] += 0
