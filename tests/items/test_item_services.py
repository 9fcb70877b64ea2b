import pytest

from items.models import Item
from items.services import item_set_hidden, item_upsert_many
from tests.factories import ItemFactory


@pytest.mark.django_db
def test_item_set_hidden_takes_a_queryset_items_or_pks_and_counts_changes():
    a, b, c = (ItemFactory(external_id=x) for x in "abc")
    assert (
        item_set_hidden(
            items=Item.objects.filter(external_id__in=["a", "b"]), hidden=True
        )
        == 2
    )
    assert item_set_hidden(items=[a, b.pk], hidden=True) == 0  # already hidden
    assert set(
        Item.objects.filter(is_hidden=True).values_list("external_id", flat=True)
    ) == {"a", "b"}
    assert item_set_hidden(items=[a], hidden=False) == 1
    assert list(
        Item.objects.filter(is_hidden=True).values_list("external_id", flat=True)
    ) == ["b"]
    c.refresh_from_db()
    assert c.is_hidden is False


@pytest.mark.django_db
def test_item_upsert_many_returns_the_primary_keys():
    existing = ItemFactory(external_id="old")
    result = item_upsert_many(rows=[{"id": "old"}, {"id": "new", "tags": ["t"]}])
    assert result.pks["old"] == existing.pk
    assert result.pks["new"] == Item.objects.get(external_id="new").pk
    assert (result.created, result.updated, result.accepted) == (1, 1, 2)
