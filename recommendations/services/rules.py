"""Writes of staff business rules; every write tells serving processes at once."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from recommendations.models import BusinessRule

_EDITABLE = {
    "name",
    "action",
    "target",
    "item",
    "category",
    "tag",
    "position",
    "factor",
    "starts_at",
    "ends_at",
    "is_active",
}
UNKNOWN_FIELD = "Unknown business rule field: {name}."


def business_rules_changed() -> None:
    """Drop this process's cached rules (others see the change on their next request).

    Serving compares a hash of the active rule rows on every request, so any write,
    through these services or not, applies at once everywhere; this only saves the
    writing process one reload check.
    """
    from recommendations.serving import rules_cache_clear

    rules_cache_clear()
    transaction.on_commit(rules_cache_clear)


def business_rule_create(
    *,
    action: str,
    target: str,
    item=None,
    category=None,
    tag=None,
    position: int | None = None,
    factor: float | None = None,
    starts_at=None,
    ends_at=None,
    is_active: bool = True,
    name: str = "",
) -> BusinessRule:
    """Create a validated rule (database constraints enforce target/pin/boost shape)."""
    rule = BusinessRule(
        name=name,
        action=action,
        target=target,
        item=item,
        category=category,
        tag=tag,
        position=position,
        factor=factor,
        starts_at=starts_at,
        ends_at=ends_at,
        is_active=is_active,
    )
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        business_rules_changed()
    return rule


def business_rule_update(*, rule: BusinessRule, **fields: Any) -> BusinessRule:
    """Change some fields of a rule."""
    for name, value in fields.items():
        if name not in _EDITABLE:
            raise ValueError(UNKNOWN_FIELD.format(name=name))
        setattr(rule, name, value)
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        business_rules_changed()
    return rule


def business_rule_save(*, rule: BusinessRule) -> BusinessRule:
    """Save a rule edited elsewhere (e.g. an admin form) and invalidate caches."""
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        business_rules_changed()
    return rule


def business_rule_delete(*, rule: BusinessRule) -> None:
    """Delete a rule."""
    with transaction.atomic():
        rule.delete()
        business_rules_changed()
