"""Hand-picked requests whose answers must match the OpenAPI document.

The fuzz run (test_fuzz_schemathesis.py) finds these among thousands of requests; here
each known mismatch is one named, fast, reproducible test.
"""

import pytest

from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
from tests.reliability.fuzzing import load_schema, validation_errors
from users.services import api_key_create

BATCH_ENDPOINTS = [
    "/api/v1/interactions/",
    "/api/v1/items/bulk/",
    "/api/v1/users/bulk/",
]
# Each is a 400 under the error contract of common.md, in one of its shapes.
BAD_BATCHES = {
    "empty list": [],
    "not a list": "not a list",
    "NUL character": [
        {"id": "a\u0000b", "user": "a\u0000b", "item": "x", "type": "view"}
    ],
}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    return load_schema(in_test_transaction=True)


@pytest.fixture
def write_headers(db) -> dict:
    return {"Authorization": f"Bearer {api_key_create(name='conformance')[1]}"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", BATCH_ENDPOINTS)
@pytest.mark.parametrize("body", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_batch_endpoint_400_matches_the_documented_400(
    schema, write_headers, path, body
):
    case = schema[path]["POST"].Case(body=body, media_type="application/json")
    response = case.call(headers=write_headers)
    assert response.status_code == 400, response.text[:300]
    assert validation_errors(case, response, write_headers) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "method", "path_parameters"),
    [
        ("/api/v1/recommendations/popular/", "GET", {}),
        ("/api/v1/users/{user_id}/recommendations/", "GET", {"user_id": "fan"}),
        ("/api/v1/users/{user_id}/recommendations/", "GET", {"user_id": "nobody"}),
        ("/api/v1/items/{item_id}/similar/", "GET", {"item_id": "liked-0"}),
    ],
)
def test_recommendation_answers_match_the_documented_200(
    schema, write_headers, path, method, path_parameters
):
    fan = EndUserFactory(external_id="fan")
    for n in range(3):
        InteractionFactory(user=fan, item=ItemFactory(external_id=f"liked-{n}"))
    case = schema[path][method].Case(path_parameters=path_parameters)
    response = case.call(headers=write_headers)
    assert response.status_code == 200, response.text[:300]
    assert validation_errors(case, response, write_headers) == []
