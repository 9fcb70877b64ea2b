"""Section 5a, the serving floor: what the same gunicorn (2 sync workers) and the same
load (wrk, the run's connections) give for endpoints that do nothing.

Sections 4-5 hold the serving endpoints to p99 bounds at 16 connections. With 2 sync
workers, 16 busy connections queue: by Little's law the mean latency is 16 /
throughput whatever an endpoint does, so a bound on p99 is a floor on requests/s.
This section measures a ladder of do-nothing endpoints, each adding one piece of the
stack a real request goes through (bare WSGI, Django with the project's middleware,
DRF, API-key authentication, the throttle), all answering the same ~1.5 KB body of a
10-item answer: the requests/s each layer leaves, next to the same run's real
endpoints, show which bounds no view code can reach on this machine and what each
piece of the fixed cost takes. It only reads (the API key); the database is unchanged.
"""

from __future__ import annotations

from .context import Context
from .floor_wsgi import BODY
from .load import LoadResult
from .phases import (
    LOAD_COLUMNS,
    SERVE_MAX_P99_MS,
    SIMILAR_MAX_P99_MS,
    _probe,
    _unqueued_rows,
    aggregate_runs,
    guarded,
    load_rounds,
    load_row,
)
from .server import Gunicorn

FLOOR_SETTINGS = "benchmarks.perf.floor_settings"
BARE_APP = "benchmarks.perf.floor_wsgi:application"
# (key, path, what the layer adds), bottom up; paths from floor_urls.py (the bare
# WSGI callable answers any path).
LAYERS: tuple[tuple[str, str, str], ...] = (
    ("wsgi", "/bench-floor/wsgi/", "bare WSGI callable in gunicorn, no Django"),
    ("django", "/bench-floor/django/", "Django view through the project's MIDDLEWARE"),
    (
        "drf",
        "/bench-floor/drf/",
        "DRF APIView and JSON renderer, no authentication, permission or throttle",
    ),
    (
        "drf+auth",
        "/bench-floor/drf-auth/",
        "DRF + the project's API-key authentication and permission",
    ),
    (
        "drf+auth+throttle",
        "/bench-floor/drf-auth-throttle/",
        (
            "DRF + authentication, permission and the project's throttle (Redis "
            "round trips in batches: the run's limits are far above its load)"
        ),
    ),
)
BARE_LAYERS = ("wsgi",)
DJANGO_LAYERS = tuple(key for key, _, _ in LAYERS if key not in BARE_LAYERS)
# The same run's 16-connection rows of sections 4-5 shown next to the floor: (section,
# label prefix of the row in that section's table).
SERVING_ROWS = (
    ("serve", "GET /api/v1/users/{id}/recommendations/"),
    ("serve", "GET /api/v1/users/{id}/ (baseline)"),
    ("similar", "GET /api/v1/items/{id}/similar/"),
)
USER_ROW = SERVING_ROWS[1]  # the authenticated baseline
COLUMNS = [*LOAD_COLUMNS, "vs bare WSGI"]


def _path(layer: str) -> str:
    return next(p for key, p, _ in LAYERS if key == layer)


def _label(layer: str) -> str:
    index, what = next((i, w) for i, (key, _, w) in enumerate(LAYERS) if key == layer)
    return f"{index}. `{layer}`: {what}"


def _measure(
    ctx: Context, server: Gunicorn, layers: tuple[str, ...], rounds: int
) -> tuple[dict[str, list[LoadResult]], dict[str, LoadResult]]:
    """Check each layer's answer, warm it up, then `rounds` interleaved runs at the
    run's connections and one at 2 connections (one per worker: no queueing)."""
    for layer in layers:
        code, body = _probe(server.base_url, _path(layer), ctx.read_key)
        if code != 200 or body != BODY:
            # every layer must send the same bytes, or the comparison is not fair
            raise RuntimeError(
                f"floor layer {layer} answered {code} with {len(body)} bytes, "
                f"expected 200 with the {len(BODY)}-byte body: {body[:200]!r}"
            )
    return load_rounds(
        ctx,
        server,
        {layer: [_path(layer)] for layer in layers},
        label="floor",
        rounds=rounds,
        warmup_requests=200 if ctx.scale.name == "tiny" else 2_000,
    )


def _serving_rows(ctx: Context, wsgi_rps: float | None) -> tuple[list[list], float]:
    """The same run's 16-connection rows of sections 4-5 (when they ran), compared
    with the bare WSGI layer; and GET user's requests/s (0.0 when not measured)."""
    rows, user_rps = [], 0.0
    for key, prefix in SERVING_ROWS:
        section = ctx.results.get(key) or {}
        if section.get("status") != "ok":
            continue
        row = next(
            (r for r in section.get("rows", []) if str(r[0]).startswith(prefix)), None
        )
        if row is None:
            continue
        rps = row[1]
        if (key, prefix) == USER_ROW:
            user_rps = rps or 0.0
        number = "4" if key == "serve" else "5"
        rows.append(
            [
                f"section {number}, same run: {row[0]}",
                *row[1:6],
                f"{rps / wsgi_rps:.2f}×" if rps and wsgi_rps else "—",
            ]
        )
    return rows, user_rps


@guarded("floor")
def _floor_note(
    ctx: Context, agg: dict[str, dict], order: list[str], user_rps: float | None
) -> str:
    """Little's law for each layer, and what the fullest do-nothing layer says about
    the p99 bounds of sections 4-5."""
    c = ctx.connections
    means = ", ".join(
        f"`{key}` {1000.0 * c / agg[key]['rps']:.0f} ms"
        for key in order
        if agg[key]["rps"]
    )
    top = agg[order[-1]]
    bounds = []
    for section, bound in (("4", SERVE_MAX_P99_MS), ("5", SIMILAR_MAX_P99_MS)):
        needed = c / (bound / 1000.0)
        verdict = "above" if top["p99"] > bound else "within"
        bounds.append(
            f"section {section}'s {bound:g} ms needs more than {needed:,.0f} req/s "
            f"before any spread, and the do-nothing `{order[-1]}` endpoint's own p99 "
            f"({top['p99']:.1f} ms) is {verdict} it"
        )
    baseline = (
        f" The authenticated GET user baseline reached {user_rps:,.0f} req/s."
        if user_rps
        else ""
    )
    return (
        f"At {c} connections every request waits for the ones ahead of it (2 sync "
        f"workers), so the mean latency is {c} / throughput (Little's law) whatever "
        f"an endpoint does: {means}. For a p99 bound, "
        + "; ".join(bounds)
        + f".{baseline} The 2-connection rows show each request's own time."
    )


def phase_floor(ctx: Context) -> dict:
    """The floor's five layers on the benchmark's gunicorn, at the run's connections
    and at 2 connections, next to the same run's serving rows."""
    seconds = ctx.scale.seconds
    rounds = 1 if ctx.scale.name == "tiny" else 2
    runs: dict[str, list[LoadResult]] = {}
    unqueued: dict[str, LoadResult] = {}
    # gunicorn.conf.py's when_ready imports the Django project into the master: not
    # for the bare callable (Django is not set up there, and it is what layer 0
    # leaves out).
    bare_env = ctx.django_env(GUNICORN_EAGER_IMPORTS="0")
    ctx.say("floor: layer 0 (bare WSGI) on its own gunicorn")
    with Gunicorn(
        env=bare_env, workers=2, log_path=ctx.log_path, app=BARE_APP
    ) as server:
        r16, r2 = _measure(ctx, server, BARE_LAYERS, rounds)
        runs.update(r16)
        unqueued.update(r2)
    ctx.say("floor: layers 1-4 (Django, DRF) on the benchmark's gunicorn")
    django_env = ctx.django_env(DJANGO_SETTINGS_MODULE=FLOOR_SETTINGS)
    with Gunicorn(env=django_env, workers=2, log_path=ctx.log_path) as server:
        r16, r2 = _measure(ctx, server, DJANGO_LAYERS, rounds)
        runs.update(r16)
        unqueued.update(r2)

    agg = {layer: aggregate_runs(rs) for layer, rs in runs.items()}
    wsgi_rps = agg["wsgi"]["rps"]
    order = [key for key, _, _ in LAYERS]
    rows = [
        load_row(
            _label(layer),
            agg[layer],
            f"{agg[layer]['rps'] / wsgi_rps:.2f}×" if wsgi_rps else "—",
        )
        for layer in order
    ]
    serving, user_rps = _serving_rows(ctx, wsgi_rps)
    rows += serving
    rows += _unqueued_rows(unqueued, tuple((key, f"`{key}`") for key in order))
    tool = runs["wsgi"][0].tool
    notes = [
        f"{ctx.connections} connections unless marked, {rounds} round(s) of "
        f"{seconds:g} s per layer (medians shown), load by {tool}; the same "
        "gunicorn as sections 4-5 (2 sync workers, gunicorn.conf.py), the bare "
        "WSGI layer on a gunicorn of its own (without gunicorn.conf.py's Django "
        "preloading). Every layer answers the same "
        f"{len(BODY):,}-byte JSON body (a 10-item recommendations answer; checked "
        "before the load). Errors: non-2xx answers plus socket errors, as in "
        "sections 4-5.",
        "The layers are benchmarks/perf/floor_urls.py and floor_wsgi.py; each adds "
        "one piece to the one above it, so two adjacent rows show what that piece "
        "costs under this load.",
    ]
    if not serving:
        notes.append(
            "Sections 4-5 did not run in this run, so their rows are not shown "
            "(`--only serve,similar,floor` measures them together)."
        )
    notes.append(_floor_note(ctx, agg, order, user_rps))
    headline = (
        f"at {ctx.connections} connections: "
        + " → ".join(f"{key} {agg[key]['rps']:,.0f}" for key in order)
        + " req/s"
    )
    return {
        "status": "ok",
        "target": "",
        "met": None,
        "headline": headline,
        "columns": COLUMNS,
        "rows": rows,
        "notes": notes,
        "raw": {
            key: {
                "path": path,
                "runs": [r.as_dict() for r in runs[key]],
                "two_connections": unqueued[key].as_dict(),
            }
            for key, path, _ in LAYERS
        },
    }
