import pytest
from django.core.management import call_command
from django.urls import reverse


@pytest.mark.django_db
def test_health_is_public_and_reports_database_and_redis(anon_client):
    response = anon_client.get(reverse("health"))
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["status"] == "up"
    assert body["redis"]["status"] == "up"
    assert body["status"] in {"ok", "degraded"}
    assert body["change_feed"] == {"status": "off"}  # the test settings turn it off


@pytest.mark.django_db
def test_docs_are_public(anon_client):
    for name in ("schema", "swagger-ui", "redoc"):
        assert anon_client.get(reverse(name)).status_code == 200


def test_openapi_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/health/" in out.read_text()
