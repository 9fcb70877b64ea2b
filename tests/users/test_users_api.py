import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recommendations.models import Interaction
from recsite import validation
from tests.factories import EndUserFactory, InteractionFactory
from users.models import EndUser
from users.services import ID_IMMUTABLE, USER_EXISTS

LIST = reverse("user-list")
BULK = reverse("user-bulk")


def detail(external_id: str) -> str:
    # Client ids may hold any character but `/`; they travel percent-encoded.
    return f"{LIST}{quote(external_id, safe='')}/"


def send(client, method: str, url: str, body) -> object:
    text = body if isinstance(body, str) else json.dumps(body)
    return getattr(client, method)(url, data=text, content_type="application/json")


@pytest.mark.django_db
def test_create_then_retrieve(api_client):
    response = send(
        api_client,
        "post",
        LIST,
        {"id": "u-1", "attributes": {"age": 34, "tags": ["a"]}},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == "u-1"
    assert body["attributes"] == {"age": 34, "tags": ["a"]}
    assert {"created_at", "updated_at"} <= body.keys()
    assert api_client.get(detail("u-1")).json() == body


@pytest.mark.django_db
def test_create_without_attributes_and_with_an_integer_id(api_client):
    response = send(api_client, "post", LIST, {"id": 42})
    assert response.status_code == 201
    assert response.json()["id"] == "42"
    assert EndUser.objects.get(external_id="42").attributes == {}


@pytest.mark.django_db
def test_create_duplicate_is_400(api_client):
    EndUserFactory(external_id="taken")
    response = send(api_client, "post", LIST, {"id": "taken"})
    assert response.status_code == 400
    assert response.json() == {"id": [USER_EXISTS]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"id": "u", "name": "x"}, {"name": [validation.UNKNOWN_FIELD]}),
        ({}, {"id": [validation.REQUIRED]}),
        ({"id": "x" * 256}, {"id": [validation.ID_TOO_LONG]}),
        ({"id": ""}, {"id": [validation.ID_EMPTY]}),
        ({"id": ["u"]}, {"id": [validation.ID_INVALID]}),
        (
            {"id": "u", "attributes": [1]},
            {"attributes": [validation.ATTRIBUTES_NOT_OBJECT]},
        ),
        (
            {"id": "u", "attributes": {"address": {"city": "Paris"}}},
            {"attributes": [validation.ATTRIBUTE_NESTED.format(key="address")]},
        ),
        (
            {"id": "u", "attributes": {"age": None}},
            {"attributes": [validation.ATTRIBUTE_NULL.format(key="age")]},
        ),
        (
            {"id": "u", "attributes": {"likes": ["a", 2]}},
            {"attributes": [validation.ATTRIBUTE_LIST_INVALID.format(key="likes")]},
        ),
        (
            {"id": "u", "attributes": {f"k{n}": n for n in range(101)}},
            {"attributes": [validation.ATTRIBUTES_TOO_MANY]},
        ),
        (
            {"id": "u", "attributes": {"k" * 101: 1}},
            {"attributes": [validation.ATTRIBUTE_KEY_INVALID]},
        ),
        ("[1, 2]", {"non_field_errors": [validation.NOT_AN_OBJECT]}),
    ],
)
def test_create_rejects_bad_input_with_field_errors(api_client, payload, errors):
    response = send(api_client, "post", LIST, payload)
    assert response.status_code == 400
    assert response.json() == errors
    assert not EndUser.objects.exists()


@pytest.mark.django_db
def test_infinite_attribute_is_rejected(api_client):
    response = send(
        api_client, "post", LIST, '{"id": "u", "attributes": {"score": 1e999}}'
    )
    assert response.status_code == 400
    assert response.json() == {
        "attributes": [validation.ATTRIBUTE_NOT_FINITE.format(key="score")]
    }


@pytest.mark.django_db
def test_malformed_json_is_400(api_client):
    response = send(api_client, "post", LIST, '{"id": ')
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "external_id", ["a b", "émile", "x.json", "a:b", "100%", "q?x=1#f", "+-~"]
)
def test_any_id_without_a_slash_is_addressable(api_client, external_id):
    EndUserFactory(external_id=external_id)
    response = api_client.get(detail(external_id))
    assert response.status_code == 200
    assert response.json()["id"] == external_id


@pytest.mark.django_db
def test_unknown_user_is_404(api_client):
    assert api_client.get(detail("nobody")).status_code == 404
    assert (
        send(api_client, "patch", detail("nobody"), {"attributes": {}}).status_code
        == 404
    )
    assert api_client.delete(detail("nobody")).status_code == 404


@pytest.mark.django_db
def test_list_is_paginated_in_creation_order(api_client):
    for n in range(5):
        EndUserFactory(external_id=f"p{n}")
    page1 = api_client.get(LIST, {"page_size": 2}).json()
    assert page1["count"] == 5
    assert [u["id"] for u in page1["results"]] == ["p0", "p1"]
    assert page1["next"] is not None
    page3 = api_client.get(LIST, {"page_size": 2, "page": 3}).json()
    assert [u["id"] for u in page3["results"]] == ["p4"]
    assert page3["next"] is None


@pytest.mark.django_db
def test_list_filters(api_client):
    old = EndUserFactory(
        external_id="shop-old", attributes={"country": "FR", "age": 30}
    )
    EndUser.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=10)
    )
    EndUserFactory(
        external_id="shop-new",
        attributes={"country": "DE", "age": 30, "likes": ["jazz"]},
    )
    EndUserFactory(external_id="other", attributes={"country": "FR", "age": "30"})

    def ids(**params):
        response = api_client.get(LIST, params)
        assert response.status_code == 200, response.json()
        return sorted(u["id"] for u in response.json()["results"])

    assert ids(id_prefix="shop-") == ["shop-new", "shop-old"]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(created_after=since) == ["other", "shop-new"]
    assert ids(created_before=since) == ["shop-old"]
    assert ids(attribute="country:FR") == ["other", "shop-old"]
    assert ids(attribute="age:30") == ["other", "shop-new", "shop-old"]  # 30 and "30"
    assert ids(attribute="likes:jazz") == ["shop-new"]
    assert (
        api_client.get(
            LIST + "?attribute=country:FR&attribute=age:30&id_prefix=shop"
        ).json()["count"]
        == 1
    )


@pytest.mark.django_db
def test_list_bad_filters_are_400(api_client):
    response = api_client.get(
        LIST, {"created_after": "last tuesday", "attribute": "nocolon"}
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"created_after", "attribute"}


@pytest.mark.django_db
def test_patch_replaces_attributes(api_client):
    EndUserFactory(external_id="u", attributes={"age": 30, "country": "FR"})
    response = send(api_client, "patch", detail("u"), {"attributes": {"age": 31}})
    assert response.status_code == 200
    assert response.json()["attributes"] == {"age": 31}
    assert EndUser.objects.get(external_id="u").attributes == {"age": 31}
    # Sending the id back unchanged is fine; changing it is not.
    assert send(api_client, "patch", detail("u"), {"id": "u"}).status_code == 200
    response = send(api_client, "patch", detail("u"), {"id": "v"})
    assert response.status_code == 400
    assert response.json() == {"id": [ID_IMMUTABLE]}
    response = send(
        api_client, "patch", detail("u"), {"attributes": {"a": {"b": 1}}, "x": 1}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"attributes", "x"}


@pytest.mark.django_db
def test_put_is_not_allowed(api_client):
    EndUserFactory(external_id="u")
    assert send(api_client, "put", detail("u"), {"id": "u"}).status_code == 405


@pytest.mark.django_db
def test_delete_erases_the_user_and_their_interactions_in_few_queries(api_client):
    user = EndUserFactory(external_id="gone")
    keep = EndUserFactory(external_id="stays")
    for _ in range(30):
        InteractionFactory(user=user)
    InteractionFactory(user=keep)
    with CaptureQueriesContext(connection) as ctx:
        response = api_client.delete(detail("gone"))
    assert response.status_code == 204
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 2  # interactions, then the user: not one per row
    assert not EndUser.objects.filter(external_id="gone").exists()
    assert list(Interaction.objects.values_list("user__external_id", flat=True)) == [
        "stays"
    ]


@pytest.mark.django_db
def test_bulk_upsert_creates_updates_and_keeps_omitted_attributes(api_client):
    EndUserFactory(external_id="a", attributes={"age": 1})
    EndUserFactory(external_id="b", attributes={"age": 2})
    rows = [
        {"id": "a", "attributes": {"age": 10}},
        {"id": "b"},  # attributes omitted: kept
        {"id": "c", "attributes": {"country": "FR"}},
        {"id": "d"},
    ]
    response = send(api_client, "post", BULK, rows)
    assert response.status_code == 201
    assert response.json() == {
        "created": 2,
        "updated": 2,
        "accepted": 4,
        "rejected": [],
    }
    stored = dict(EndUser.objects.values_list("external_id", "attributes"))
    assert stored == {
        "a": {"age": 10},
        "b": {"age": 2},
        "c": {"country": "FR"},
        "d": {},
    }


@pytest.mark.django_db
def test_bulk_rejects_bad_rows_alone_and_later_duplicates_win(api_client):
    rows = [
        {"id": "ok", "attributes": {"v": 1}},
        {"id": "bad", "attributes": {"nested": {"x": 1}}},
        {"id": "x" * 300},
        {"id": "ok", "attributes": {"v": 2}},
        {"id": "z", "extra": True},
    ]
    response = send(api_client, "post", BULK, rows)
    assert response.status_code == 201
    assert response.json() == {
        "created": 1,
        "updated": 0,
        "accepted": 2,
        "rejected": [
            {
                "index": 1,
                "errors": {
                    "attributes": [validation.ATTRIBUTE_NESTED.format(key="nested")]
                },
            },
            {"index": 2, "errors": {"id": [validation.ID_TOO_LONG]}},
            {"index": 4, "errors": {"extra": [validation.UNKNOWN_FIELD]}},
        ],
    }
    assert dict(EndUser.objects.values_list("external_id", "attributes")) == {
        "ok": {"v": 2}
    }


@pytest.mark.django_db
def test_bulk_all_rejected_is_400(api_client):
    response = send(api_client, "post", BULK, [{"attributes": {}}])
    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 0, "errors": {"id": [validation.REQUIRED]}}
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", validation.BATCH_EMPTY),
        ('{"id": "u"}', validation.BATCH_NOT_A_LIST),
        (
            json.dumps([{"id": f"u{n}"} for n in range(10_001)]),
            validation.BATCH_TOO_LARGE.format(max=10_000, count=10_001),
        ),
    ],
)
def test_bulk_unusable_bodies_are_400(api_client, body, message):
    response = send(api_client, "post", BULK, body)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [message]}
    assert not EndUser.objects.exists()


@pytest.mark.django_db
def test_bulk_costs_a_constant_number_of_queries(api_client):
    # The key's first request of the minute also records its use: not counted.
    assert api_client.get(LIST).status_code == 200
    def queries(n: int, prefix: str) -> int:
        rows = [{"id": f"{prefix}{k}", "attributes": {"k": k}} for k in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            assert send(api_client, "post", BULK, rows).status_code == 201
        return len(ctx.captured_queries)

    assert queries(3, "s") == queries(400, "l")


@pytest.mark.django_db
def test_auth(anon_client, read_only_client, public_client):
    EndUserFactory(external_id="u")
    urls = [LIST, detail("u")]
    for url in urls:
        assert anon_client.get(url).status_code == 401
        assert read_only_client.get(url).status_code == 200
        assert public_client.get(url).status_code == 403
    for client, code in (
        (anon_client, 401),
        (read_only_client, 403),
        (public_client, 403),
    ):
        assert send(client, "post", LIST, {"id": "v"}).status_code == code
        assert send(client, "post", BULK, [{"id": "v"}]).status_code == code
        assert (
            send(client, "patch", detail("u"), {"attributes": {}}).status_code == code
        )
        assert client.delete(detail("u")).status_code == code
    assert list(EndUser.objects.values_list("external_id", flat=True)) == ["u"]
