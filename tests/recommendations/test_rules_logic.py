"""Business-rule logic as pure functions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recommendations.selectors.rules import (
    Candidate,
    Rule,
    apply_business_rules,
    boosted_score,
    rules_in_effect,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _candidates(n: int = 10, categories=None, tags=None) -> list[Candidate]:
    return [
        Candidate(
            pk=i,
            external_id=f"i{i}",
            title=f"Item {i}",
            categories=tuple((categories or {}).get(i, ("misc",))),
            tags=tuple((tags or {}).get(i, ())),
            score=float(100 - i),
        )
        for i in range(1, n + 1)
    ]


def _pks(out) -> list[int]:
    return [c.pk for c in out]


def test_without_rules_the_engine_order_is_kept_and_cut_to_the_limit():
    assert _pks(apply_business_rules(_candidates(), rules=[], limit=4)) == [1, 2, 3, 4]


def test_pin_puts_an_item_at_its_one_based_position():
    rule = Rule(id=1, action="pin", target="item", item_pk=9, position=2)
    out = apply_business_rules(_candidates(), rules=[rule], limit=5)
    assert _pks(out) == [1, 9, 2, 3, 4]
    assert out[1].pinned


def test_pin_of_an_item_the_engine_did_not_score_comes_from_the_pool():
    pool = {
        42: Candidate(42, "i42", "Pinned", ("misc",), (), score=None),
    }
    rule = Rule(id=1, action="pin", target="item", item_pk=42, position=1)
    out = apply_business_rules(_candidates(), rules=[rule], limit=3, pin_pool=pool)
    assert _pks(out) == [42, 1, 2]
    assert all(c.score is not None for c in out)


def test_two_pins_on_one_slot_take_the_next_free_one_and_pins_beyond_the_page_wait():
    rules = [
        Rule(id=1, action="pin", target="item", item_pk=7, position=1),
        Rule(id=2, action="pin", target="item", item_pk=8, position=1),
        Rule(id=3, action="pin", target="item", item_pk=9, position=50),
    ]
    out = apply_business_rules(_candidates(), rules=rules, limit=4)
    assert _pks(out) == [7, 8, 1, 2]


def test_pin_by_category_picks_the_best_item_of_that_category():
    cats = {5: ("shoes",), 8: ("shoes",)}
    rule = Rule(id=1, action="pin", target="category", category="shoes", position=1)
    out = apply_business_rules(_candidates(categories=cats), rules=[rule], limit=3)
    assert _pks(out) == [5, 1, 2]


def test_boost_multiplies_the_score_and_reorders():
    rule = Rule(id=1, action="boost", target="item", item_pk=4, factor=1.1)
    out = apply_business_rules(_candidates(), rules=[rule], limit=3)
    assert _pks(out) == [4, 1, 2]
    assert out[0].score == 96 * 1.1


def test_boost_raises_negative_scores_too():
    assert boosted_score(-2.0, 2.0) > -2.0
    assert boosted_score(3.0, 2.0) == 6.0
    assert boosted_score(3.0, 0.5) < 3.0


def test_block_by_item_category_and_tag():
    cats = {2: ("shoes",)}
    tags = {3: ("sale",)}
    rules = [
        Rule(id=1, action="block", target="item", item_pk=1),
        Rule(id=2, action="block", target="category", category="shoes"),
        Rule(id=3, action="block", target="tag", tag="sale"),
    ]
    out = apply_business_rules(
        _candidates(categories=cats, tags=tags), rules=rules, limit=3
    )
    assert _pks(out) == [4, 5, 6]


def test_block_wins_over_pin():
    rules = [
        Rule(id=1, action="pin", target="item", item_pk=5, position=1),
        Rule(id=2, action="block", target="item", item_pk=5),
    ]
    assert 5 not in _pks(apply_business_rules(_candidates(), rules=rules, limit=10))


def test_max_per_category_diversifies_and_counts_items_in_several_categories():
    cats = {1: ("a",), 2: ("a",), 3: ("a", "b"), 4: ("b",), 5: ("b",), 6: ("c",)}
    out = apply_business_rules(
        _candidates(6, categories=cats), rules=[], limit=6, max_per_category=1
    )
    assert _pks(out) == [1, 4, 6]


def test_category_and_tag_filters_use_the_current_labels():
    cats = {2: ("shoes",), 5: ("shoes",)}
    tags = {5: ("sale",)}
    cands = _candidates(categories=cats, tags=tags)
    assert _pks(apply_business_rules(cands, rules=[], limit=5, category="shoes")) == [
        2,
        5,
    ]
    assert _pks(
        apply_business_rules(cands, rules=[], limit=5, category="shoes", tag="sale")
    ) == [5]


def test_rules_apply_only_inside_their_time_window_and_when_active():
    rules = [
        Rule(id=1, action="block", target="item", item_pk=1),
        Rule(
            id=2, action="block", target="item", item_pk=2, starts_at=NOW + timedelta(1)
        ),
        Rule(id=3, action="block", target="item", item_pk=3, ends_at=NOW),
        Rule(
            id=4,
            action="block",
            target="item",
            item_pk=4,
            starts_at=NOW - timedelta(1),
            ends_at=NOW + timedelta(1),
        ),
        Rule(id=5, action="block", target="item", item_pk=5, is_active=False),
    ]
    assert [r.id for r in rules_in_effect(rules, now=NOW)] == [1, 4]
