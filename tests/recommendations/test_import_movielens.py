"""`manage.py import_movielens` on a MovieLens-format directory (from synthetic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from benchmarks.quality_api import write_movielens_100k
from items.models import Item
from recommendations.engine.movielens import load_movielens
from recommendations.models import Interaction
from users.models import EndUser

pytestmark = pytest.mark.django_db


@pytest.fixture
def ml_dir(tmp_path, small_log):
    directory = tmp_path / "ml-synth"
    write_movielens_100k(small_log, directory)
    return directory


def test_import_writes_items_users_and_rating_interactions(ml_dir, capsys):
    parsed = load_movielens(ml_dir)
    call_command("import_movielens", str(ml_dir), "--limit-users", "20")
    assert "Imported 20 users" in capsys.readouterr().out
    assert EndUser.objects.count() == 20
    assert Item.objects.count() == len(parsed.items)
    assert Interaction.objects.count() == int((parsed.user_index < 20).sum())
    assert set(Interaction.objects.values_list("type__name", flat=True)) == {"rating"}

    # One rating row survives with its value, original timestamp and genres.
    row = 0
    user = str(parsed.users[parsed.user_index[row]]["id"])
    item = parsed.items[parsed.item_index[row]]
    stored = Interaction.objects.get(
        user__external_id=user, item__external_id=item["id"]
    )
    assert stored.value == parsed.value[row]
    assert stored.timestamp == datetime.fromtimestamp(parsed.timestamp[row], tz=UTC)
    db_item = Item.objects.get(external_id=item["id"])
    assert sorted(db_item.categories.values_list("name", flat=True)) == sorted(
        item["categories"]
    )
    assert db_item.attributes.get("year") == item["attributes"]["year"]
    assert EndUser.objects.get(external_id=user).attributes["gender"] in {"M", "F"}


def test_import_refuses_a_directory_without_movielens_files(tmp_path):
    with pytest.raises(CommandError):
        call_command("import_movielens", str(tmp_path))
