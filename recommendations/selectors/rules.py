"""Staff business rules at request time: loading them, and applying them (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import connection

from recommendations.models import BusinessRule


@dataclass(frozen=True)
class Rule:
    """A business rule as plain data (category/tag by name, as responses carry them)."""

    id: int | None
    action: str  # pin / boost / block
    target: str  # item / category / tag
    item_pk: int | None = None
    category: str | None = None
    tag: str | None = None
    position: int | None = None
    factor: float | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    is_active: bool = True

    def in_effect(self, now: datetime) -> bool:
        """Active and inside its optional [starts_at, ends_at) window."""
        if not self.is_active:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return not (self.ends_at is not None and now >= self.ends_at)

    def matches(self, pk: int, categories: Iterable[str], tags: Iterable[str]) -> bool:
        """Does this rule target the item with these labels?"""
        if self.target == BusinessRule.Target.ITEM:
            return self.item_pk == pk
        if self.target == BusinessRule.Target.CATEGORY:
            return self.category in categories
        return self.tag in tags


@dataclass(frozen=True)
class Candidate:
    """One item that may be returned, with its current labels and its score."""

    pk: int
    external_id: str
    title: str
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    score: float | None  # None: not scored by the engine (a pinned item)
    reason: object = None  # engine Reason, or None
    pinned: bool = False


def rule_from_model(rule: BusinessRule) -> Rule:
    """Plain data from a (possibly unsaved) BusinessRule row."""
    return Rule(
        id=rule.pk,
        action=rule.action,
        target=rule.target,
        item_pk=rule.item_id,
        category=rule.category.name if rule.category_id else None,
        tag=rule.tag.name if rule.tag_id else None,
        position=rule.position,
        factor=rule.factor,
        starts_at=rule.starts_at,
        ends_at=rule.ends_at,
        is_active=rule.is_active,
    )


def business_rules_active() -> list[Rule]:
    """Every rule with is_active set (time windows are checked per request)."""
    rows = (
        BusinessRule.objects.filter(is_active=True)
        .order_by("id")
        .values_list(
            "id",
            "action",
            "target",
            "item_id",
            "category__name",
            "tag__name",
            "position",
            "factor",
            "starts_at",
            "ends_at",
        )
    )
    return [
        Rule(
            id=r[0],
            action=r[1],
            target=r[2],
            item_pk=r[3],
            category=r[4],
            tag=r[5],
            position=r[6],
            factor=r[7],
            starts_at=r[8],
            ends_at=r[9],
            is_active=True,
        )
        for r in rows
    ]


# A hash of every active rule's row (one row, column `signature`).
RULES_SIGNATURE_SQL = (
    "SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r.id), '')) AS signature "
    f"FROM {BusinessRule._meta.db_table} r WHERE r.is_active"
)


def business_rules_signature() -> str:
    """A hash of every active rule's row: changes with any write, even a bulk update.

    One aggregate over the (small) set of active rules, cheaper than a Redis round
    trip, so serving checks it on every request and a change applies at once (the
    user and similar-item lookups fetch it in their own round trip).
    """
    with connection.cursor() as cursor:
        cursor.execute(RULES_SIGNATURE_SQL)
        return cursor.fetchone()[0]


def rules_in_effect(rules: Iterable[Rule], *, now: datetime) -> list[Rule]:
    """The rules that apply at `now`."""
    return [rule for rule in rules if rule.in_effect(now)]


def blocked_item_pks(rules: Iterable[Rule]) -> set[int]:
    """Items blocked by item-targeted rules (can be excluded before scoring)."""
    return {
        r.item_pk
        for r in rules
        if r.action == BusinessRule.Action.BLOCK
        and r.target == BusinessRule.Target.ITEM
    }


def pinned_item_pks(rules: Iterable[Rule]) -> set[int]:
    """Items pinned by item-targeted rules (fetched even when not scored)."""
    return {
        r.item_pk
        for r in rules
        if r.action == BusinessRule.Action.PIN and r.target == BusinessRule.Target.ITEM
    }


def boosted_score(score: float, factor: float) -> float:
    """Multiply a score so that a factor > 1 always raises it, even when negative."""
    return score * factor if score >= 0 else score / factor


def is_blocked(candidate: Candidate, rules: Iterable[Rule]) -> bool:
    """Blocked by any rule (item, category or tag)."""
    return any(
        r.action == BusinessRule.Action.BLOCK
        and r.matches(candidate.pk, candidate.categories, candidate.tags)
        for r in rules
    )


def passes_filters(
    candidate: Candidate, *, category: str | None, tag: str | None
) -> bool:
    """The request's category/tag filters, on the item's current labels."""
    if category is not None and category not in candidate.categories:
        return False
    return tag is None or tag in candidate.tags


def apply_business_rules(
    candidates: Sequence[Candidate],
    *,
    rules: Sequence[Rule],
    limit: int,
    pin_pool: Mapping[int, Candidate] | None = None,
    category: str | None = None,
    tag: str | None = None,
    max_per_category: int | None = None,
) -> list[Candidate]:
    """Filter, boost, re-rank, pin and diversify; returns at most `limit` items.

    `candidates` are eligible items (visible, not excluded) in engine order;
    `pin_pool` holds eligible rows of item-pinned items that the engine did not
    score. Blocks win over pins; pins win over the diversity cap (but count in it).
    """
    pin_pool = pin_pool or {}
    kept = [
        c
        for c in candidates
        if passes_filters(c, category=category, tag=tag) and not is_blocked(c, rules)
    ]
    boosts = [r for r in rules if r.action == BusinessRule.Action.BOOST and r.factor]
    if boosts:
        rescored = []
        for c in kept:
            factor = math.prod(
                r.factor for r in boosts if r.matches(c.pk, c.categories, c.tags)
            )
            if factor != 1 and c.score is not None:
                c = replace(c, score=boosted_score(c.score, factor))
            rescored.append(c)
        # Stable: equal scores keep the engine's order.
        kept = sorted(
            rescored, key=lambda c: -(c.score if c.score is not None else -math.inf)
        )

    pins = sorted(
        (r for r in rules if r.action == BusinessRule.Action.PIN and r.position),
        key=lambda r: (r.position, r.id or 0),
    )
    by_position: dict[int, Candidate] = {}
    taken: set[int] = set()
    for rule in pins:
        if rule.position > limit:
            continue
        chosen = None
        if rule.target == BusinessRule.Target.ITEM:
            chosen = next((c for c in kept if c.pk == rule.item_pk), None)
            if chosen is None and rule.item_pk in pin_pool:
                candidate = pin_pool[rule.item_pk]
                if passes_filters(
                    candidate, category=category, tag=tag
                ) and not is_blocked(candidate, rules):
                    chosen = candidate
        else:
            chosen = next(
                (
                    c
                    for c in kept
                    if c.pk not in taken and rule.matches(c.pk, c.categories, c.tags)
                ),
                None,
            )
        if chosen is None or chosen.pk in taken:
            continue
        position = rule.position
        while position in by_position:  # two pins on one slot: the next free one
            position += 1
        if position > limit:
            continue
        by_position[position] = replace(chosen, pinned=True)
        taken.add(chosen.pk)

    per_category: dict[str, int] = {}
    if max_per_category is not None:
        for c in by_position.values():
            for name in c.categories:
                per_category[name] = per_category.get(name, 0) + 1

    out: list[Candidate] = []
    rest = iter(c for c in kept if c.pk not in taken)
    for position in range(1, limit + 1):
        if position in by_position:
            pinned = by_position[position]
            if pinned.score is None:
                # Not scored: show the score of the item it sits above.
                previous = out[-1].score if out else None
                following = kept[0].score if kept else 0.0
                pinned = replace(
                    pinned, score=previous if previous is not None else following
                )
            out.append(pinned)
            continue
        for c in rest:
            if max_per_category is not None and any(
                per_category.get(name, 0) >= max_per_category for name in c.categories
            ):
                continue
            for name in c.categories if max_per_category is not None else ():
                per_category[name] = per_category.get(name, 0) + 1
            out.append(c)
            break
        else:
            # Nothing left to fill this slot: later pins move up to close the gap.
            out.extend(by_position[p] for p in sorted(by_position) if p > position)
            break
    return [c if c.score is not None else replace(c, score=0.0) for c in out][:limit]
