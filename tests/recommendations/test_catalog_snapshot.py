"""The catalog's flat arrays (recommendations/catalog.py), without a database."""

from datetime import UTC, datetime

from recommendations.catalog import Entry, _Snapshot, _State

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _e(pk, ext, **kw):
    base = {
        "title": f"T{pk}",
        "hidden": False,
        "available_from": None,
        "available_until": None,
        "category_ids": (),
        "tag_ids": (),
    }
    return Entry(pk=pk, external_id=ext, **{**base, **kw})


def test_an_empty_snapshot_finds_nothing():
    snap = _Snapshot.of([])
    assert len(snap) == 0
    assert snap.rows_of([1, 2]) == [None, None]
    assert snap.find_external("a") is None


def test_lookups_by_pk_and_by_external_id_round_trip():
    entries = [
        _e(3, "a", category_ids=(2, 1)),
        _e(7, "é✓", tag_ids=(5,)),
        _e(9, ""),
        _e(12, "b", hidden=True, available_from=1.5, available_until=2.5),
    ]
    snap = _Snapshot.of(entries)
    assert snap.rows_of([12, 4, 3, 99, 0]) == [3, None, 0, None, None]
    for i, e in enumerate(entries):
        assert snap.find_external(e.external_id) == i
        assert snap.entry(i) == e
    assert snap.find_external("c") is None


def test_visibility_follows_hiding_and_the_window():
    ts = NOW.timestamp()
    assert _e(1, "a").visible(ts)
    assert not _e(1, "a", hidden=True).visible(ts)
    assert not _e(1, "a", available_from=ts + 1).visible(ts)
    assert _e(1, "a", available_from=ts).visible(ts)
    assert not _e(1, "a", available_until=ts).visible(ts)
    assert _e(1, "a", available_until=ts + 1).visible(ts)


def test_label_names_are_sorted_and_unknown_ids_dropped():
    state = _State(
        snapshot=_Snapshot.of([]),
        overrides={},
        external={},
        category_names={1: "zeta", 2: "alpha"},
        tag_names={5: "t"},
    )
    assert state.label_tuple("c", (1, 2, 3)) == ("alpha", "zeta")
    assert state.label_tuple("t", (5,)) == ("t",)
    assert state.label_tuple("c", ()) == ()
