"""The per-process holder of the active model, and request-time recommendation.

One `Recommender` per process, loaded from memory-mapped artifacts and swapped by
replacing one reference (`_holder.model`) when the active version changes. Which
version is active is checked at most every `RECSITE["SERVING_REFRESH_S"]` seconds
against a Redis key the registry publishes on activation (one indexed database
query when Redis is down or the key is missing). A request takes one local
reference to the loaded model and uses it to the end, so a swap never mixes two
versions inside one response.

Real time without retraining: the user's history is read at request time (seen
items drop out, the user vector is folded in), items created after training get
vectors from their metadata (an `ItemOverlay` refreshed every few seconds), and
business rules, hiding and availability come from the current database state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from recommendations.catalog import live_catalog
from recommendations.models import BusinessRule
from recommendations.selectors import serving as db
from recommendations.selectors.rules import (
    Candidate,
    Rule,
    apply_business_rules,
    blocked_item_pks,
    business_rules_active,
    business_rules_signature,
    pinned_item_pks,
    rule_from_model,
    rules_in_effect,
)
from recommendations.selectors.training import item_metadata_snapshot
from recsite.changes import VersionedCache, feed

if TYPE_CHECKING:
    from recommendations.engine.recommender import Recommender
    from recommendations.engine.types import ItemOverlay, RecommendationResult

logger = logging.getLogger(__name__)

# History read per request: the newest HISTORY_LIMIT rows shape the user vector and
# the item-item scores; every item among the newest SEEN_LIMIT rows is excluded as
# already seen. 500 rather than 200: on the quality benchmark the 1% of users with
# more than 200 interactions got different lists than the engine's offline
# evaluation (which uses the whole history); the cost is a few ms for those users.
HISTORY_LIMIT = 500
SEEN_LIMIT = 2000
# Over-fetch so that filtering (hidden, blocked, diversity) still fills the page.
OVERFETCH = 3
SPARE_CANDIDATES = 5
MAX_FETCH_ROUNDS = 4
# Small per-process caches (seconds).
POPULAR_CACHE_S = 5.0
LABEL_CACHE_S = 10.0
UNAVAILABLE_CACHE_S = 5.0
TYPES_CACHE_S = 30.0
# Item rows (title, labels) kept per process; visibility is always read live.
ITEM_ROW_TTL_S = 60.0
ITEM_ROW_CACHE_MAX = 10_000
RETRY_FAILED_LOAD_S = 60.0
REDIS_RETRY_S = 5.0
# A Redis key that could not be updated is trusted at most this long.
ACTIVE_KEY_TTL_S = 60
OVERLAY_MAX_ITEMS = 100_000
# Overlay refreshes re-read rows updated slightly before the last refresh
# (commit delays, clock differences).
OVERLAY_MARGIN_S = 5.0
POPULAR_MIN_POOL = 500
# The lists refresh_popularity_task caches every 15 minutes are used up to twice that
# old (then the live query runs); its trending list covers 7 days.
PRECOMPUTED_MAX_AGE_S = 30 * 60
PRECOMPUTED_TRENDING_WINDOW = timedelta(days=7)

STRATEGY_POPULAR = "popular"
REASON_TEXT = {
    "because_you_interacted": "Because you liked {title}",
    "similar_to": "Similar to {title}",
    "matches_category": "Matches category {label}",
    "matches_tag": "Matches tag {label}",
    "popular": "Popular right now",
    "trending": "Trending now",
    "pinned": "Featured",
    "new": "New in the catalog",
}
REASON_FALLBACK = "Recommended for you"


class ItemNotFound(Exception):
    """The item id of a similar-items request does not exist."""


# --------------------------------------------------------------------------- Redis


def _db_scope() -> str:
    # Keys are per database so a test run and a dev server sharing Redis never mix.
    return str(connection.settings_dict.get("NAME") or "default")


def _key(name: str) -> str:
    return f"serving:{_db_scope()}:{name}"


_redis_down_until = 0.0


def _redis(op: Callable[[], Any], default: Any = None) -> Any:
    """Run a cache operation; if Redis is down, skip it for a few seconds."""
    global _redis_down_until
    if time.monotonic() < _redis_down_until:
        return default
    try:
        return op()
    except Exception as exc:  # noqa: BLE001 - any Redis failure means "use the DB"
        logger.warning("redis unavailable for serving (%s); using the database", exc)
        _redis_down_until = time.monotonic() + REDIS_RETRY_S
        return default


def active_version_publish(version_id: int | None) -> None:
    """Tell every serving process which version is active (0 = none)."""
    _redis(lambda: cache.set(_key("active"), int(version_id or 0), ACTIVE_KEY_TTL_S))


def active_version_forget() -> None:
    """Drop the published active version so the next check asks the database."""
    _redis(lambda: cache.delete(_key("active")))


# --------------------------------------------------------------------- the holder


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version; immutable, so a request can hold it safely."""

    version_id: int
    artifact_path: str
    recommender: Recommender
    loaded_at: datetime
    known_max_item_pk: int
    trained_until: float | None = None  # newest training timestamp (unix seconds)


@dataclass(frozen=True)
class OverlayState:
    """New items' vectors for one loaded version (replaced, never mutated)."""

    version_id: int
    max_pk: int
    refreshed_at: float
    refreshed_wall: datetime | None
    vectors: dict = field(default_factory=dict)  # pk -> (ItemVector, cats, tags)
    overlay: Any = None  # ItemOverlay or None when empty


# Set (in the environment, so forked workers inherit it) by gunicorn.conf.py when the
# master process loads each active version and re-forks the workers.
MASTER_LOADS_ENV = "RECSITE_MODEL_LOADED_BY_MASTER"


class _Holder:
    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        # (version id, monotonic time) of an activation this process is waiting for
        # the master to load (see MASTER_LOADS_ENV).
        self.deferred: tuple[int, float] | None = None
        self.overlay: OverlayState | None = None
        self.checked_at = -1e18
        self.overlay_lock = threading.Lock()
        self.load_lock = threading.Lock()
        self.check_lock = threading.Lock()
        self.active_id: int | None = None  # what the database says is active
        self.error: str | None = None
        self.failed: dict[int, tuple[float, str]] = {}


_holder = _Holder()


def _refresh_s() -> float:
    return float(settings.RECSITE.get("SERVING_REFRESH_S", 3))


def _ttl(seconds: float) -> float:
    # Never cache longer than the refresh interval (0 in tests: always fresh).
    return min(seconds, _refresh_s())


def _active_version() -> tuple[int, str] | None:
    """The active (id, artifact path): Redis first, the database when unsure."""
    published = _redis(lambda: cache.get(_key("active")))
    model = _holder.model
    if published is not None:
        if model is not None and int(published) == model.version_id:
            return model.version_id, model.artifact_path
        if int(published) == 0 and _holder.active_id is None:
            return None
    row = db.active_model_version_row()
    truth = row[0] if row else 0
    if published is None or int(published) != truth:
        # add(): never overwrite a newer value an activation published meanwhile.
        _redis(lambda: cache.add(_key("active"), truth, ACTIVE_KEY_TTL_S))
    return row


def _load(version_id: int, path: str) -> LoadedModel:
    from recommendations.engine.artifacts import load_artifacts
    from recommendations.engine.recommender import Recommender
    from recommendations.services.registry import artifact_store

    store = artifact_store()
    local = store.artifact_local_dir(name=path) if store is not None else path
    bundle = load_artifacts(local, mmap=True)
    recommender = Recommender(bundle)
    item_pks = np.asarray(recommender.item_pks)
    return LoadedModel(
        version_id=version_id,
        artifact_path=path,
        recommender=recommender,
        loaded_at=timezone.now(),
        known_max_item_pk=int(item_pks.max()) if item_pks.size else 0,
        trained_until=_float_or_none(bundle.blend.get("trained_until")),
    )


def _float_or_none(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def current_model() -> LoadedModel | None:
    """The loaded active model (checked at most every SERVING_REFRESH_S), or None."""
    holder = _holder
    now = time.monotonic()
    if now - holder.checked_at < _refresh_s():
        return holder.model
    with holder.check_lock:
        if time.monotonic() - holder.checked_at < _refresh_s():
            return holder.model
        holder.checked_at = time.monotonic()
    active = _active_version()
    if active is None:
        holder.active_id = None
        holder.error = None
        if holder.model is not None:
            logger.info("no active model version any more: serving popularity")
        holder.model = None
        return None
    version_id, path = active
    holder.active_id = version_id
    model = holder.model
    if model is not None and model.version_id == version_id:
        holder.error = None
        return model
    failed = holder.failed.get(version_id)
    if failed is not None and time.monotonic() - failed[0] < RETRY_FAILED_LOAD_S:
        return model
    if model is not None and _defer_to_master(version_id):
        return model
    # Load outside any lock that requests wait on; one loader at a time.
    if not holder.load_lock.acquire(blocking=False):
        return model
    try:
        try:
            loaded = _load(version_id, path)
        except Exception as exc:  # noqa: BLE001 - never a 500: keep what we have
            message = (
                f"version {version_id} failed to load: {type(exc).__name__}: {exc}"
            )
            logger.exception("serving: %s", message)
            holder.failed[version_id] = (time.monotonic(), message)
            holder.error = message
            return model
        holder.failed.pop(version_id, None)
        holder.error = None
        holder.model = loaded  # the one reference swap
        logger.info("serving model version %s from %s", version_id, path)
        return loaded
    finally:
        holder.load_lock.release()


def _master_loads_models() -> bool:
    return os.environ.get(MASTER_LOADS_ENV) == "1"


def _defer_to_master(version_id: int) -> bool:
    """True while a gunicorn worker should keep serving its current model because the
    master is loading `version_id` and will replace this worker by a fork sharing it.

    A worker loading the version itself would hold a private copy of the hnswlib
    index (≈ 60 MB per worker at 100k items × 64 dims). If the master
    has not replaced the worker after MASTER_RELOAD_GRACE_S, the worker loads it.
    """
    if not _master_loads_models():
        return False
    holder = _holder
    now = time.monotonic()
    if holder.deferred is None or holder.deferred[0] != version_id:
        holder.deferred = (version_id, now)
    grace = float(settings.RECSITE.get("MASTER_RELOAD_GRACE_S", 120))
    if now - holder.deferred[1] < grace:
        return True
    logger.warning(
        "serving: the master did not load version %s within %.0f s; loading it here",
        version_id,
        grace,
    )
    return False


def loaded_version_id() -> int | None:
    """The version this process serves (None: popularity), without checking."""
    model = _holder.model
    return model.version_id if model is not None else None


def model_check_now() -> LoadedModel | None:
    """Check the active version at once (not waiting for SERVING_REFRESH_S) and load
    it if needed: gunicorn's master calls this before re-forking its workers."""
    _holder.checked_at = -1e18
    _holder.deferred = None
    return current_model()


def _reinit_locks_after_fork() -> None:
    # A fork can happen while another thread of the parent (gunicorn's master
    # watcher) holds one of these locks; the child has no such thread.
    holder = _holder
    holder.overlay_lock = threading.Lock()
    holder.load_lock = threading.Lock()
    holder.check_lock = threading.Lock()
    holder.deferred = None
    _cache.lock = threading.Lock()
    _item_row_cache.lock = threading.Lock()


def model_health() -> dict:
    """Serving state for /api/v1/health/: status ok/fallback/error/none."""
    model = current_model()
    holder = _holder
    active_id = holder.active_id
    if active_id is None:
        return {
            "status": "none",
            "version": None,
            "loaded_at": None,
            "error": None,
            "strategy": STRATEGY_POPULAR,
        }
    failure = holder.failed.get(active_id)
    if model is not None and model.version_id == active_id:
        return {
            "status": "ok",
            "version": model.version_id,
            "loaded_at": model.loaded_at.isoformat(),
            "error": None,
        }
    error = failure[1] if failure else holder.error or "active version not loaded yet"
    if model is not None:
        # The active version is broken: the previous one keeps serving.
        return {
            "status": "fallback",
            "version": model.version_id,
            "active_version": active_id,
            "loaded_at": model.loaded_at.isoformat(),
            "error": error,
        }
    return {
        "status": "error",
        "version": None,
        "active_version": active_id,
        "loaded_at": None,
        "error": error,
        "strategy": STRATEGY_POPULAR,
    }


# --------------------------------------------------------------- per-process caches


class _TTLCache:
    """A tiny thread-safe dict whose entries expire (values replaced, not mutated)."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.lock = threading.Lock()

    def get(self, key, ttl: float, compute: Callable[[], Any]):
        entry = self.data.get(key)
        now = time.monotonic()
        if entry is not None and now - entry[0] < ttl:
            return entry[1]
        value = compute()
        with self.lock:
            if len(self.data) > 1000:
                self.data.clear()
            self.data[key] = (now, value)
        return value

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_cache = _TTLCache()
os.register_at_fork(after_in_child=_reinit_locks_after_fork)


@dataclass(frozen=True)
class _RuleCache:
    signature: str
    rules: tuple[Rule, ...]


_rules_cache: _RuleCache | None = None
# While the change feed is live: the rules as of the last notified write.
_feed_rules = VersionedCache(BusinessRule._meta.db_table, 1)


def business_rules_current(signature: str | None = None) -> list[Rule]:
    """Active rules, cached per process; any change to a rule row applies at once.

    `signature`: the rules' signature when the caller already fetched it with
    another query of this request. Without it, while the change feed is live
    (recsite/changes.py), the cache holds until a write to the rules' table is
    notified, and no query runs.
    """
    global _rules_cache
    # The signature is a hash of the active rule rows (one tiny aggregate query),
    # so writes that bypass the services (admin bulk updates) count too; the feed's
    # trigger fires on those as well.
    if signature is None:
        if feed.live():
            return list(
                _feed_rules.get("rules", lambda: tuple(business_rules_active()))
            )
        signature = business_rules_signature()
    entry = _rules_cache
    if entry is not None and entry.signature == signature:
        return list(entry.rules)
    rules = tuple(business_rules_active())
    _rules_cache = _RuleCache(signature, rules)
    return list(rules)


def rules_cache_clear() -> None:
    """Forget this process's cached rules (the next request reloads them)."""
    global _rules_cache
    _rules_cache = None
    _feed_rules.clear()


def _type_weights() -> dict[int, float]:
    return _cache.get(("types",), TYPES_CACHE_S, db.interaction_type_weights)


def _label_pks(category: str | None, tag: str | None) -> np.ndarray | None:
    if category is None and tag is None:
        return None
    return _cache.get(
        ("label", category, tag),
        _ttl(LABEL_CACHE_S),
        lambda: db.item_pks_with_label(category=category, tag=tag),
    )


def _unavailable_pks() -> np.ndarray:
    return _cache.get(
        ("unavailable",),
        _ttl(UNAVAILABLE_CACHE_S),
        lambda: db.unavailable_item_pks(now=timezone.now()),
    )


def _precomputed_popular_forget() -> None:
    from recommendations.services import maintenance

    clear = getattr(maintenance, "popularity_cache_clear", None)
    key = getattr(maintenance, "_popularity_cache_key", None)
    if clear is not None:
        _redis(clear)
    elif key is not None:
        _redis(lambda: cache.delete(key()))


def serving_reset() -> None:
    """Forget the loaded model and every cache (tests; after restoring a database)."""
    global _holder, _rules_cache, _redis_down_until
    _holder = _Holder()
    _rules_cache = None
    _redis_down_until = 0.0
    _cache.clear()
    _item_row_cache.clear()
    db.label_names_forget()
    active_version_forget()
    _precomputed_popular_forget()


# ------------------------------------------------------------------- new items


def _overlay_for(model: LoadedModel) -> ItemOverlay | None:
    """Vectors of items the model has not seen, refreshed every few seconds."""
    holder = _holder
    state = holder.overlay
    if state is not None and state.version_id != model.version_id:
        state = None
    if state is not None and time.monotonic() - state.refreshed_at < _refresh_s():
        return state.overlay
    if not holder.overlay_lock.acquire(blocking=state is None):
        return state.overlay if state is not None else None
    try:
        state = holder.overlay
        if state is not None and state.version_id != model.version_id:
            state = None
        wall = timezone.now()
        since = None
        if state is not None:
            since = state.refreshed_wall - timedelta(seconds=OVERLAY_MARGIN_S)
        pks = db.items_changed_since(
            min_pk_exclusive=model.known_max_item_pk,
            since=since,
            limit=OVERLAY_MAX_ITEMS,
        )
        recommender = model.recommender
        vectors = dict(state.vectors) if state is not None else {}
        new_pks = [pk for pk in pks if not recommender.knows_item(item_pk=pk)]
        if new_pks:
            meta = item_metadata_snapshot(item_pks=new_pks)
            for i, pk in enumerate(meta.ids.tolist()):
                vector = recommender.item_vector_from_metadata(
                    title=meta.titles[i],
                    description=meta.descriptions[i],
                    categories=meta.categories[i],
                    tags=meta.tags[i],
                    attributes=meta.attributes[i],
                )
                vectors[pk] = (vector, meta.categories[i], meta.tags[i])
        overlay = state.overlay if state is not None and not new_pks else None
        if new_pks or state is None:
            overlay = _build_overlay(vectors)
        holder.overlay = OverlayState(
            version_id=model.version_id,
            max_pk=max([model.known_max_item_pk, *vectors.keys()]),
            refreshed_at=time.monotonic(),
            refreshed_wall=wall,
            vectors=vectors,
            overlay=overlay,
        )
        return overlay
    finally:
        holder.overlay_lock.release()


def _build_overlay(vectors: dict) -> ItemOverlay | None:
    from recommendations.engine.types import ItemOverlay

    if not vectors:
        return None
    pks = sorted(vectors)
    return ItemOverlay.from_vectors(
        pks,
        [vectors[pk][0] for pk in pks],
        categories=[list(vectors[pk][1]) for pk in pks],
        tags=[list(vectors[pk][2]) for pk in pks],
    )


def _overlay_vector(model: LoadedModel, item_pk: int):
    state = _holder.overlay
    if state is not None and state.version_id == model.version_id:
        entry = state.vectors.get(item_pk)
        if entry is not None:
            return entry[0]
    return None


# ------------------------------------------------------------------- item rows


class _ItemRowCache:
    """What responses show of items (id, title, labels), per process.

    An entry is used while the item's `updated_at` is unchanged (every write through
    the services, the API, the admin and bulk imports sets it) and for at most
    ITEM_ROW_TTL_S (renaming a category does not touch its items). Whether an item
    may be shown (hidden, availability window) is never cached: `db.item_states`
    reads it on every request with the updated_at, by primary key.

    Bounded at ITEM_ROW_CACHE_MAX rows: when full, the half read longest ago goes
    (a row read again moves to the end), so the rows in use, which are read again
    every ITEM_ROW_TTL_S, stay; emptying the whole cache made every request after
    it read its rows again at once.
    """

    def __init__(self) -> None:
        self.rows: dict[int, tuple[datetime, float, db.ItemRow]] = {}
        self.lock = threading.Lock()  # writers only (gthread workers); reads: dict gets

    def get(
        self, pks: list[int], *, now: datetime, states: dict | None = None
    ) -> dict[int, db.ItemRow]:
        """Rows of `pks` with their visibility now; `states`: `db.item_states` of
        (at least) these pks when the caller already read them."""
        if states is None:
            states, fresh = db.item_states(pks, now=now, rows_for=self.missing(pks))
            self.put(fresh, states)
        cached = self.rows
        clock = time.monotonic()
        out: dict[int, db.ItemRow] = {}
        missing = []
        for pk in pks:
            state = states.get(pk)
            if state is None:
                continue  # deleted
            updated, visible = state
            entry = cached.get(pk)
            stale = entry is None or entry[0] != updated
            if stale or clock - entry[1] > ITEM_ROW_TTL_S:
                missing.append(pk)
                continue
            row = entry[2]
            out[pk] = row if row.visible == visible else replace(row, visible=visible)
        if missing:
            _, fresh = db.item_states(missing, now=now, rows_for=missing)
            out.update(self.put(fresh, states))
        return out

    def missing(self, pks) -> list[int]:
        """Those of `pks` with no cached row or one past its TTL (a row whose item
        changed since shows up only against the item's state)."""
        cached = self.rows
        clock = time.monotonic()
        return [
            pk
            for pk in pks
            if (entry := cached.get(pk)) is None or clock - entry[1] > ITEM_ROW_TTL_S
        ]

    def put(self, fresh: dict[int, db.ItemRow], states: dict) -> dict[int, db.ItemRow]:
        """Cache rows just read, with the visibility of `states`."""
        clock = time.monotonic()
        out = {}
        for pk, row in fresh.items():
            if pk not in states:
                continue
            visible = states[pk][1]
            if row.visible != visible:  # as of states (the two reads may differ)
                row = replace(row, visible=visible)
            out[pk] = row
        with self.lock:
            cached = self.rows
            excess = len(cached) + len(out) - ITEM_ROW_CACHE_MAX
            if excess > 0:
                # Dicts keep insertion order: the first keys were read longest ago.
                for pk in list(islice(cached, excess + ITEM_ROW_CACHE_MAX // 2)):
                    del cached[pk]
            for pk, row in out.items():
                cached.pop(pk, None)  # to the end: read just now
                cached[pk] = (states[pk][0], clock, row)
        return out

    def clear(self) -> None:
        self.rows = {}


_item_row_cache = _ItemRowCache()


def _item_rows(
    pks: list[int], *, now: datetime, states: dict | None = None
) -> dict[int, db.ItemRow]:
    """Rows of these items with their visibility now (see _ItemRowCache), from
    the in-memory catalog while it is live."""
    catalog = live_catalog()
    if catalog is not None:
        return catalog.rows(pks, now=now)
    return _item_row_cache.get(pks, now=now, states=states)


def _pks_by_external_ids(external_ids: list[str]) -> dict[str, int]:
    if not external_ids:
        return {}
    catalog = live_catalog()
    if catalog is not None:
        return catalog.pks_of(external_ids)
    return db.item_pks_by_external_ids(external_ids)


# -------------------------------------------------------------------- responses


@dataclass(frozen=True)
class RecommendedItem:
    """One recommended item as the API shows it."""

    id: str
    score: float
    title: str
    categories: list[str]
    reason: str
    pk: int
    reason_kind: str
    pinned: bool = False


@dataclass(frozen=True)
class RecommendationResponse:
    """A ranked page of recommendations and how it was made."""

    items: list[RecommendedItem]
    model_version: int | None
    strategy: str
    recommendation_id: uuid.UUID
    ignored_items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListOptions:
    """Paging, filters and rules common to every recommendation endpoint."""

    n: int = 10
    offset: int = 0
    category: str | None = None
    tag: str | None = None
    exclude: tuple[str, ...] = ()
    max_per_category: int | None = None
    extra_rules: tuple[Rule, ...] = ()
    ignore_rule_ids: frozenset[int] = frozenset()


# A candidate source: (k, exclude pks, allowed pks) -> engine result.
Source = Callable[[int, np.ndarray, "np.ndarray | None"], "RecommendationResult"]


def _as_rules(extra_rules) -> tuple[Rule, ...]:
    out = []
    for rule in extra_rules or ():
        out.append(rule if isinstance(rule, Rule) else rule_from_model(rule))
    return tuple(out)


def _reason_text(reason, rows: dict[int, db.ItemRow]) -> tuple[str, str]:
    if reason is None:
        return REASON_FALLBACK, "none"
    kind = getattr(reason, "kind", str(reason))
    template = REASON_TEXT.get(kind)
    if template is None:
        return REASON_FALLBACK, kind
    if "{title}" in template:
        row = rows.get(getattr(reason, "item_pk", None))
        if row is None or not row.title:
            return REASON_FALLBACK, kind
        return template.format(title=row.title), kind
    if "{label}" in template:
        label = getattr(reason, "label", None)
        if not label:
            return REASON_FALLBACK, kind
        return template.format(label=label), kind
    return template, kind


def _named_item_pks(reasons) -> set[int]:
    """Pks of the items these reasons name ("Because you liked ...")."""
    return {int(r.item_pk) for r in reasons if getattr(r, "item_pk", None) is not None}


def _candidate(row: db.ItemRow, score: float | None, reason=None) -> Candidate:
    return Candidate(
        pk=row.pk,
        external_id=row.external_id,
        title=row.title,
        categories=row.categories,
        tags=row.tags,
        score=score,
        reason=reason,
    )


def _rank(
    source: Source,
    options: ListOptions,
    *,
    base_exclude: Sequence[int] = (),
    pins_exclude: Sequence[int] = (),
    default_reason: str = "popular",
    rules_signature: str | None = None,
) -> tuple[list[RecommendedItem], str, list[int]]:
    """Score -> fetch rows (visibility in the same query) -> rules -> one page."""
    now = timezone.now()
    saved = [
        r
        for r in business_rules_current(rules_signature)
        if r.id not in options.ignore_rule_ids
    ]
    rules = rules_in_effect([*saved, *options.extra_rules], now=now)
    excluded_ids = _pks_by_external_ids(list(options.exclude))
    catalog = live_catalog()
    exclude = np.unique(
        np.concatenate(
            [
                np.asarray(list(base_exclude), dtype=np.int64),
                np.asarray(list(excluded_ids.values()), dtype=np.int64),
                np.asarray(sorted(blocked_item_pks(rules)), dtype=np.int64),
                _unavailable_pks(),
            ]
        )
    )
    never = set(exclude.tolist())
    allowed = _label_pks(options.category, options.tag)
    pins = pinned_item_pks(rules) - never - set(pins_exclude)
    limit = options.offset + options.n
    strategy = STRATEGY_POPULAR
    final: list[Candidate] = []
    rows: dict[int, db.ItemRow] = {}
    # Labels matter only to category/tag rules and options; without them the
    # titles and labels are read for the shown page alone (fewer rows per request).
    labels_needed = (
        options.category is not None
        or options.tag is not None
        or options.max_per_category is not None
        or any(r.target != BusinessRule.Target.ITEM for r in rules)
    )
    # Over-fetch when rules may drop or re-order candidates (labels, boosts); else
    # the engine already left out everything excluded, and a few spare candidates
    # cover items hidden since the unavailable list was read. A short page asks again.
    if labels_needed or any(r.action == BusinessRule.Action.BOOST for r in rules):
        k = OVERFETCH * limit + len(pins)
    else:
        k = limit + len(pins) + SPARE_CANDIDATES
    for _round in range(MAX_FETCH_ROUNDS):
        result = source(k, exclude, allowed)
        strategy = result.strategy
        pks = [int(pk) for pk in np.asarray(result.item_pks).tolist()]
        reason_pks = _named_item_pks(result.reasons)
        asked = sorted(set(pks) | pins)
        # Visibility now of every candidate, pin and item a reason names, with the
        # rows (titles, labels): from the in-memory catalog while it is live, else
        # one query that also reads the rows of those likely shown that this
        # process has not cached (every candidate when labels decide, else the
        # first page's worth and the items their reasons name).
        if catalog is not None:
            rows = catalog.rows(sorted(set(pks) | pins | reason_pks), now=now)
            states = None  # `_item_rows` below reads the catalog too
        else:
            if labels_needed:
                expected = set(asked) | reason_pks
            else:
                expected = (
                    set(pks[:limit]) | pins | _named_item_pks(result.reasons[:limit])
                )
            states, fresh = db.item_states(
                sorted(set(pks) | pins | reason_pks),
                now=now,
                rows_for=_item_row_cache.missing(sorted(expected)),
            )
            fresh = _item_row_cache.put(fresh, states)
            if labels_needed:
                rows = _item_rows(asked, now=now, states=states)
            else:
                # Visibility for all; whole rows where just read (titles of the
                # rest are filled in for the page only, below).
                rows = {
                    pk: fresh.get(pk) or db.ItemRow(pk, "", "", state[1], (), ())
                    for pk, state in states.items()
                }
        candidates = [
            _candidate(row, float(score), reason)
            for pk, score, reason in zip(
                pks, np.asarray(result.scores).tolist(), result.reasons
            )
            if (row := rows.get(pk)) is not None and row.visible and pk not in never
        ]
        pin_pool = {
            pk: _candidate(rows[pk], None)
            for pk in pins
            if pk in rows and rows[pk].visible
        }
        final = apply_business_rules(
            candidates,
            rules=rules,
            limit=limit,
            pin_pool=pin_pool,
            category=options.category,
            tag=options.tag,
            max_per_category=options.max_per_category,
        )
        # The engine ran out of candidates, or the page is full: done.
        if len(final) >= limit or len(pks) < k:
            break
        k *= OVERFETCH
    page = final[options.offset : limit]
    # Titles and labels of the page and of the items its reasons name ("Because
    # you liked ..."), from the per-process cache or one query.
    shown = {c.pk for c in page} | _named_item_pks(c.reason for c in page)
    missing = sorted(pk for pk in shown if not (pk in rows and rows[pk].external_id))
    if missing:  # all of them are among the pks `states` was read for
        rows = {**rows, **_item_rows(missing, now=now, states=states)}
    page = [
        replace(
            c,
            external_id=rows[c.pk].external_id,
            title=rows[c.pk].title,
            categories=rows[c.pk].categories,
        )
        if not c.external_id
        else c
        for c in page
        if c.pk in rows
    ]
    items = []
    for c in page:
        if c.pinned and c.reason is None:
            text, kind = REASON_TEXT["pinned"], "pinned"
        else:
            text, kind = _reason_text(c.reason, rows)
            if kind == "none":
                text, kind = (
                    REASON_TEXT.get(default_reason, REASON_FALLBACK),
                    default_reason,
                )
        items.append(
            RecommendedItem(
                id=c.external_id,
                score=float(c.score or 0.0),
                title=c.title,
                categories=list(c.categories),
                reason=text,
                pk=c.pk,
                reason_kind=kind,
                pinned=c.pinned,
            )
        )
    return items, strategy, [c.pk for c in page]


# ---------------------------------------------------------------- popularity (DB)


@dataclass(frozen=True)
class _Result:
    """A RecommendationResult look-alike for database popularity."""

    item_pks: np.ndarray
    scores: np.ndarray
    reasons: list
    strategy: str


@dataclass(frozen=True)
class _SimpleReason:
    kind: str
    item_pk: int | None = None
    label: str | None = None


def _precomputed_popular(
    *, window: timedelta | None, trending: bool, pool: int, now: datetime
) -> tuple[np.ndarray, np.ndarray] | None:
    """The default popular/trending lists `refresh_popularity_task` caches, if usable.

    They are `popular_item_scores` results (all-time popular; trending over 7 days)
    refreshed every 15 minutes, so a request never pays the aggregate over millions
    of interactions. None when missing, stale, truncated below `pool`, or when the
    request asks for another window.
    """
    from recommendations.services import maintenance

    if trending:
        name = "trending"
        if window is not None and window != PRECOMPUTED_TRENDING_WINDOW:
            return None
    elif window is None:
        name = "popular"
    else:
        return None
    snapshot = maintenance.popularity_cached()
    if not snapshot or name not in snapshot or "computed_at" not in snapshot:
        return None
    try:
        computed = datetime.fromisoformat(snapshot["computed_at"])
    except (TypeError, ValueError):
        return None
    if (now - computed).total_seconds() > PRECOMPUTED_MAX_AGE_S:
        return None
    rows = snapshot[name]
    if len(rows) < pool and len(rows) >= getattr(maintenance, "POPULARITY_LIMIT", 0):
        return None  # truncated: the live query can give more
    rows = rows[:pool]
    pks = np.asarray([r[0] for r in rows], dtype=np.int64)
    scores = np.asarray([r[1] for r in rows], dtype=np.float32)
    return pks, scores


def _db_popular_source(
    *,
    window: timedelta | None = None,
    trending: bool = False,
    category: str | None = None,
    tag: str | None = None,
) -> Source:
    """Popularity straight from interactions (no model, or a time window asked for)."""

    def source(k: int, exclude: np.ndarray, allowed: np.ndarray | None) -> _Result:
        # Few distinct pool sizes, so the cache is shared across requests.
        pool = 1 << max(POPULAR_MIN_POOL, k + int(exclude.size)).bit_length()
        now = timezone.now()

        def compute():
            precomputed = None
            if category is None and tag is None:
                precomputed = _precomputed_popular(
                    window=window, trending=trending, pool=pool, now=now
                )
            if precomputed is not None:
                pks, scores = precomputed
            else:
                pks, scores = db.popular_item_scores(
                    limit=pool,
                    now=now,
                    window=window,
                    trending=trending,
                    category=category,
                    tag=tag,
                )
            if pks.size < pool and window is None and not trending:
                # A young catalog: pad with the newest items so lists are never empty
                # (not for an explicit window: "nothing in the last 24h" is an answer).
                newest = db.newest_item_pks(limit=pool, category=category, tag=tag)
                newest = newest[~np.isin(newest, pks)][: pool - pks.size]
                pks = np.concatenate([pks, newest])
                scores = np.concatenate(
                    [scores, np.zeros(newest.size, dtype=np.float32)]
                )
            return pks, scores, int(pks.size)

        key = ("popular", window, trending, category, tag, pool)
        pks, scores, n_real = _cache.get(key, _ttl(POPULAR_CACHE_S), compute)
        keep = ~np.isin(pks, exclude)
        if allowed is not None:
            keep &= np.isin(pks, allowed)
        kind = "trending" if trending else "popular"
        reasons = [
            _SimpleReason(kind if score > 0 else "new")
            for score in scores[keep][:k].tolist()
        ]
        return _Result(pks[keep][:k], scores[keep][:k], reasons, STRATEGY_POPULAR)

    return source


def _model_popular_source(model: LoadedModel) -> Source:
    def source(k, exclude, allowed):
        return model.recommender.popular(
            k=k, exclude_item_pks=exclude, allowed_item_pks=allowed
        )

    return source


def _response(
    items: list[RecommendedItem],
    strategy: str,
    model: LoadedModel | None,
    ignored: list[str] | None = None,
) -> RecommendationResponse:
    return RecommendationResponse(
        items=items,
        model_version=model.version_id if model is not None else None,
        strategy=strategy,
        recommendation_id=uuid.uuid4(),
        ignored_items=ignored or [],
    )


# ------------------------------------------------------------------ public calls


def _options(**kwargs) -> ListOptions:
    kwargs["exclude"] = tuple(kwargs.get("exclude") or ())
    kwargs["extra_rules"] = _as_rules(kwargs.get("extra_rules"))
    kwargs["ignore_rule_ids"] = frozenset(
        int(i) for i in kwargs.get("ignore_rule_ids") or ()
    )
    return ListOptions(**kwargs)


def _history_arrays(item_pks: list[int], type_pks: list[int], times: list[float]):
    """(recent item pks, signed type weights, unix times, every recently seen pk)."""
    weights = _type_weights()
    items = np.asarray(item_pks[:HISTORY_LIMIT], dtype=np.int64)
    w = np.asarray(
        [weights.get(t, 1.0) for t in type_pks[:HISTORY_LIMIT]], dtype=np.float32
    )
    ts = np.asarray(times[:HISTORY_LIMIT], dtype=np.float64)
    return items, w, ts, np.unique(np.asarray(item_pks, dtype=np.int64))


def _times_after_training(
    times: np.ndarray, trained_until: float | None
) -> np.ndarray | None:
    """Timestamps for the engine: real for rows newer than the model, NaN otherwise.

    Rows newer than the training data get their share of a known user's vector and
    item-item weight (the engine's fold-in mix), so fresh actions move the list at
    once. Rows the model was trained on carry no time, so the engine does not decay
    them by age: with every timestamp passed, the default 30-day half-life cost 6.6%
    of P@10 on the random-split quality benchmark (0.2046 -> 0.1911), which the
    engine's offline evaluation (no timestamps) does not see. See
    /work/briefs/requests-to-engine.md.
    """
    if trained_until is None or times.size == 0:
        return None
    fresh = times > trained_until
    if not fresh.any():
        return None
    return np.where(fresh, times, np.nan)


def recommend_for_user(
    *,
    user_external_id: str,
    n: int = 10,
    offset: int = 0,
    category: str | None = None,
    tag: str | None = None,
    exclude: Sequence[str] = (),
    include_seen: bool = False,
    max_per_category: int | None = None,
    extra_rules: Sequence = (),
    ignore_rule_ids: Sequence[int] = (),
) -> RecommendationResponse:
    """Personalised list for a user; unknown users get attribute-based/popular items."""
    options = _options(
        n=n,
        offset=offset,
        category=category,
        tag=tag,
        exclude=exclude,
        max_per_category=max_per_category,
        extra_rules=extra_rules,
        ignore_rule_ids=ignore_rule_ids,
    )
    model = current_model()
    signature, user = db.end_user_with_history(user_external_id, limit=SEEN_LIMIT)
    history = np.zeros(0, dtype=np.int64)
    weights = np.zeros(0, dtype=np.float32)
    times = np.zeros(0, dtype=np.float64)
    seen = np.zeros(0, dtype=np.int64)
    if user is not None:
        history, weights, times, seen = _history_arrays(user[2], user[3], user[4])
    base_exclude = () if include_seen else seen.tolist()
    if model is None:
        source = _db_popular_source(category=category, tag=tag)
    elif user is None:
        # An id we have never heard of: the documented fallback is popularity.
        source = _model_popular_source(model)
    else:
        recommender = model.recommender
        overlay = _overlay_for(model)
        user_pk, attributes = user[0], user[1] or {}
        fresh_times = _times_after_training(times, model.trained_until)

        def source(k, exclude_pks, allowed):
            return recommender.recommend(
                user_pk=user_pk,
                history_item_pks=history,
                history_weights=weights,
                history_timestamps=fresh_times,
                user_attributes=attributes,
                k=k,
                exclude_item_pks=exclude_pks,
                allowed_item_pks=allowed,
                overlay=overlay,
            )

    items, strategy, _ = _rank(
        source,
        options,
        base_exclude=base_exclude,
        pins_exclude=base_exclude,
        rules_signature=signature,
    )
    return _response(items, strategy, model)


def similar_items(
    *,
    item_external_id: str,
    user_external_id: str | None = None,
    n: int = 10,
    offset: int = 0,
    category: str | None = None,
    tag: str | None = None,
    exclude: Sequence[str] = (),
    max_per_category: int | None = None,
    extra_rules: Sequence = (),
    ignore_rule_ids: Sequence[int] = (),
) -> RecommendationResponse:
    """Items like this one (embeddings; metadata for new items). Raises ItemNotFound."""
    options = _options(
        n=n,
        offset=offset,
        category=category,
        tag=tag,
        exclude=exclude,
        max_per_category=max_per_category,
        extra_rules=extra_rules,
        ignore_rule_ids=ignore_rule_ids,
    )
    catalog = live_catalog()
    if catalog is not None:
        # From memory; the rules come from the feed-kept cache (no signature).
        signature, item_pk = None, catalog.pk_of(item_external_id)
    else:
        signature, item_pk = db.item_pk_with_rules_signature(item_external_id)
    if item_pk is None:
        raise ItemNotFound(item_external_id)
    model = current_model()
    if model is None:
        # No model: the most popular items sharing the item's first category.
        row = _item_rows([item_pk], now=timezone.now()).get(item_pk)
        same = row.categories[0] if row is not None and row.categories else None
        source = _db_popular_source(category=category or same, tag=tag)
        items, strategy, _ = _rank(
            source, options, base_exclude=[item_pk], rules_signature=signature
        )
        return _response(items, strategy, None)
    recommender = model.recommender
    overlay = _overlay_for(model)
    user_pk = None
    if user_external_id:
        user = db.end_user_row(user_external_id)
        if user is not None and recommender.knows_user(user_pk=user[0]):
            user_pk = user[0]
    vector = None
    if not recommender.knows_item(item_pk=item_pk):
        vector = _overlay_vector(model, item_pk)
        if vector is None:
            meta = item_metadata_snapshot(item_pks=[item_pk])
            vector = recommender.item_vector_from_metadata(
                title=meta.titles[0],
                description=meta.descriptions[0],
                categories=meta.categories[0],
                tags=meta.tags[0],
                attributes=meta.attributes[0],
            )

    def source(k, exclude_pks, allowed):
        # item_pk as well for a new item: it names the reason ("Similar to ...").
        return recommender.similar_items(
            item_pk=item_pk,
            item_vector=vector,
            k=k,
            exclude_item_pks=exclude_pks,
            allowed_item_pks=allowed,
            user_pk=user_pk,
            overlay=overlay,
        )

    items, strategy, _ = _rank(
        source,
        options,
        base_exclude=[item_pk],
        default_reason="similar_to",
        rules_signature=signature,
    )
    return _response(items, strategy, model)


def popular_items(
    *,
    window: timedelta | None = None,
    trending: bool = False,
    n: int = 10,
    offset: int = 0,
    category: str | None = None,
    tag: str | None = None,
    exclude: Sequence[str] = (),
    max_per_category: int | None = None,
    extra_rules: Sequence = (),
    ignore_rule_ids: Sequence[int] = (),
) -> RecommendationResponse:
    """Most popular items (all time: the model; a window or trending: the DB)."""
    options = _options(
        n=n,
        offset=offset,
        category=category,
        tag=tag,
        exclude=exclude,
        max_per_category=max_per_category,
        extra_rules=extra_rules,
        ignore_rule_ids=ignore_rule_ids,
    )
    model = current_model()
    if model is not None and window is None and not trending:
        source = _model_popular_source(model)
    else:
        source = _db_popular_source(
            window=window, trending=trending, category=category, tag=tag
        )
    items, strategy, _ = _rank(
        source, options, default_reason="trending" if trending else "popular"
    )
    return _response(items, strategy, model)


def session_recommendations(
    *,
    item_external_ids: Sequence[str],
    n: int = 10,
    offset: int = 0,
    category: str | None = None,
    tag: str | None = None,
    exclude: Sequence[str] = (),
    max_per_category: int | None = None,
    extra_rules: Sequence = (),
    ignore_rule_ids: Sequence[int] = (),
) -> RecommendationResponse:
    """For an anonymous visitor from their session's items (unknown ids ignored)."""
    options = _options(
        n=n,
        offset=offset,
        category=category,
        tag=tag,
        exclude=exclude,
        max_per_category=max_per_category,
        extra_rules=extra_rules,
        ignore_rule_ids=ignore_rule_ids,
    )
    ids = list(dict.fromkeys(item_external_ids))
    found = _pks_by_external_ids(ids)
    ignored = [i for i in ids if i not in found]
    session_pks = np.asarray([found[i] for i in ids if i in found], dtype=np.int64)
    model = current_model()
    if model is None:
        source = _db_popular_source(category=category, tag=tag)
    elif session_pks.size == 0:
        source = _model_popular_source(model)
    else:
        recommender = model.recommender
        overlay = _overlay_for(model)

        def source(k, exclude_pks, allowed):
            return recommender.session(
                item_pks=session_pks,
                k=k,
                exclude_item_pks=exclude_pks,
                allowed_item_pks=allowed,
                overlay=overlay,
            )

    items, strategy, _ = _rank(
        source,
        options,
        base_exclude=session_pks.tolist(),
        pins_exclude=session_pks.tolist(),
    )
    return _response(items, strategy, model, ignored)
