"""Section 3's estimate of the training pipeline against a bare fit."""

import pytest

from benchmarks.perf.phases import TRAIN_MAX_RATIO, train_estimate, train_section

# Two alternating runs as the training child reports them: the bare fits drew
# 122 s and 77 s, the fits inside the pipeline 115 s and 116 s.
RUNS = [
    {"pipeline_s": 134.4, "pipeline_fit_s": 114.6, "bare_fit_s": 122.3},
    {"pipeline_s": 133.2, "pipeline_fit_s": 115.5, "bare_fit_s": 76.9},
]


def test_the_estimate_pools_every_fit_and_adds_the_time_outside_the_fit():
    est = train_estimate(RUNS)
    assert est["fits"] == [76.9, 114.6, 115.5, 122.3]
    assert est["fit_s"] == pytest.approx((114.6 + 115.5) / 2)
    assert est["outside_s"] == pytest.approx(((134.4 - 114.6) + (133.2 - 115.5)) / 2)
    assert est["ratio"] == pytest.approx(1 + est["outside_s"] / est["fit_s"])


def test_a_lucky_bare_fit_does_not_decide_the_verdict():
    res = {
        "runs": RUNS,
        "pipeline_s": 133.2,
        "bare_fit_s": 76.9,  # best of each: 1.73x
        "epochs": 10,
        "status": "active",
        "peak_rss_mb": 1500.0,
        "timings": {},
    }
    section = train_section(res, 2, params={})
    assert section["met"] is True
    assert "1.16×" in section["headline"] and "1.73×" in section["headline"]


def test_a_slow_pipeline_is_still_not_met():
    runs = [
        {"pipeline_s": 160.0, "pipeline_fit_s": 100.0, "bare_fit_s": 98.0},
        {"pipeline_s": 165.0, "pipeline_fit_s": 104.0, "bare_fit_s": 101.0},
    ]
    est = train_estimate(runs)
    assert est["ratio"] > TRAIN_MAX_RATIO
    res = {
        "runs": runs,
        "pipeline_s": 160.0,
        "bare_fit_s": 98.0,
        "epochs": 10,
        "status": "active",
        "peak_rss_mb": 1.0,
        "timings": {},
    }
    assert train_section(res, 2, params={})["met"] is False


def test_without_the_pipelines_own_fit_the_best_runs_are_compared():
    runs = [{"pipeline_s": 120.0, "bare_fit_s": 100.0}]
    assert train_estimate(runs) is None
    res = {
        "runs": runs,
        "pipeline_s": 120.0,
        "bare_fit_s": 100.0,
        "epochs": 10,
        "status": "active",
        "peak_rss_mb": 1.0,
        "timings": {},
    }
    section = train_section(res, 1, params={})
    assert section["met"] is True and "1.20×" in section["headline"]
