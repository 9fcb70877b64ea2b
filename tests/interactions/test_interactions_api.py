import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations.models import Interaction, InteractionType
from recommendations.services import interactions as svc
from recsite import validation
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
from users.models import EndUser

URL = reverse("interaction-list")


def post(client, body):
    """POST a raw JSON body (so tests control exactly what is sent)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(URL, data=text, content_type="application/json")


@pytest.fixture
def items(db):
    return [ItemFactory(external_id=f"i{n}") for n in range(3)]


@pytest.mark.django_db
def test_one_object_is_stored_with_all_fields(api_client, items):
    rec = str(uuid.uuid4())
    response = post(
        api_client,
        {
            "user": "u1",
            "item": "i1",
            "type": "rating",
            "value": 4.5,
            "timestamp": "2025-01-31T12:00:00Z",
            "event_id": "e-1",
            "recommendation_id": rec,
        },
    )
    assert response.status_code == 201, response.json()
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    row = Interaction.objects.select_related("user", "item", "type").get()
    assert (row.user.external_id, row.item.external_id, row.type.name) == (
        "u1",
        "i1",
        "rating",
    )
    assert row.value == 4.5
    assert row.timestamp == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert row.event_id == "e-1"
    assert str(row.recommendation_id) == rec


@pytest.mark.django_db
def test_unknown_user_is_created_but_not_for_rejected_rows(api_client, items):
    response = post(
        api_client,
        [
            {"user": "new-user", "item": "i0", "type": "view"},
            {"user": "ghost", "item": "no-such-item", "type": "view"},
        ],
    )
    assert response.status_code == 201
    assert EndUser.objects.filter(external_id="new-user", attributes={}).exists()
    assert not EndUser.objects.filter(external_id="ghost").exists()


@pytest.mark.django_db
def test_bad_rows_are_rejected_alone_with_indexes_and_messages(api_client, items):
    now = time.time()
    rows = [
        {"user": "u1", "item": "i0", "type": "view"},  # 0 ok
        {"user": "u1", "item": "nope", "type": "view"},  # 1 unknown item
        {"user": "u1", "item": "i0", "type": "teleport"},  # 2 unknown type
        {"user": "u1", "item": "i0", "type": "rating", "value": "5"},  # 3 wrong type
        {"user": "u1", "item": "i0", "type": "rating", "value": True},  # 4 bool
        {"user": "u1", "item": "i0", "type": "view", "timestamp": "yesterday"},  # 5
        {"user": "u1", "item": "i0", "type": "view", "timestamp": now + 3 * 86400},  # 6
        {"user": "u1", "item": "i0", "type": "view", "timestamp": now * 1000},  # 7 ms
        {
            "user": "u1",
            "item": "i0",
            "type": "view",
            "colour": "red",
        },  # 8 unknown field
        {"item": "i0", "type": "view"},  # 9 missing user
        {"user": "x" * 256, "item": "i0", "type": "view"},  # 10 too long
        "not an object",  # 11
        {"user": "u1", "item": "i0", "type": "view", "recommendation_id": "nope"},  # 12
        {"user": ["u1"], "item": "i0", "type": 3},  # 13 wrong types
        {"user": "u1", "item": "i0", "type": "view", "event_id": ""},  # 14 empty
        {
            "user": "u1",
            "item": "i1",
            "type": "view",
            "timestamp": 1_700_000_000,
        },  # 15 ok
    ]
    response = post(api_client, rows)
    assert response.status_code == 201
    body = response.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == 0
    errors = {entry["index"]: entry["errors"] for entry in body["rejected"]}
    assert sorted(errors) == list(range(1, 15))
    assert errors[1] == {"item": [svc.UNKNOWN_ITEM.format(id="nope")]}
    assert errors[1] == {"item": ["Unknown item 'nope'."]}
    assert errors[2] == {"type": [svc.UNKNOWN_TYPE.format(name="teleport")]}
    assert errors[3] == {"value": [svc.VALUE_INVALID]}
    assert errors[4] == {"value": [svc.VALUE_INVALID]}
    assert errors[5] == {"timestamp": [svc.TIMESTAMP_INVALID]}
    assert errors[6] == {"timestamp": [svc.TIMESTAMP_IN_FUTURE]}
    assert errors[7] == {"timestamp": [svc.TIMESTAMP_IN_FUTURE]}
    assert errors[8] == {"colour": [validation.UNKNOWN_FIELD]}
    assert errors[9] == {"user": [validation.REQUIRED]}
    assert errors[10] == {"user": [svc.ID_INVALID]}
    assert errors[11] == {"non_field_errors": [validation.NOT_AN_OBJECT]}
    assert errors[12] == {"recommendation_id": [svc.RECOMMENDATION_ID_INVALID]}
    assert errors[13] == {"user": [svc.ID_INVALID], "type": [svc.TYPE_INVALID]}
    assert errors[14] == {"event_id": [svc.EVENT_ID_INVALID]}
    stored = set(Interaction.objects.values_list("item__external_id", "type__name"))
    assert stored == {("i0", "view"), ("i1", "view")}


@pytest.mark.django_db
def test_non_finite_numbers_are_rejected(api_client, items):
    # 1e999 is valid JSON that parses to infinity.
    body = (
        '[{"user": "u1", "item": "i0", "type": "rating", "value": 1e999},'
        ' {"user": "u1", "item": "i0", "type": "view", "timestamp": -1e999},'
        ' {"user": "u1", "item": "i0", "type": "view"}]'
    )
    response = post(api_client, body)
    assert response.status_code == 201
    assert response.json()["rejected"] == [
        {"index": 0, "errors": {"value": [svc.VALUE_INVALID]}},
        {"index": 1, "errors": {"timestamp": [svc.TIMESTAMP_INVALID]}},
    ]
    # NaN is not JSON at all: the whole body is refused, with a message.
    response = post(
        api_client, '[{"user": "u1", "item": "i0", "type": "view", "value": NaN}]'
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.django_db
def test_every_row_rejected_is_400_with_the_same_body(api_client, items):
    response = post(api_client, [{"user": "u1", "item": "nope", "type": "view"}])
    assert response.status_code == 400
    assert response.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [{"index": 0, "errors": {"item": ["Unknown item 'nope'."]}}],
    }
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_timestamp_formats(api_client, items):
    before = datetime.now(tz=UTC)
    rows = [
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "z",
            "timestamp": "2024-05-01T10:00:00Z",
        },
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "o",
            "timestamp": "2024-05-01T12:00:00+02:00",
        },
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "n",
            "timestamp": "2024-05-01T10:00:00",
        },
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "i",
            "timestamp": 1714557600,
        },
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "f",
            "timestamp": 1714557600.5,
        },
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "s",
            "timestamp": "1714557600",
        },
        {"user": "u", "item": "i0", "type": "view", "event_id": "d"},
        {
            "user": "u",
            "item": "i0",
            "type": "view",
            "event_id": "null",
            "timestamp": None,
        },
    ]
    assert post(api_client, rows).status_code == 201
    stamps = dict(Interaction.objects.values_list("event_id", "timestamp"))
    ten = datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert (
        stamps["z"] == stamps["o"] == stamps["n"] == stamps["i"] == stamps["s"] == ten
    )
    assert stamps["f"] == ten + timedelta(milliseconds=500)
    assert before - timedelta(seconds=1) <= stamps["d"] <= datetime.now(tz=UTC)
    assert before - timedelta(seconds=1) <= stamps["null"] <= datetime.now(tz=UTC)


@pytest.mark.django_db
def test_retried_batch_is_idempotent_by_event_id(api_client, items):
    rows = [
        {
            "user": f"u{n % 3}",
            "item": f"i{n % 3}",
            "type": "click",
            "event_id": f"ev-{n}",
        }
        for n in range(20)
    ]
    first = post(api_client, rows)
    assert first.json() == {"accepted": 20, "duplicates": 0, "rejected": []}
    again = post(api_client, rows)
    assert again.status_code == 201
    assert again.json() == {"accepted": 0, "duplicates": 20, "rejected": []}
    assert Interaction.objects.count() == 20


@pytest.mark.django_db
def test_event_id_repeated_inside_one_batch_is_a_duplicate(api_client, items):
    rows = [
        {"user": "u1", "item": "i0", "type": "view", "event_id": "same"},
        {"user": "u1", "item": "i1", "type": "view", "event_id": "same"},
        {"user": "u1", "item": "i2", "type": "view"},
        {"user": "u1", "item": "i2", "type": "view"},  # no event id: both kept
    ]
    assert post(api_client, rows).json() == {
        "accepted": 3,
        "duplicates": 1,
        "rejected": [],
    }
    assert Interaction.objects.get(event_id="same").item.external_id == "i0"
    assert Interaction.objects.filter(event_id=None).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", validation.BATCH_EMPTY),
        ('"hello"', validation.BATCH_NOT_OBJECT_OR_LIST),
        ("42", validation.BATCH_NOT_OBJECT_OR_LIST),
    ],
)
def test_unusable_bodies_are_400_with_a_message(api_client, body, message):
    response = post(api_client, body)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [message]}


@pytest.mark.django_db
def test_oversize_batch_is_refused_and_nothing_is_stored(api_client, items):
    rows = [{"user": "u1", "item": "i0", "type": "view"}] * 10_001
    response = post(api_client, rows)
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": [
            validation.BATCH_TOO_LARGE.format(max=10_000, count=10_001)
        ]
    }
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_malformed_json_is_400(api_client):
    response = post(api_client, '[{"user": "u1", ')
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.django_db
def test_auth_no_key_401_read_only_403_public_allowed(
    anon_client, read_only_client, public_client, items
):
    row = {"user": "u1", "item": "i0", "type": "view"}
    assert post(anon_client, row).status_code == 401
    assert post(read_only_client, row).status_code == 403
    assert post(public_client, row).status_code == 201
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_listing_interactions_is_not_an_endpoint(api_client):
    assert api_client.get(URL).status_code == 405


@pytest.mark.django_db
def test_a_type_created_after_the_cache_filled_is_known(api_client, items):
    assert (
        post(api_client, {"user": "u1", "item": "i0", "type": "view"}).status_code
        == 201
    )
    InteractionType.objects.create(name="share", weight=2.0)
    response = post(api_client, {"user": "u1", "item": "i0", "type": "share"})
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_a_deleted_type_is_unknown_to_the_next_batch(api_client, items):
    # No database foreign key guards Interaction.type: ingestion must not keep
    # using a type that is gone, or rows would point at nothing.
    InteractionType.objects.create(name="share", weight=2.0)
    assert post(api_client, {"user": "u1", "item": "i0", "type": "view"}).status_code
    InteractionType.objects.filter(name="share").delete()

    response = post(api_client, {"user": "u1", "item": "i0", "type": "share"})

    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 0, "errors": {"type": [svc.UNKNOWN_TYPE.format(name="share")]}}
    ]
    assert not Interaction.objects.exclude(
        type_id__in=InteractionType.objects.values("id")
    ).exists()


@pytest.mark.django_db
def test_a_type_in_use_cannot_be_deleted(api_client, items):
    assert post(api_client, {"user": "u1", "item": "i0", "type": "like"}).status_code
    with pytest.raises(ProtectedError):
        InteractionType.objects.filter(name="like").delete()
    assert Interaction.objects.filter(type__name="like").count() == 1


@pytest.mark.django_db
def test_batch_costs_a_constant_number_of_queries(api_client, items):
    def queries(n: int, offset: int) -> int:
        rows = [
            {
                "user": f"q{offset + k}",
                "item": f"i{k % 3}",
                "type": "view",
                "event_id": f"q{offset + k}",
            }
            for k in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            assert post(api_client, rows).status_code == 201
        return len(ctx.captured_queries)

    queries(1, 0)  # warm the type cache
    assert queries(5, 1000) == queries(300, 2000)


@pytest.mark.django_db
def test_history_of_a_user_is_newest_first_and_paginated(api_client, read_only_client):
    user = EndUserFactory(external_id="hist")
    other = EndUserFactory()
    item = ItemFactory(external_id="h-item")
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(5):
        InteractionFactory(
            user=user, item=item, timestamp=base + timedelta(days=n), event_id=f"h{n}"
        )
    InteractionFactory(user=other, item=item)
    url = reverse("user-interactions", kwargs={"id": "hist"})
    response = read_only_client.get(url, {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert [row["event_id"] for row in body["results"]] == ["h4", "h3"]
    assert body["results"][0] == {
        "item": "h-item",
        "type": "view",
        "value": None,
        "timestamp": "2024-01-05T00:00:00Z",
        "event_id": "h4",
        "recommendation_id": None,
        "created_at": body["results"][0]["created_at"],
    }
    page3 = read_only_client.get(url, {"page_size": 2, "page": 3}).json()
    assert [row["event_id"] for row in page3["results"]] == ["h0"]


@pytest.mark.django_db
def test_history_unknown_user_404_and_auth(api_client, anon_client, public_client):
    EndUserFactory(external_id="known")
    assert (
        api_client.get(
            reverse("user-interactions", kwargs={"id": "nobody"})
        ).status_code
        == 404
    )
    url = reverse("user-interactions", kwargs={"id": "known"})
    assert anon_client.get(url).status_code == 401
    assert public_client.get(url).status_code == 403
    assert api_client.get(url).status_code == 200
