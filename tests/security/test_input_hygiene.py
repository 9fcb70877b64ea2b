"""Bodies too large, NUL bytes, lone surrogates: a clear 4xx before parsing or SQL."""

import json

import pytest
from django.test import override_settings

from recsite.exceptions import NUL_CHARACTER, REQUEST_TOO_LARGE, TOO_DEEP
from recsite.middleware import LONE_SURROGATE

TEST_URLS = "tests.security.urls"
ECHO_POST = "/api/v1/test-boom/"  # its POST echoes the parsed body


def _post_raw(client, url: str, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", url, body, content_type=content_type)


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_body_over_the_limit_is_413_json(api_client):
    body = json.dumps({"rows": ["x" * 100] * 20}).encode()
    response = _post_raw(api_client, ECHO_POST, body)
    assert response.status_code == 413
    assert response.json() == {
        "detail": REQUEST_TOO_LARGE.format(limit=1000),
        "code": "request_too_large",
    }
    # Just under the limit goes through.
    small = json.dumps({"rows": ["x" * 100] * 5}).encode()
    assert _post_raw(api_client, ECHO_POST, small).status_code == 200


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_body_over_the_limit_is_413_even_unauthenticated(anon_client):
    body = b'{"a": "' + b"x" * 5000 + b'"}'
    assert _post_raw(anon_client, ECHO_POST, body).status_code == 413


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"id": "a\\u0000b"}', NUL_CHARACTER),
        (b'{"attributes": {"k\\u0000": 1}}', NUL_CHARACTER),
        (b'["\\u0000"]', NUL_CHARACTER),
        (b'{"id": "\\ud800"}', LONE_SURROGATE),
        (b'{"id": "x\\udfff"}', LONE_SURROGATE),
        (b'{"id": "\\ud83d\\ude00\\ude00"}', LONE_SURROGATE),
        # A literal backslash then "ud800", then a real lone low surrogate.
        (b'{"id": "\\\\ud800\\udc00"}', LONE_SURROGATE),
        (b'{"id": "\\\\\\u0000"}', NUL_CHARACTER),
    ],
)
def test_text_postgresql_cannot_store_is_400(api_client, body, message):
    response = _post_raw(api_client, ECHO_POST, body)
    assert response.status_code == 400
    assert response.json() == {"detail": message, "code": "invalid_characters"}


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
@pytest.mark.parametrize(
    "text",
    [
        "\\\\u0000 is a backslash then u0000",  # an escaped backslash, not an escape
        "emoji \U0001f600 and \u200f RTL \u202e override",
        "\u0301\u0301 combining, \ufeff BOM, \U0010ffff max code point",
        "'; DROP TABLE users_enduser; --",
    ],
)
def test_legitimate_unicode_passes_the_guard(api_client, text):
    body = json.dumps({"id": text}, ensure_ascii=False).encode()
    response = _post_raw(api_client, ECHO_POST, body)
    assert response.status_code == 200
    assert response.json() == {"received": {"id": text}}
    escaped = json.dumps({"id": text}, ensure_ascii=True).encode()
    assert _post_raw(api_client, ECHO_POST, escaped).json() == {
        "received": {"id": text}
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/users/a%00b/",
        "/api/v1/items/?search=a%00b",
        "/api/v1/interactions/?user=%00",
        "/admin/users/enduser/?q=%00",
    ],
)
def test_nul_in_path_or_query_is_400(api_client, url):
    response = api_client.get(url)
    assert response.status_code == 400
    if url.startswith("/api/"):
        assert response.json() == {
            "detail": NUL_CHARACTER,
            "code": "invalid_characters",
        }
    else:
        assert response.content.decode() == NUL_CHARACTER


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
def test_malformed_json_is_400_not_500(api_client):
    for body in (b'{"a": ', b"\xff\xfe", b'{"a": "\x00"}', b'{"a": "\xed\xa0\x80"}'):
        response = _post_raw(api_client, ECHO_POST, body)
        assert response.status_code == 400, body[:20]
        assert "detail" in response.json()


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
def test_deeply_nested_json_is_400_not_500(api_client):
    for depth in (10_000, 100_000):
        body = b"[" * depth + b"]" * depth
        response = _post_raw(api_client, ECHO_POST, body)
        assert response.status_code == 400
        assert response.json() == {"detail": TOO_DEEP, "code": "too_deep"}
