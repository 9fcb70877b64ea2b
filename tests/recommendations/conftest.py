"""Fixtures for the Django side of recommendations: small data, a fast trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommendations import serving
from recommendations.engine import synthetic

# Small enough that loading + training takes about a second.
N_USERS, N_ITEMS, N_ROWS = 150, 120, 4_000
FAST_PARAMS = {
    "search": False,
    "max_epochs": 5,
    "eval_every_epochs": 5,
    "components": 16,
    "ease_lambda_factor": 4.0,
}


@pytest.fixture(autouse=True)
def _isolated_serving(settings, tmp_path):
    """Fresh serving state and a private artifacts directory for every test."""
    settings.RECSITE = {
        **settings.RECSITE,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "SERVING_REFRESH_S": 0,
    }
    serving.serving_reset()
    yield
    serving.serving_reset()


@pytest.fixture(scope="session")
def small_log():
    """A synthetic data set with planted tastes (no database)."""
    return synthetic.generate(
        n_users=N_USERS, n_items=N_ITEMS, n_interactions=N_ROWS, seed=7
    )


@pytest.fixture
def loaded(db, small_log):
    """The small data set written to the database: {"log", "user_pk", "item_pk"}."""
    from recommendations.services.demo import demo_data_load

    demo_data_load(log=small_log)
    from items.models import Item
    from users.models import EndUser

    return {
        "log": small_log,
        "user_pk": dict(EndUser.objects.values_list("external_id", "id")),
        "item_pk": dict(Item.objects.values_list("external_id", "id")),
    }


def artifact_dir(version) -> Path:
    """The local directory of a version's artifacts (through the artifact store)."""
    from recommendations.services.registry import artifact_store

    store = artifact_store()
    if store is None:
        return Path(version.artifact_path)
    return store.artifact_local_dir(name=version.artifact_path)


def train_fast(**extra):
    """Train one version in-process with fast settings."""
    from recommendations.models import ModelVersion
    from recommendations.services.training import model_version_train_now

    return model_version_train_now(
        trigger=ModelVersion.Trigger.COMMAND, params={**FAST_PARAMS, **extra}
    )


@pytest.fixture
def trained(loaded):
    """`loaded` plus an active model version trained on it."""
    version = train_fast()
    assert version.status == "active", version.error
    return {**loaded, "version": version}
