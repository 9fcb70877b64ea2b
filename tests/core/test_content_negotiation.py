"""The API's content negotiation: the everyday Accept headers take a shortcut to
JSON, and everything else is negotiated by DRF as before."""

import json

import pytest

pytestmark = pytest.mark.django_db

URL = "/api/v1/users/"


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_plain_accept_headers_get_compact_json(api_client, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = api_client.get(URL, **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert b"\n" not in response.content  # compact, as DRF renders it
    json.loads(response.content)


def test_a_media_type_parameter_is_still_honoured(api_client):
    # `indent` in the Accept header is DRF's JSONRenderer option: negotiated as before.
    response = api_client.get(URL, HTTP_ACCEPT="application/json; indent=4")
    assert response.status_code == 200
    assert b'\n    "' in response.content


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png"])
def test_an_unserved_media_type_is_still_406(api_client, accept):
    response = api_client.get(URL, HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert "detail" in response.json()


def test_format_override_is_still_negotiated(api_client):
    assert api_client.get(URL, {"format": "json"}).status_code == 200
    assert api_client.get(URL, {"format": "xml"}).status_code == 404


def test_the_shortcut_answers_what_drf_would(rf):
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request

    from recsite.negotiation import JsonShortcutNegotiation

    renderers = [JSONRenderer()]
    for accept in ("*/*", "application/json"):
        request = Request(rf.get("/", HTTP_ACCEPT=accept))
        shortcut = JsonShortcutNegotiation().select_renderer(request, renderers)
        full = DefaultContentNegotiation().select_renderer(request, renderers)
        assert shortcut == full == (renderers[0], "application/json")
