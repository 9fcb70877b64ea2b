"""The item catalog in memory, per serving process, kept current by PostgreSQL's
change notifications (recsite/changes.py).

What a recommendation response needs of an item (its id, title and labels, and
whether it may be shown now: hidden, availability window) was read from PostgreSQL
on every request: one round trip for the candidates' states and the rows of those
shown, one to find the item of a similar-items request. On a catalog of 100,000
items a page's rows are rarely in a small cache, and a round trip costs about a
quarter of a millisecond of the two cores per request under load
(docs/benchmarks.md, sections 5 and 5a). Here every item is in memory instead:

* A `_Snapshot` of the whole catalog in flat arrays (ids, flags, availability as
  unix seconds, UTF-8 blobs of external ids and titles with offsets, label ids as
  CSR arrays): about 130 bytes per item, against some 570 as Python row objects,
  and nothing the garbage collector walks.
* `overrides`: the items changed since the snapshot (re-read as their
  notifications arrive; `None` for a deleted item). Past `_overrides_limit` the
  snapshot is rebuilt.

The feed's thread does every write (load, re-reads, rebuilds) with the feed's own
connection; requests only read, and take one reference to the snapshot and the
overrides per call, so a swap never mixes two states inside one answer. The catalog
is used only while `ready()` (the feed is live and the catalog was loaded after it
started listening); otherwise serving reads PostgreSQL as before. A change is seen
as soon as its notification is handled (ms after the commit), where the database
path saw it on the next request.

Catalogs larger than `RECSITE["SERVING_CATALOG_MAX_ITEMS"]` are not loaded (serving
reads PostgreSQL for every request, as before); 0 turns the catalog off.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
from django.conf import settings

from items.models import Category, Item, Tag
from recommendations.selectors.serving import ItemRow
from recsite.changes import feed
from recsite.memory import trim_heap

logger = logging.getLogger(__name__)

LOAD_CHUNK = 50_000
# A notification naming more items than this (or "any row") is a bulk write: the
# catalog is set aside and caught up after QUIET_S seconds without one.
BULK_IDS = 200
QUIET_S = 1.0
# Changed items kept beside the snapshot before it is rebuilt (as a share of the
# catalog, and at least this many).
OVERRIDES_SHARE = 0.1
OVERRIDES_MIN = 5_000

_ITEM = Item._meta.db_table
_ITEM_CAT = Item.categories.through._meta.db_table
_ITEM_TAG = Item.tags.through._meta.db_table
ITEM_TABLES = (_ITEM, _ITEM_CAT, _ITEM_TAG)
LABEL_TABLES = (Category._meta.db_table, Tag._meta.db_table)

# The row versions an item's catalog entry is made of: its own row's and its label
# links' (xmin: the transaction that wrote each version, changed by every UPDATE),
# hashed. A snapshot keeps them, so a process that inherits it can find exactly what
# changed since (`Catalog.catch_up`).
_LABELS = (
    "LEFT JOIN LATERAL (SELECT array_agg(x.{col} ORDER BY x.id) AS ids, "
    "string_agg(x.xmin::text || ':' || x.{col}::text, ',' ORDER BY x.id) AS v "
    "FROM {table} x WHERE x.item_id = i.id) {alias} ON true "
)
_FROM = (
    f"FROM {_ITEM} i "
    + _LABELS.format(col="category_id", table=_ITEM_CAT, alias="c")
    + _LABELS.format(col="tag_id", table=_ITEM_TAG, alias="t")
)
_VERSION = (
    "hashtextextended(i.xmin::text || '|' || coalesce(c.v, '') || '|' || "
    "coalesce(t.v, ''), 0)"
)
_SELECT = (
    "SELECT i.id, i.external_id, i.title, i.is_hidden, "
    "extract(epoch FROM i.available_from)::float8, "
    "extract(epoch FROM i.available_until)::float8, "
    f"c.ids, t.ids, {_VERSION} " + _FROM
)
_VERSIONS = f"SELECT i.id, {_VERSION} " + _FROM + "ORDER BY i.id"


@dataclass(frozen=True)
class Entry:
    """One item as the catalog holds it beside the snapshot (a changed item)."""

    pk: int
    external_id: str
    title: str
    hidden: bool
    available_from: float | None
    available_until: float | None
    category_ids: tuple[int, ...]
    tag_ids: tuple[int, ...]

    def visible(self, now: float) -> bool:
        return (
            not self.hidden
            and (self.available_from is None or self.available_from <= now)
            and (self.available_until is None or self.available_until > now)
        )


def _entry(row) -> Entry:
    return Entry(
        pk=int(row[0]),
        external_id=row[1],
        title=row[2] or "",
        hidden=bool(row[3]),
        available_from=row[4],
        available_until=row[5],
        category_ids=tuple(row[6] or ()),
        tag_ids=tuple(row[7] or ()),
    )


class _Blob:
    """Many strings in one UTF-8 buffer with offsets."""

    def __init__(self, data: bytes, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets

    def get(self, i: int) -> str:
        return self.data[self.offsets[i] : self.offsets[i + 1]].decode("utf-8")

    def nbytes(self) -> int:
        return len(self.data) + self.offsets.nbytes


class _Csr:
    """Variable-length int lists in one array with offsets."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values = values
        self.offsets = offsets

    def get(self, i: int) -> list[int]:
        return self.values[self.offsets[i] : self.offsets[i + 1]].tolist()

    def nbytes(self) -> int:
        return self.values.nbytes + self.offsets.nbytes


def _offsets(lengths: list[np.ndarray]) -> np.ndarray:
    joined = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(joined.size + 1, dtype=np.int64)
    np.cumsum(joined, out=offsets[1:])
    return offsets


class _SnapshotBuilder:
    """Columns of a snapshot, added a chunk of rows (`_SELECT`'s tuples) at a time, so
    a load never holds more than one chunk of row objects."""

    def __init__(self) -> None:
        self.pks: list[np.ndarray] = []
        self.hidden: list[np.ndarray] = []
        self.available_from: list[np.ndarray] = []
        self.available_until: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []
        self.ext: list[bytes] = []
        self.ext_len: list[np.ndarray] = []
        self.title: list[bytes] = []
        self.title_len: list[np.ndarray] = []
        self.cats: list[np.ndarray] = []
        self.cat_len: list[np.ndarray] = []
        self.tags: list[np.ndarray] = []
        self.tag_len: list[np.ndarray] = []
        self.versions: list[np.ndarray] = []

    def add(self, rows: list) -> None:
        n = len(rows)
        nan = math.nan
        self.pks.append(np.fromiter((r[0] for r in rows), np.int64, n))
        self.versions.append(np.fromiter((r[8] for r in rows), np.int64, n))
        self.hidden.append(np.fromiter((bool(r[3]) for r in rows), bool, n))
        self.available_from.append(
            np.fromiter((nan if r[4] is None else r[4] for r in rows), np.float64, n)
        )
        self.available_until.append(
            np.fromiter((nan if r[5] is None else r[5] for r in rows), np.float64, n)
        )
        # external id -> row: this process's str hash of the ids, sorted (the id
        # itself is compared on a hit).
        self.hashes.append(np.fromiter((hash(r[1]) for r in rows), np.int64, n))
        ext = [r[1].encode("utf-8") for r in rows]
        self.ext.append(b"".join(ext))
        self.ext_len.append(np.fromiter(map(len, ext), np.int64, n))
        titles = [(r[2] or "").encode("utf-8") for r in rows]
        self.title.append(b"".join(titles))
        self.title_len.append(np.fromiter(map(len, titles), np.int64, n))
        for col, values, lengths in (
            (6, self.cats, self.cat_len),
            (7, self.tags, self.tag_len),
        ):
            lists = [r[col] or () for r in rows]
            lengths.append(np.fromiter(map(len, lists), np.int64, n))
            values.append(
                np.fromiter(
                    (v for x in lists for v in x), np.int32, int(lengths[-1].sum())
                )
            )

    def build(self) -> _Snapshot:
        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        hashes = cat(self.hashes, np.int64)
        order = np.argsort(hashes, kind="stable").astype(np.int32)
        return _Snapshot(
            pks=cat(self.pks, np.int64),
            hidden=cat(self.hidden, bool),
            available_from=cat(self.available_from, np.float64),
            available_until=cat(self.available_until, np.float64),
            external_ids=_Blob(b"".join(self.ext), _offsets(self.ext_len)),
            titles=_Blob(b"".join(self.title), _offsets(self.title_len)),
            categories=_Csr(cat(self.cats, np.int32), _offsets(self.cat_len)),
            tags=_Csr(cat(self.tags, np.int32), _offsets(self.tag_len)),
            hash_order=order,
            hashes=hashes[order],
            versions=cat(self.versions, np.int64),
        )


@dataclass
class _Snapshot:
    """Every item at one moment, in flat arrays (rows sorted by pk)."""

    pks: np.ndarray
    hidden: np.ndarray
    available_from: np.ndarray  # unix seconds, NaN: no bound
    available_until: np.ndarray
    external_ids: _Blob
    titles: _Blob
    categories: _Csr
    tags: _Csr
    hash_order: np.ndarray
    hashes: np.ndarray
    versions: np.ndarray  # row-version fingerprint per item (see _VERSION)

    @classmethod
    def of(cls, entries: list[Entry]) -> _Snapshot:
        """A snapshot of these entries (sorted by pk)."""
        builder = _SnapshotBuilder()
        builder.add(
            [
                (
                    e.pk,
                    e.external_id,
                    e.title,
                    e.hidden,
                    e.available_from,
                    e.available_until,
                    e.category_ids,
                    e.tag_ids,
                    0,  # no row version: never caught up
                )
                for e in entries
            ]
        )
        return builder.build()

    def __len__(self) -> int:
        return int(self.pks.size)

    def row_of(self, pk: int) -> int | None:
        i = int(np.searchsorted(self.pks, pk))
        return i if i < self.pks.size and self.pks[i] == pk else None

    def rows_of(self, pks: list[int]) -> list[int | None]:
        if not pks or not self.pks.size:
            return [None] * len(pks)
        wanted = np.asarray(pks, dtype=np.int64)
        idx = np.minimum(np.searchsorted(self.pks, wanted), self.pks.size - 1)
        found = self.pks[idx] == wanted
        return [int(i) if ok else None for i, ok in zip(idx.tolist(), found.tolist())]

    def find_external(self, external_id: str) -> int | None:
        h = hash(external_id)
        lo = int(np.searchsorted(self.hashes, h, side="left"))
        hi = int(np.searchsorted(self.hashes, h, side="right"))
        for j in range(lo, hi):
            row = int(self.hash_order[j])
            if self.external_ids.get(row) == external_id:
                return row
        return None

    def entry(self, i: int) -> Entry:
        f = float(self.available_from[i])
        u = float(self.available_until[i])
        return Entry(
            pk=int(self.pks[i]),
            external_id=self.external_ids.get(i),
            title=self.titles.get(i),
            hidden=bool(self.hidden[i]),
            available_from=None if math.isnan(f) else f,
            available_until=None if math.isnan(u) else u,
            category_ids=tuple(self.categories.get(i)),
            tag_ids=tuple(self.tags.get(i)),
        )

    def nbytes(self) -> int:
        arrays = (
            self.pks,
            self.hidden,
            self.available_from,
            self.available_until,
            self.hash_order,
            self.hashes,
            self.versions,
        )
        return (
            sum(a.nbytes for a in arrays)
            + self.external_ids.nbytes()
            + self.titles.nbytes()
            + self.categories.nbytes()
            + self.tags.nbytes()
        )


@dataclass(frozen=True)
class _State:
    """What requests read: replaced as a whole, never mutated."""

    snapshot: _Snapshot
    overrides: dict  # pk -> Entry | None (deleted)
    external: dict  # external id -> pk | None, for the changed items
    category_names: dict
    tag_names: dict
    # Memo of label_tuple; a new state (`replace`) starts an empty one.
    _names: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def label_tuple(self, kind: str, ids) -> tuple[str, ...]:
        """Sorted names of label ids (a tuple of ids, or int32 bytes), memoized:
        items share few label combinations."""
        key = (
            kind,
            ids if isinstance(ids, bytes) else np.asarray(ids, np.int32).tobytes(),
        )
        found = self._names.get(key)
        if found is None:
            table = self.category_names if kind == "c" else self.tag_names
            values = np.frombuffer(key[1], dtype=np.int32).tolist()
            found = tuple(sorted(table[v] for v in values if v in table))
            if len(self._names) > 100_000:
                self._names.clear()
            self._names[key] = found
        return found


class Catalog:
    """The process's item catalog (see the module docstring)."""

    def __init__(self) -> None:
        self.state: _State | None = None
        self._ready = False
        self.loads = 0
        self.catch_ups = 0
        self._bulk_at: float | None = None  # monotonic time of the last bulk write
        self.load_seconds = 0.0

    # ------------------------------------------------------------------ reads

    def ready(self) -> bool:
        """True when requests may read the catalog instead of PostgreSQL."""
        return feed.live() and self._ready and self.state is not None

    def pk_of(self, external_id: str) -> int | None:
        state = self.state
        if external_id in state.external:
            return state.external[external_id]
        i = state.snapshot.find_external(external_id)
        if i is None:
            return None
        pk = int(state.snapshot.pks[i])
        if pk in state.overrides:  # changed since: its own entry decides
            entry = state.overrides[pk]
            return (
                pk if entry is not None and entry.external_id == external_id else None
            )
        return pk

    def pks_of(self, external_ids: list[str]) -> dict[str, int]:
        out = {}
        for external_id in external_ids:
            pk = self.pk_of(external_id)
            if pk is not None:
                out[external_id] = pk
        return out

    def rows(self, pks: list[int], *, now: datetime) -> dict[int, ItemRow]:
        """`ItemRow`s of the existing items among `pks`, visibility as of `now`."""
        state = self.state
        snap = state.snapshot
        overrides = state.overrides
        ts = now.timestamp()
        names = state.label_tuple
        out: dict[int, ItemRow] = {}
        at: list[int] = []
        at_pks: list[int] = []
        for pk, i in zip(pks, snap.rows_of(pks)):
            if pk in overrides:
                e = overrides[pk]
                if e is not None:
                    out[pk] = ItemRow(
                        pk=pk,
                        external_id=e.external_id,
                        title=e.title,
                        visible=e.visible(ts),
                        categories=names("c", e.category_ids),
                        tags=names("t", e.tag_ids),
                    )
            elif i is not None:
                at.append(i)
                at_pks.append(pk)
        if not at:
            return out
        # The snapshot's rows, one array operation per column.
        idx = np.asarray(at, dtype=np.int64)
        visible = ~(
            snap.hidden[idx]
            | (snap.available_from[idx] > ts)  # NaN (no bound) compares False
            | (snap.available_until[idx] <= ts)
        )
        ext, titles, cats, tags = (
            snap.external_ids,
            snap.titles,
            snap.categories,
            snap.tags,
        )
        e0, e1 = ext.offsets[idx].tolist(), ext.offsets[idx + 1].tolist()
        t0, t1 = titles.offsets[idx].tolist(), titles.offsets[idx + 1].tolist()
        c0, c1 = cats.offsets[idx].tolist(), cats.offsets[idx + 1].tolist()
        g0, g1 = tags.offsets[idx].tolist(), tags.offsets[idx + 1].tolist()
        ext_data, title_data = ext.data, titles.data
        cat_ids, tag_ids = cats.values, tags.values
        for j, (pk, ok) in enumerate(zip(at_pks, visible.tolist())):
            out[pk] = ItemRow(
                pk=pk,
                external_id=ext_data[e0[j] : e1[j]].decode("utf-8"),
                title=title_data[t0[j] : t1[j]].decode("utf-8"),
                visible=ok,
                categories=names("c", cat_ids[c0[j] : c1[j]].tobytes()),
                tags=names("t", tag_ids[g0[j] : g1[j]].tobytes()),
            )
        return out

    def __len__(self) -> int:
        state = self.state
        if state is None:
            return 0
        count = len(state.snapshot)
        for pk, entry in state.overrides.items():
            in_snapshot = state.snapshot.row_of(pk) is not None
            count += (entry is not None) - in_snapshot  # new +1, deleted -1
        return count

    def stats(self) -> dict:
        state = self.state
        return {
            "ready": self.ready(),
            "items": len(self),
            "changed_since_load": len(state.overrides) if state else 0,
            "bytes": state.snapshot.nbytes() if state else 0,
            "loads": self.loads,
            "catch_ups": self.catch_ups,
            "last_load_s": round(self.load_seconds, 3),
        }

    # ------------------------------------------------ writes (the feed's thread)

    def load(self, conn) -> None:
        """Read the whole catalog (the feed is already listening)."""
        limit = max_items()
        if limit <= 0:
            self._ready = False
            self.state = None
            return
        started = time.monotonic()
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {_ITEM}")
            count = cursor.fetchone()[0]
            if count > limit:
                logger.warning(
                    "serving catalog off: %s items > SERVING_CATALOG_MAX_ITEMS=%s",
                    count,
                    limit,
                )
                self._ready = False
                self.state = None
                return
            builder = _SnapshotBuilder()
            last = -1
            while True:
                cursor.execute(
                    _SELECT + "WHERE i.id > %s ORDER BY i.id LIMIT %s",
                    [last, LOAD_CHUNK],
                )
                chunk = cursor.fetchall()
                if chunk:
                    builder.add(chunk)
                    last = chunk[-1][0]
                if len(chunk) < LOAD_CHUNK:
                    break
                del chunk
        categories, tags = _label_names(conn)
        snapshot = builder.build()
        self.state = _State(
            snapshot=snapshot,
            overrides={},
            external={},
            category_names=categories,
            tag_names=tags,
        )
        del builder
        trim_heap()  # the rows as read, about twice the arrays (feed thread's arena)
        self.loads += 1
        self.load_seconds = time.monotonic() - started
        self._ready = True
        logger.info(
            "serving catalog: %s items loaded in %.2f s",
            len(snapshot),
            self.load_seconds,
        )

    def on_items_changed(self, table: str, ids, conn) -> None:
        if ids is None or len(ids) > BULK_IDS:
            # A bulk write (an import batch, a mass update): stop using the catalog
            # and catch up once item writes have been quiet for QUIET_S (`tick`),
            # rather than re-reading after every batch of an import.
            self._ready = False
            self._bulk_at = time.monotonic()
            return
        if self._bulk_at is not None:
            return  # the catch-up after the bulk write covers it
        state = self.state
        if state is None:
            return
        pks = sorted(ids)
        fresh = _read_entries(conn, pks)
        overrides, external = _apply(
            state.snapshot,
            state.overrides,
            state.external,
            fresh,
        )
        if len(overrides) > _overrides_limit(state.snapshot):
            self.load(conn)
            return
        categories, tags = state.category_names, state.tag_names
        present = [e for e in fresh.values() if e is not None]
        if any(c not in categories for e in present for c in e.category_ids) or any(
            g not in tags for e in present for g in e.tag_ids
        ):
            # A label created with the item, its notification not handled yet.
            categories, tags = _label_names(conn)
        self.state = replace(
            state,
            overrides=overrides,
            external=external,
            category_names=categories,
            tag_names=tags,
        )

    def tick(self, conn) -> None:
        """The feed's regular call: catch up after a bulk write has gone quiet (or
        read everything when there is no snapshot, e.g. one left off for its size
        that may now fit)."""
        if self._bulk_at is None or time.monotonic() - self._bulk_at < QUIET_S:
            return
        self._bulk_at = None
        if not self.catch_up(conn):
            self.load(conn)

    def on_labels_changed(self, table: str, ids, conn) -> None:
        state = self.state
        if state is None:
            return
        categories, tags = _label_names(conn)
        self.state = replace(state, category_names=categories, tag_names=tags)

    def on_connect(self, conn) -> None:
        # Anything may have changed while no one listened: bring the snapshot this
        # process has (inherited from gunicorn's master, or its own from before a
        # lost connection) up to date, or read everything again.
        self._ready = False
        self._bulk_at = None
        try:
            if not self.catch_up(conn):
                self.load(conn)
        except Exception:
            self.state = None
            raise

    def catch_up(self, conn) -> bool:
        """Re-read exactly the items whose rows changed since the snapshot was read
        (their row versions differ, or they are new or gone); False when there is no
        snapshot or too much changed (then `load` reads it all).

        Exact, not time-based: every write to an item or its label links gives the
        row a new version. The feed is already listening, so whatever commits after
        this query is notified.
        """
        state = self.state
        if state is None or max_items() <= 0:
            return False
        snap = state.snapshot
        with conn.cursor() as cursor:
            cursor.execute(_VERSIONS)
            rows = cursor.fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        versions = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        del rows
        if snap.pks.size:
            pos = np.minimum(np.searchsorted(snap.pks, ids), snap.pks.size - 1)
            same = (snap.pks[pos] == ids) & (snap.versions[pos] == versions)
        else:
            same = np.zeros(ids.size, dtype=bool)
        changed = ids[~same].tolist()
        gone = np.setdiff1d(snap.pks, ids, assume_unique=True).tolist()
        if len(changed) + len(gone) > _overrides_limit(snap):
            return False
        fresh: dict[int, Entry | None] = dict.fromkeys(gone)
        for start in range(0, len(changed), LOAD_CHUNK):
            fresh.update(_read_entries(conn, changed[start : start + LOAD_CHUNK]))
        overrides, external = _apply(snap, {}, {}, fresh)
        categories, tags = _label_names(conn)
        self.state = replace(
            state,
            overrides=overrides,
            external=external,
            category_names=categories,
            tag_names=tags,
        )
        del ids, versions, same, fresh
        trim_heap()
        self.catch_ups += 1
        self._ready = True
        logger.info("serving catalog: caught up with %s changed items", len(overrides))
        return True

    def preload(self) -> bool:
        """Read the catalog without listening: gunicorn's master does, before it
        forks the workers, which then share the snapshot's pages copy-on-write (as
        they share the model) and only catch up on what changed since. Not used
        here until a feed of this process is live."""
        if not feed.enabled() or max_items() <= 0:
            return False
        import psycopg2
        from django.db import connections

        conn = psycopg2.connect(**connections["default"].get_connection_params())
        try:
            conn.autocommit = True
            self.load(conn)
        finally:
            conn.close()
            self._ready = False
        return self.state is not None

    def forget(self) -> None:
        """Drop the catalog (tests); the next connection of the feed reloads it."""
        self._ready = False
        self.state = None


def _overrides_limit(snapshot: _Snapshot) -> int:
    return max(OVERRIDES_MIN, int(OVERRIDES_SHARE * len(snapshot)))


def _apply(
    snapshot: _Snapshot,
    overrides: dict,
    external: dict,
    fresh: dict[int, Entry | None],
) -> tuple[dict, dict]:
    """New (overrides, external ids) with the items of `fresh` (None: deleted)."""
    overrides = dict(overrides)
    external = dict(external)
    olds = {}
    for pk in fresh:
        if pk in overrides:
            olds[pk] = overrides[pk]
        else:
            i = snapshot.row_of(pk)
            olds[pk] = snapshot.entry(i) if i is not None else None
    # Removals first: an id one item gives up may be taken by another of the batch.
    for pk, new in fresh.items():
        old = olds[pk]
        if old is not None and (new is None or old.external_id != new.external_id):
            external[old.external_id] = None
    for pk, new in fresh.items():
        overrides[pk] = new
        if new is not None:
            external[new.external_id] = pk
    return overrides, external


def _read_entries(conn, pks: list[int]) -> dict[int, Entry | None]:
    """The entries of these items as they are now; None for those deleted."""
    fresh: dict[int, Entry | None] = dict.fromkeys(pks)
    with conn.cursor() as cursor:
        cursor.execute(_SELECT + "WHERE i.id = ANY(%s)", [pks])
        for r in cursor.fetchall():
            fresh[int(r[0])] = _entry(r)
    return fresh


def _label_names(conn) -> tuple[dict[int, str], dict[int, str]]:
    out = []
    for model in (Category, Tag):
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT id, name FROM {model._meta.db_table}")
            out.append(dict(cursor.fetchall()))
    return out[0], out[1]


def max_items() -> int:
    return int(settings.RECSITE.get("SERVING_CATALOG_MAX_ITEMS", 2_000_000))


catalog = Catalog()
for _table in ITEM_TABLES:
    feed.subscribe(_table, catalog.on_items_changed)
for _table in LABEL_TABLES:
    feed.subscribe(_table, catalog.on_labels_changed)
feed.on_connect(catalog.on_connect)
feed.on_tick(catalog.tick)


def live_catalog() -> Catalog | None:
    """The catalog when requests may use it, else None (read PostgreSQL). Starts
    this process's feed if it is not running (it loads or catches up the catalog)."""
    return catalog if catalog.ready() else None
