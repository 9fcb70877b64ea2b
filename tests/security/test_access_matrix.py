"""Every operation of the OpenAPI document, with each kind of credential.

The list of operations comes from the schema the project serves, so an endpoint added
later is covered without touching this file: 401 without a key, 403 for a read-only
key on writes, and a public (browser) key only where the product allows it.
"""

import re
import uuid

import pytest
from drf_spectacular.generators import SchemaGenerator

from users.permissions import PUBLIC_KEY, READ_ONLY_KEY

SAFE = {"GET", "HEAD", "OPTIONS"}
# Operations anyone may call.
ANONYMOUS_ALLOWED = {("GET", "/api/v1/health/")}
# What a public key embedded in a web page may do: fetch recommendations, post events.
PUBLIC_ALLOWED = [
    ("GET", re.compile(r"^/api/v1/users/\{[^}]+\}/recommendations/$")),
    ("GET", re.compile(r"^/api/v1/recommendations/")),
    ("POST", re.compile(r"^/api/v1/recommendations/")),
    ("GET", re.compile(r"^/api/v1/items/\{[^}]+\}/similar/$")),
    ("POST", re.compile(r"^/api/v1/interactions/$")),
]
# 403 messages of views that demand a write key outright (e.g. imports).
STRICTER_MESSAGES = {"Imports need a read-write API key."}
NOT_API = ("/api/schema", "/api/docs", "/api/redoc")


def _operations() -> list[tuple[str, str, dict]]:
    # Built at collection time, before the test client's host is allowed: ask the
    # generator behind /api/schema/ directly.
    document = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, item in document["paths"].items():
        if path.startswith(NOT_API):
            continue
        for method, operation in item.items():
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                found.append((method.upper(), path, operation))
    return found


OPERATIONS = _operations()


def _url(path: str, operation: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == name:
                schema = parameter.get("schema", {})
                candidates = ["some-id", "1", str(uuid.uuid4())]
                if schema.get("type") == "integer":
                    return "1"
                if schema.get("format") == "uuid":
                    return candidates[2]
                for candidate in candidates:
                    if re.search(schema.get("pattern", ""), candidate):
                        return candidate
        return "some-id"

    return re.sub(r"\{([^}]+)\}", value, path)


def _call(client, method: str, path: str, operation: dict):
    url = _url(path, operation)
    if method in SAFE:
        return getattr(client, method.lower())(url)
    return getattr(client, method.lower())(url, data={}, format="json")


def _ids(operations):
    return [f"{method} {path}" for method, path, _ in operations]


def test_the_schema_lists_the_api():
    labels = set(_ids(OPERATIONS))
    # The core of the product must be there (and so covered by the tests below).
    for expected in ("POST /api/v1/interactions/", "GET /api/v1/health/"):
        assert expected in labels
    assert len(labels) >= 10, labels


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=_ids(OPERATIONS)
)
def test_without_a_key_is_401(anon_client, method, path, operation):
    response = _call(anon_client, method, path, operation)
    if (method, path) in ANONYMOUS_ALLOWED:
        assert response.status_code == 200
        return
    assert response.status_code == 401, response.content[:300]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [op for op in OPERATIONS if op[0] not in SAFE],
    ids=_ids([op for op in OPERATIONS if op[0] not in SAFE]),
)
def test_read_only_key_may_not_write(read_only_client, method, path, operation):
    response = _call(read_only_client, method, path, operation)
    assert response.status_code == 403, response.content[:300]
    # Views with a stricter permission class word it their own way.
    assert response.json()["detail"] in {READ_ONLY_KEY, *STRICTER_MESSAGES}


def _public_allowed(method: str, path: str) -> bool:
    return any(method == m and pattern.search(path) for m, pattern in PUBLIC_ALLOWED)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=_ids(OPERATIONS)
)
def test_public_key_is_limited_to_recommendations_and_interactions(
    public_client, method, path, operation
):
    response = _call(public_client, method, path, operation)
    if (method, path) in ANONYMOUS_ALLOWED:
        return
    if _public_allowed(method, path):
        assert response.status_code not in (401, 403), response.content[:300]
    else:
        assert response.status_code == 403, response.content[:300]
        assert response.json()["detail"] in {PUBLIC_KEY, *STRICTER_MESSAGES}


@pytest.mark.django_db
def test_read_only_key_delete_leaves_the_row(read_only_client):
    from tests.factories import EndUserFactory, ItemFactory

    user = EndUserFactory()
    item = ItemFactory()
    assert (
        read_only_client.delete(f"/api/v1/users/{user.external_id}/").status_code == 403
    )
    assert (
        read_only_client.delete(f"/api/v1/items/{item.external_id}/").status_code == 403
    )
    user.refresh_from_db()
    item.refresh_from_db()
