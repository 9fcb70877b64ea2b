import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from items.models import Category, Item, Tag
from items.services import AVAILABILITY_ORDER, ID_IMMUTABLE, ITEM_EXISTS
from recommendations.models import Interaction
from recsite import validation
from tests.factories import InteractionFactory, ItemFactory

LIST = reverse("item-list")
BULK = reverse("item-bulk")


def detail(external_id: str) -> str:
    return f"{LIST}{quote(external_id, safe='')}/"


def send(client, method: str, url: str, body) -> object:
    text = body if isinstance(body, str) else json.dumps(body)
    return getattr(client, method)(url, data=text, content_type="application/json")


def labels(external_id: str) -> tuple[list[str], list[str]]:
    item = Item.objects.get(external_id=external_id)
    return (
        sorted(item.categories.values_list("name", flat=True)),
        sorted(item.tags.values_list("name", flat=True)),
    )


@pytest.mark.django_db
def test_create_returns_the_full_item(api_client):
    payload = {
        "id": "sku-1",
        "title": "Blue shoes",
        "description": "Comfortable.",
        "categories": ["shoes", "sale", "shoes"],
        "tags": [" blue "],
        "attributes": {"price": 59.9, "sizes": ["40", "41"], "new": True},
        "available_from": "2024-01-01T00:00:00Z",
        "available_until": 1735689600,
    }
    response = send(api_client, "post", LIST, payload)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == {
        "id": "sku-1",
        "title": "Blue shoes",
        "description": "Comfortable.",
        "categories": ["sale", "shoes"],
        "tags": ["blue"],
        "attributes": {"price": 59.9, "sizes": ["40", "41"], "new": True},
        "is_hidden": False,
        "available_from": "2024-01-01T00:00:00Z",
        "available_until": "2025-01-01T00:00:00Z",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert api_client.get(detail("sku-1")).json() == body


@pytest.mark.django_db
def test_create_duplicate_is_400(api_client):
    ItemFactory(external_id="taken")
    response = send(api_client, "post", LIST, {"id": "taken"})
    assert response.status_code == 400
    assert response.json() == {"id": [ITEM_EXISTS]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"id": "i", "price": 3}, {"price": [validation.UNKNOWN_FIELD]}),
        ({"title": "no id"}, {"id": [validation.REQUIRED]}),
        ({"id": "i" * 256}, {"id": [validation.ID_TOO_LONG]}),
        (
            {"id": "i", "title": "t" * 501},
            {"title": [validation.TEXT_TOO_LONG.format(max=500)]},
        ),
        ({"id": "i", "title": 5}, {"title": [validation.TEXT_INVALID]}),
        (
            {"id": "i", "categories": "shoes"},
            {"categories": [validation.LABELS_INVALID]},
        ),
        ({"id": "i", "tags": ["ok", ""]}, {"tags": [validation.LABELS_INVALID]}),
        ({"id": "i", "tags": ["t" * 256]}, {"tags": [validation.LABELS_INVALID]}),
        ({"id": "i", "is_hidden": "yes"}, {"is_hidden": [validation.BOOL_INVALID]}),
        (
            {"id": "i", "available_from": "soon"},
            {"available_from": [validation.DATETIME_INVALID]},
        ),
        (
            {
                "id": "i",
                "available_from": "2024-02-01",
                "available_until": "2024-01-01",
            },
            {"available_until": [AVAILABILITY_ORDER]},
        ),
        (
            {"id": "i", "attributes": {"dims": {"w": 1}}},
            {"attributes": [validation.ATTRIBUTE_NESTED.format(key="dims")]},
        ),
    ],
)
def test_create_rejects_bad_input_with_field_errors(api_client, payload, errors):
    response = send(api_client, "post", LIST, payload)
    assert response.status_code == 400
    assert response.json() == errors
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_malformed_json_is_400(api_client):
    response = send(api_client, "post", BULK, '[{"id": "a"},')
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.django_db
def test_list_filters_and_pagination(api_client):
    now = timezone.now()
    ItemFactory(
        external_id="a", title="Red Jazz album", categories=["music"], tags=["jazz"]
    )
    ItemFactory(
        external_id="b",
        title="Blue notes",
        categories=["music", "books"],
        tags=["blues"],
    )
    hidden = ItemFactory(
        external_id="c", title="Old jazz", is_hidden=True, categories=["music"]
    )
    ItemFactory(external_id="d", title="Future", available_from=now + timedelta(days=1))
    ItemFactory(
        external_id="e", title="Expired", available_until=now - timedelta(days=1)
    )
    ItemFactory(
        external_id="f",
        title="Window",
        attributes={"brand": "acme", "sizes": ["m"]},
        available_from=now - timedelta(days=1),
        available_until=now + timedelta(days=1),
    )
    assert hidden.is_hidden

    def ids(**params):
        response = api_client.get(LIST, params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert ids() == ["a", "b", "c", "d", "e", "f"]
    assert ids(category="music") == ["a", "b", "c"]
    assert ids(category="books") == ["b"]
    assert ids(tag="jazz") == ["a"]
    assert ids(hidden="true") == ["c"]
    assert ids(hidden="false") == ["a", "b", "d", "e", "f"]
    assert ids(search="JAZZ") == ["a", "c"]
    assert ids(available_now="true") == ["a", "b", "c", "f"]
    assert ids(available_now="false") == ["d", "e"]
    assert ids(attribute="brand:acme") == ["f"]
    assert ids(attribute="sizes:m") == ["f"]
    assert ids(category="music", hidden="false", search="blue") == ["b"]
    page = api_client.get(LIST, {"page_size": 4, "page": 2}).json()
    assert page["count"] == 6
    assert [item["id"] for item in page["results"]] == ["e", "f"]
    assert page["results"][1]["attributes"] == {"brand": "acme", "sizes": ["m"]}


@pytest.mark.django_db
def test_list_reads_labels_in_a_constant_number_of_queries(api_client):
    # The key's first request of the minute also records its use: not counted.
    assert api_client.get(LIST).status_code == 200
    for _ in range(3):
        ItemFactory(categories=["c1", "c2"], tags=["t"])

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api_client.get(LIST).status_code == 200
        return len(ctx.captured_queries)

    small = count()
    for n in range(20):
        ItemFactory(categories=[f"x{n}"], tags=[f"y{n}"])
    assert count() == small


@pytest.mark.django_db
def test_list_bad_filter_is_400(api_client):
    response = api_client.get(LIST, {"hidden": "maybe"})
    assert response.status_code == 400
    assert "hidden" in response.json()


@pytest.mark.django_db
def test_patch_hides_at_once_and_replaces_labels(api_client):
    ItemFactory(external_id="i", title="Keep me", categories=["a", "b"], tags=["t"])
    response = send(api_client, "patch", detail("i"), {"is_hidden": True})
    assert response.status_code == 200
    assert response.json()["is_hidden"] is True
    assert Item.objects.get(external_id="i").is_hidden is True
    response = send(api_client, "patch", detail("i"), {"categories": ["c"], "tags": []})
    assert response.json()["categories"] == ["c"]
    assert response.json()["tags"] == []
    assert response.json()["title"] == "Keep me"
    assert labels("i") == (["c"], [])
    assert Category.objects.filter(name="a").exists()  # labels outlive their items


@pytest.mark.django_db
def test_patch_checks_the_window_with_the_stored_end(api_client):
    ItemFactory(external_id="i", available_from=datetime(2024, 6, 1, tzinfo=UTC))
    response = send(
        api_client, "patch", detail("i"), {"available_until": "2024-05-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert response.json() == {"available_until": [AVAILABILITY_ORDER]}
    response = send(
        api_client, "patch", detail("i"), {"available_until": "2024-07-01T00:00:00Z"}
    )
    assert response.status_code == 200
    assert send(api_client, "patch", detail("i"), {"id": "j"}).json() == {
        "id": [ID_IMMUTABLE]
    }


@pytest.mark.django_db
def test_delete_erases_the_item_and_its_interactions(api_client):
    item = ItemFactory(external_id="gone", categories=["c"])
    other = ItemFactory(external_id="stays")
    for _ in range(10):
        InteractionFactory(item=item)
    InteractionFactory(item=other)
    assert api_client.delete(detail("gone")).status_code == 204
    assert not Item.objects.filter(external_id="gone").exists()
    assert list(Interaction.objects.values_list("item__external_id", flat=True)) == [
        "stays"
    ]
    assert api_client.get(detail("gone")).status_code == 404


@pytest.mark.django_db
def test_bulk_upsert_creates_updates_and_replaces_labels(api_client):
    ItemFactory(
        external_id="old",
        title="Old title",
        description="Kept",
        categories=["x"],
        tags=["y"],
        attributes={"a": 1},
    )
    rows = [
        {"id": "old", "title": "New title", "categories": ["p", "q"], "tags": ["new"]},
        {
            "id": "fresh",
            "title": "Fresh",
            "categories": ["p"],
            "attributes": {"b": 2},
            "is_hidden": True,
            "available_until": "2030-01-01T00:00:00Z",
        },
    ]
    response = send(api_client, "post", BULK, rows)
    assert response.status_code == 201
    assert response.json() == {
        "created": 1,
        "updated": 1,
        "accepted": 2,
        "rejected": [],
    }
    old = Item.objects.get(external_id="old")
    assert (old.title, old.description, old.attributes) == (
        "New title",
        "Kept",
        {"a": 1},
    )
    assert labels("old") == (["p", "q"], ["new"])
    fresh = Item.objects.get(external_id="fresh")
    assert fresh.is_hidden and fresh.attributes == {"b": 2}
    assert fresh.available_until == datetime(2030, 1, 1, tzinfo=UTC)
    assert labels("fresh") == (["p"], [])
    # Omitting categories leaves them; sending [] clears them.
    send(
        api_client,
        "post",
        BULK,
        [{"id": "old", "title": "T"}, {"id": "fresh", "categories": []}],
    )
    assert labels("old") == (["p", "q"], ["new"])
    assert labels("fresh") == ([], [])
    assert set(Category.objects.values_list("name", flat=True)) == {"x", "p", "q"}
    assert set(Tag.objects.values_list("name", flat=True)) == {"y", "new"}


@pytest.mark.django_db
def test_bulk_rejects_bad_rows_alone(api_client):
    ItemFactory(external_id="windowed", available_from=datetime(2024, 6, 1, tzinfo=UTC))
    rows = [
        {"id": "good", "categories": ["c"]},
        {"id": "bad-hidden", "is_hidden": 1},
        {
            "id": "windowed",
            "available_until": "2024-01-01T00:00:00Z",
        },  # before stored start
        {"id": "unknown-field", "colour": "red"},
        {"id": "good", "title": "later row wins"},
        "nope",
    ]
    response = send(api_client, "post", BULK, rows)
    assert response.status_code == 201
    assert response.json() == {
        "created": 1,
        "updated": 0,
        "accepted": 2,
        "rejected": [
            {"index": 1, "errors": {"is_hidden": [validation.BOOL_INVALID]}},
            {"index": 2, "errors": {"available_until": [AVAILABILITY_ORDER]}},
            {"index": 3, "errors": {"colour": [validation.UNKNOWN_FIELD]}},
            {"index": 5, "errors": {"non_field_errors": [validation.NOT_AN_OBJECT]}},
        ],
    }
    good = Item.objects.get(external_id="good")
    assert good.title == "later row wins"
    assert labels("good") == (["c"], [])
    assert Item.objects.get(external_id="windowed").available_until is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", validation.BATCH_EMPTY),
        ('{"id": "u"}', validation.BATCH_NOT_A_LIST),
        (
            json.dumps([{"id": "i"}] * 10_001),
            validation.BATCH_TOO_LARGE.format(max=10_000, count=10_001),
        ),
    ],
)
def test_bulk_unusable_bodies_are_400(api_client, body, message):
    response = send(api_client, "post", BULK, body)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [message]}


@pytest.mark.django_db
def test_bulk_costs_a_constant_number_of_queries(api_client):
    # The key's first request of the minute also records its use: not counted.
    assert api_client.get(LIST).status_code == 200
    def queries(n: int, prefix: str) -> int:
        rows = [
            {
                "id": f"{prefix}{k}",
                "title": "t",
                "categories": [f"c{k % 7}", f"{prefix}{k}"],
                "tags": [f"t{k % 5}"],
                "attributes": {"k": k},
            }
            for k in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            assert send(api_client, "post", BULK, rows).status_code == 201
        return len(ctx.captured_queries)

    assert queries(3, "s") == queries(300, "l")
    assert Item.objects.get(external_id="l299").categories.count() == 2


@pytest.mark.django_db
def test_auth(anon_client, read_only_client, public_client):
    ItemFactory(external_id="i")
    for url in (LIST, detail("i")):
        assert anon_client.get(url).status_code == 401
        assert read_only_client.get(url).status_code == 200
        assert public_client.get(url).status_code == 403
    for client, code in (
        (anon_client, 401),
        (read_only_client, 403),
        (public_client, 403),
    ):
        assert send(client, "post", LIST, {"id": "j"}).status_code == code
        assert send(client, "post", BULK, [{"id": "j"}]).status_code == code
        assert (
            send(client, "patch", detail("i"), {"is_hidden": True}).status_code == code
        )
        assert client.delete(detail("i")).status_code == code
    assert list(Item.objects.values_list("external_id", "is_hidden")) == [("i", False)]


@pytest.mark.django_db
def test_an_item_and_its_label_names_are_read_in_one_query(api_client):
    ItemFactory(external_id="q", categories=["b", "a"], tags=["z", "y"])
    with CaptureQueriesContext(connection) as ctx:
        body = api_client.get(detail("q")).json()
    assert body["categories"] == ["a", "b"] and body["tags"] == ["y", "z"]
    catalog_reads = [
        q["sql"]
        for q in ctx.captured_queries
        if "items_" in q["sql"] and "api_key" not in q["sql"]
    ]
    assert len(catalog_reads) == 1, catalog_reads
    assert "items_item_categories" in catalog_reads[0]
    assert "items_item_tags" in catalog_reads[0]
