"""The server-side SVG charts: axes, legends, gaps, escaping, empty data."""

import xml.etree.ElementTree as ET

from recsite.admin_charts import Series, bar_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))  # well-formed XML, or this raises


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0, 0.168) == [0, 0.05, 0.1, 0.15, 0.2]
    assert nice_ticks(0, 523)[:3] == [0, 200, 400] and nice_ticks(0, 523)[-1] >= 523
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]


def test_line_chart_draws_each_series_with_a_legend_and_gaps():
    svg = line_chart(
        x_labels=["v1", "v2", "v3"],
        series=[
            Series("NDCG@10", [0.1, None, 0.2]),
            Series("coverage", [0.3, 0.4, 0.5]),
        ],
        title="Quality",
        highlight_index=2,
    )
    root = _parse(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Quality" in texts and "NDCG@10" in texts and "coverage" in texts
    assert {"v1", "v2", "v3"} <= set(texts)
    # The missing value splits NDCG's line: no polyline for it, one for coverage.
    assert len(list(root.iter(f"{SVG}polyline"))) == 1
    assert len(list(root.iter(f"{SVG}circle"))) == 5
    assert 'class="rs-highlight"' in svg


def test_labels_are_escaped():
    svg = bar_chart(labels=["<script>x</script>"], values=[3], title='a "b" & <c>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    _parse(svg)


def test_no_data_renders_a_placeholder():
    assert "No data yet" in bar_chart(labels=["a", "b"], values=[0, 0], title="t")
    assert "No data yet" in line_chart(x_labels=[], series=[], title="t")
    assert "No data yet" in line_chart(x_labels=["v1"], series=[Series("m", [None])])
