"""Limits (n, batch, page and body size) and hostile text in ids, filters and bodies.

Every GET operation of the OpenAPI document that takes a path id or a string filter
gets each hostile value; the answer must be a 2xx/4xx JSON body, never a 5xx, and the
data must be untouched. Values that are storable text round-trip unchanged (the SQL is
parameterised, not built from strings).
"""

import json
from urllib.parse import quote

import pytest
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

from items.models import Item
from recommendations.models import Interaction
from recsite.exceptions import NUL_CHARACTER, REQUEST_TOO_LARGE
from tests.factories import (
    EndUserFactory,
    InteractionFactory,
    InteractionTypeFactory,
    ItemFactory,
)
from users.models import EndUser

HOSTILE = {
    "sql quote": "' OR '1'='1",
    "sql drop": "x'); DROP TABLE users_enduser; --",
    "sql sleep": "1; SELECT pg_sleep(10); --",
    "like wildcards": "%_%\\",
    "path traversal": "..%2F..%2F..%2Fetc%2Fpasswd",
    "dot segments": "..",
    "html": "<script>alert(1)</script>",
    "template": "{{7*7}}${7*7}",
    "rtl override": "\u202eevil\u202c",
    "emoji": "\U0001f44d\U0001f3fd\U0001f1eb\U0001f1f7",
    "zero width": "a\u200bb\ufeff",
    "combining": "e\u0301\u0301\u0301",
    "long": "x" * 5_000,
    "very long": "y" * 100_000,
    "json": '{"$gt": ""}',
    "nul": "a\x00b",
}
STORABLE = {name: value for name, value in HOSTILE.items() if "\x00" not in value}
# Ids may not contain "/" (see test_ids_with_a_slash_are_refused_with_a_field_error).
STORABLE_IDS = {
    name: value for name, value in STORABLE.items() if "/" not in value[:255]
}


def _get_operations() -> list[tuple[str, list[str], list[str]]]:
    """(path, path parameter names, string query parameter names) of every GET."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None or not path.startswith("/api/v1/"):
            continue
        parameters = operation.get("parameters", [])
        path_names = [p["name"] for p in parameters if p["in"] == "path"]
        query_names = [
            p["name"]
            for p in parameters
            if p["in"] == "query"
            and p.get("schema", {}).get("type") in ("string", "array")
        ]
        if path_names or query_names:
            found.append((path, path_names, query_names))
    return found


GET_OPERATIONS = _get_operations()


def _fill(path: str, names: list[str], value: str) -> str:
    for name in names:
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


def _assert_harmless(response, what) -> None:
    assert response.status_code < 500, (
        what,
        response.status_code,
        response.content[:300],
    )
    assert response["Content-Type"].startswith("application/json"), what
    body = response.content.decode()
    assert "Traceback" not in body and "psycopg2" not in body, what


@pytest.fixture
def some_rows(db):
    user = EndUserFactory(external_id="victim")
    item = ItemFactory(external_id="victim-item", categories=["books"], tags=["new"])
    InteractionFactory(user=user, item=item)
    return (EndUser.objects.count(), Item.objects.count(), Interaction.objects.count())


def _counts():
    return (EndUser.objects.count(), Item.objects.count(), Interaction.objects.count())


def test_the_injection_sweep_covers_the_id_and_filter_endpoints():
    paths = {path for path, _, _ in GET_OPERATIONS}
    for expected in (
        "/api/v1/users/{id}/",
        "/api/v1/items/",
        "/api/v1/users/{user_id}/recommendations/",
        "/api/v1/items/{item_id}/similar/",
    ):
        assert expected in paths, paths


@pytest.mark.django_db
@pytest.mark.parametrize("name", HOSTILE.keys())
def test_hostile_ids_and_filters_are_harmless(api_client, some_rows, name):
    value = HOSTILE[name]
    for path, path_names, query_names in GET_OPERATIONS:
        url = _fill(path, path_names, value)
        if path_names:
            response = api_client.get(url)
            _assert_harmless(response, (name, url))
            if "\x00" in value:
                assert response.status_code == 400
                assert response.json()["detail"] == NUL_CHARACTER
        concrete = _fill(
            path, path_names, "victim" if "item" not in path else "victim-item"
        )
        for query in query_names:
            response = api_client.get(concrete, {query: value})
            _assert_harmless(response, (name, concrete, query))
            if "\x00" in value:
                assert response.status_code == 400, (concrete, query)
    assert _counts() == some_rows


@pytest.mark.django_db
@pytest.mark.parametrize("name", STORABLE_IDS.keys())
def test_hostile_text_round_trips_through_batch_endpoints(api_client, name):
    value = STORABLE_IDS[name][:255]
    users = api_client.post(
        "/api/v1/users/bulk/",
        [{"id": value, "attributes": {"note": value[:1000]}}],
        format="json",
    )
    _assert_harmless(users, name)
    items = api_client.post(
        "/api/v1/items/bulk/", [{"id": value, "title": value}], format="json"
    )
    _assert_harmless(items, name)
    assert users.status_code == 201 and items.status_code == 201, (
        users.json(),
        items.json(),
    )
    stored = EndUser.objects.get(external_id=value)
    assert stored.attributes["note"] == value[:1000]
    assert Item.objects.get(external_id=value).title == value[:500]
    interaction = api_client.post(
        "/api/v1/interactions/",
        {"user": value, "item": value, "type": "view"},
        format="json",
    )
    assert interaction.status_code == 201, interaction.json()
    detail = api_client.get(f"/api/v1/users/{quote(value, safe='')}/")
    assert detail.status_code == 200 and detail.json()["id"] == value


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["https://shop.example/p/1", "a/b"])
def test_every_accepted_id_is_addressable(api_client, value):
    """An id is either refused at write time with a field error, or readable back."""
    users = api_client.post("/api/v1/users/bulk/", [{"id": value}], format="json")
    items = api_client.post("/api/v1/items/bulk/", [{"id": value}], format="json")
    encoded = quote(value, safe="")
    for response, urls in (
        (
            users,
            [f"/api/v1/users/{encoded}/", f"/api/v1/users/{encoded}/recommendations/"],
        ),
        (items, [f"/api/v1/items/{encoded}/", f"/api/v1/items/{encoded}/similar/"]),
    ):
        if response.status_code == 400:
            assert response.json()["rejected"][0]["errors"]["id"], response.json()
            continue
        assert response.status_code == 201, response.content[:300]
        for url in urls:
            assert api_client.get(url).status_code == 200, url


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "row"),
    [
        ("/api/v1/users/bulk/", {"id": "u", "attributes": {"k": "a\u0000b"}}),
        ("/api/v1/items/bulk/", {"id": "i", "title": "a\u0000b"}),
        ("/api/v1/interactions/", {"user": "a\u0000", "item": "i", "type": "view"}),
        ("/api/v1/users/", {"id": "\ud800"}),
    ],
)
def test_unstorable_text_in_bodies_is_400(api_client, url, row):
    body = json.dumps([row] if "bulk" in url else row).encode()
    response = api_client.generic("POST", url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/users/victim/recommendations/",
        "/api/v1/items/victim-item/similar/",
        "/api/v1/recommendations/popular/",
    ],
)
def test_n_is_capped_at_100(api_client, some_rows, url):
    assert api_client.get(url, {"n": 100}).status_code == 200
    response = api_client.get(url, {"n": 101})
    assert response.status_code == 400
    assert "n" in response.json()
    assert api_client.get(url, {"n": 10**12}).status_code == 400


@pytest.mark.django_db
def test_session_n_is_capped_at_100(api_client, some_rows):
    url = "/api/v1/recommendations/session/"
    ok = api_client.post(url, {"items": ["victim-item"], "n": 100}, format="json")
    assert ok.status_code == 200, ok.content[:300]
    assert (
        api_client.post(
            url, {"items": ["victim-item"], "n": 101}, format="json"
        ).status_code
        == 400
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "row"),
    [
        ("/api/v1/interactions/", {"user": "u", "item": "victim-item", "type": "view"}),
        ("/api/v1/items/bulk/", {"id": "i"}),
        ("/api/v1/users/bulk/", {"id": "u"}),
    ],
)
def test_batches_are_capped_at_10000_rows(api_client, some_rows, url, row):
    too_many = api_client.post(url, [row] * 10_001, format="json")
    assert too_many.status_code == 400
    assert "10000" in json.dumps(too_many.json()).replace(",", "")
    assert _counts() == some_rows  # nothing of an oversized batch is stored


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["/api/v1/items/", "/api/v1/users/", "/api/v1/users/bulk-owner/interactions/"],
)
def test_page_size_is_capped(api_client, url):
    owner = EndUserFactory(external_id="bulk-owner")
    item = ItemFactory()
    EndUser.objects.bulk_create(EndUser(external_id=f"page-u-{n}") for n in range(600))
    Item.objects.bulk_create(Item(external_id=f"page-i-{n}") for n in range(600))
    view = InteractionTypeFactory(name="view")
    Interaction.objects.bulk_create(
        Interaction(user=owner, item=item, type=view) for _ in range(600)
    )
    response = api_client.get(url, {"page_size": 1_000_000})
    assert response.status_code == 200, response.content[:300]
    assert len(response.json()["results"]) == 500
    assert api_client.get(url, {"page": 10**9}).status_code == 404
    assert api_client.get(url, {"page_size": -1}).status_code in (200, 400)


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=50_000)
def test_interaction_body_over_the_limit_is_413(api_client, some_rows):
    rows = [
        {"user": "u", "item": "victim-item", "type": "view", "event_id": f"e{n}"}
        for n in range(2000)
    ]
    response = api_client.post("/api/v1/interactions/", rows, format="json")
    assert response.status_code == 413
    assert response.json()["detail"] == REQUEST_TOO_LARGE.format(limit=50_000)
    assert _counts() == some_rows
