"""Staff journeys through the admin in headless Chromium; screenshots as artifacts."""

import threading

import pytest
from django.db import connection

from items.models import Item
from recommendations.engine.synthetic import generate
from recommendations.models import ModelVersion
from recommendations.services.demo import demo_data_load
from tests.admin.browser.conftest import screenshot
from tests.factories import ModelVersionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRAINING_TIMEOUT_MS = 240_000


def _user_url(page, user) -> str:
    return f"{page.base_url}/admin/users/enduser/{user.pk}/change/"


def _recommended(page) -> list[str]:
    return page.locator("#rs-recommendations tr[data-item]").evaluate_all(
        "rows => rows.map(r => r.dataset.item)"
    )


def test_hidden_item_vanishes_from_a_users_recommendations(staff_page, catalog):
    page = staff_page
    page.goto(f"{page.base_url}/admin/")
    assert page.locator("#rs-users").inner_text() == "6"
    screenshot(page, "01-dashboard")
    item0 = catalog["items"][0]
    page.goto(f"{page.base_url}/admin/items/item/{item0.pk}/change/")
    page.wait_for_selector("#rs-similar-items tr[data-item]")
    assert page.locator("#rs-item-activity svg.rs-bar-chart rect.rs-bar").count() >= 1
    screenshot(page, "02-item-page")
    user = catalog["users"][5]
    page.goto(_user_url(page, user))
    assert _recommended(page)[0] == "item-0"
    screenshot(page, "02-user-recommendations-before-hide")
    page.goto(_user_url(page, user) + "?category=films&n=5")
    assert all(int(i.split("-")[1]) % 2 for i in _recommended(page))
    screenshot(page, "02-user-recommendations-films-only")

    page.goto(f"{page.base_url}/admin/items/item/?q=item-0")
    item = Item.objects.get(external_id="item-0")
    page.check(f"input[name=_selected_action][value='{item.pk}']")
    page.select_option("select[name=action]", "hide")
    page.click("button[name=index]")
    page.wait_for_selector("text=Hid 1 item(s).")
    assert page.locator("#result_list .rs-badge-hidden").count() == 1
    screenshot(page, "03-item-hidden")

    page.goto(_user_url(page, user))
    recommended = _recommended(page)
    assert recommended and "item-0" not in recommended
    screenshot(page, "04-user-recommendations-after-hide")


def test_model_version_charts(staff_page, tmp_path):
    page = staff_page
    versions = [
        ModelVersionFactory(
            status=ModelVersion.Status.ACTIVE if n == 4 else ModelVersion.Status.READY,
            metrics={
                "precision_at_10": 0.08 + 0.01 * n,
                "recall_at_10": 0.12 + 0.015 * n,
                "ndcg_at_10": 0.1 + 0.012 * n,
                "coverage": 0.3 + 0.05 * n,
                "cold_coverage": 0.5 + 0.02 * n,
                "cold_precision_at_10": 0.03 + 0.004 * n,
                "cold_ndcg_at_10": 0.04 + 0.006 * n,
            },
            data_stats={
                "n_users": 1000,
                "n_items": 2000,
                "n_interactions": 40000 + 2500 * n,
            },
            timings={
                "extract": 0.3,
                "features+fit": 20 + 4 * n,
                "evaluate": 8,
                "save": 0.2,
                "total": 28.5 + 4 * n,
            },
        )
        for n in range(5)
    ]
    page.goto(f"{page.base_url}/admin/recommendations/modelversion/")
    page.wait_for_selector("#rs-version-charts svg.rs-line-chart")
    assert page.locator("#rs-version-charts svg.rs-line-chart").count() == 3
    assert page.locator("#rs-version-charts svg.rs-bar-chart rect.rs-bar").count() == 5
    screenshot(page, "05-model-versions-charts")

    page.click(f"#result_list a:text-is('v{versions[2].pk}')")
    page.wait_for_selector("#rs-version-detail")
    assert page.locator("#rs-version-charts .rs-highlight").count() == 3
    assert (
        page.locator("#rs-metrics").inner_text().count("ndcg_at_10") == 2
    )  # and cold_
    screenshot(page, "06-model-version-detail")


def test_training_progress_refreshes_by_itself(staff_page):
    page = staff_page
    version = ModelVersionFactory(
        status=ModelVersion.Status.TRAINING, progress_stage="fit", progress_percent=30.0
    )
    page.goto(
        f"{page.base_url}/admin/recommendations/modelversion/{version.pk}/change/"
    )
    box = page.locator("#rs-training-progress")
    assert "fit · 30%" in box.inner_text()

    ModelVersion.objects.filter(pk=version.pk).update(
        progress_stage="evaluate", progress_percent=72.0
    )
    page.wait_for_selector("#rs-training-progress .rs-percent:text-is('72')")
    assert "evaluate" in box.inner_text()
    screenshot(page, "07-training-progress")

    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.FAILED, error="boom"
    )
    page.wait_for_selector(".field-status_badge .rs-badge-failed")  # reloaded by itself
    assert page.locator("#rs-training-progress").count() == 0


@pytest.fixture
def worker_thread(monkeypatch):
    """Send training tasks to a thread (a stand-in worker): requests return at once."""
    from recommendations.tasks import train_model_task

    threads: list[threading.Thread] = []

    def run(args=None, kwargs=None, **options):
        def work():
            try:
                train_model_task.apply(args=args, kwargs=kwargs)
            finally:
                connection.close()

        thread = threading.Thread(target=work, daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(train_model_task, "apply_async", run)
    yield threads
    for thread in threads:
        thread.join(timeout=TRAINING_TIMEOUT_MS / 1000)


def test_train_now_shows_progress_then_the_trained_version(staff_page, worker_thread):
    page = staff_page
    demo_data_load(log=generate(n_users=150, n_items=120, n_interactions=4000, seed=7))

    page.goto(f"{page.base_url}/admin/recommendations/modelversion/")
    page.click("#rs-train-now")
    page.click("#rs-train-submit")
    page.wait_for_selector(".field-status_badge .rs-badge")
    version = ModelVersion.objects.get()
    assert version.trigger == "admin"
    assert page.url.endswith(f"/modelversion/{version.pk}/change/")
    if page.locator("#rs-training-progress").count():
        screenshot(page, "08-train-now-in-progress")
    page.wait_for_selector(
        ".field-status_badge .rs-badge-active", timeout=TRAINING_TIMEOUT_MS
    )
    version.refresh_from_db()
    assert version.status == "active" and version.metrics.get("ndcg_at_10") is not None
    assert page.locator("#rs-metrics").inner_text().count("precision_at_10") >= 1
    screenshot(page, "09-train-now-done")
    assert len(worker_thread) == 1


def test_rule_preview_before_saving(staff_page, catalog):
    page = staff_page
    page.goto(f"{page.base_url}/admin/recommendations/businessrule/add/")
    page.select_option("#id_action", "block")
    page.select_option("#id_target", "category")
    page.click(".field-category .select2-selection")
    page.fill(".select2-search__field", "books")
    page.wait_for_selector(".select2-results__option:text-is('books')")
    page.keyboard.press("Enter")
    page.fill("#id_preview_users", "user-5")
    page.click("#rs-preview-button")
    page.wait_for_selector("#rs-rule-preview .rs-preview-user")

    before = page.locator("#rs-rule-preview ol.rs-before li").evaluate_all(
        "items => items.map(i => i.dataset.item)"
    )
    after = page.locator("#rs-rule-preview ol.rs-after li").evaluate_all(
        "items => items.map(i => i.dataset.item)"
    )
    books = {f"item-{i}" for i in range(0, 12, 2)}
    assert set(before) & books
    assert after and not set(after) & books
    assert page.locator("#rs-rule-preview li.rs-removed").count() == len(
        set(before) & books
    )
    screenshot(page, "10-rule-preview")
    assert page.url.endswith("/businessrule/add/")  # nothing saved, still on the form


def test_api_key_is_shown_once(staff_page):
    page = staff_page
    page.goto(f"{page.base_url}/admin/users/apikey/add/")
    page.fill("#id_name", "mobile app")
    page.select_option("#id_kind", "read_only")
    page.click("input[name=_save]")
    raw_key = page.locator("#rs-raw-key").inner_text().strip()
    assert raw_key.startswith("rs_")
    screenshot(page, "11-api-key-created")
    page.click("text=Back to API keys")
    assert raw_key not in page.content()
    screenshot(page, "12-api-keys")
