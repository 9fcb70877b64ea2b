"""Generated bad (and good) input against every operation of our OpenAPI document.

A bounded, deterministic run (derandomized Hypothesis, fixed seed): with a write key
and with a read-only key, no response is a 5xx and every documented response conforms
to the schema. The longer run: `benchmarks/fuzz_schemathesis.py` (docs/reliability.md).
"""

import pytest
from schemathesis.generation import GenerationMode

from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
from tests.reliability.fuzzing import run_fuzz
from users.models import ApiKey
from users.services import api_key_create

# Examples per operation and generation mode (positive, negative). A read-only key is
# refused every write before any parsing, so fewer examples find all it can.
MAX_EXAMPLES = {ApiKey.Kind.WRITE: 25, ApiKey.Kind.READ_ONLY: 10}
SEED = 20240601


@pytest.fixture
def some_data(transactional_db):
    """A few rows so that list/detail operations have something to serialise."""
    users = EndUserFactory.create_batch(3)
    items = ItemFactory.create_batch(5, categories=["books"], tags=["new"])
    for user in users:
        for item in items[:3]:
            InteractionFactory(user=user, item=item)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", [ApiKey.Kind.WRITE, ApiKey.Kind.READ_ONLY])
def test_no_server_error_and_responses_match_the_schema(
    kind, some_data, redis_of_our_own
):
    # A private Redis: training and import requests enqueue Celery tasks, which must
    # not reach the shared broker (and another developer's worker).
    _, raw_key = api_key_create(name=f"fuzz-{kind}", kind=kind)
    report = run_fuzz(
        headers={"Authorization": f"Bearer {raw_key}"},
        max_examples=MAX_EXAMPLES[kind],
        seed=SEED,
        modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    )
    print(report.summary())
    assert len(report.operations) >= 2, report.operations
    assert not report.failures, report.summary()
