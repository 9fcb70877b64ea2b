"""Render the results of one benchmark run as docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

SECTIONS = (
    ("ingest", "1. Ingestion: `POST /api/v1/interactions/`"),
    ("extract", "2. Extraction for training"),
    ("train", "3. Training pipeline end to end"),
    ("serve", "4. Serving: `GET /api/v1/users/{id}/recommendations/`"),
    ("similar", "5. Similar items: `GET /api/v1/items/{id}/similar/`"),
    # not a target: why sections 4-5 meet their bounds or not (numbered 5a so the
    # sections' numbers that other documents cite stay as they were)
    ("floor", "5a. Serving floor: do-nothing endpoints on the same server"),
    ("memory", "6. Memory per web worker"),
    ("large", "7. Large run: 10,000,000 interactions"),
)


def fmt(value, digits: int = 1) -> str:
    """Numbers with thousands separators; None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}"
    return str(value)


def verdict(section: dict) -> str:
    """MET / NOT MET / not measured, from a section's `met`."""
    status = section.get("status")
    if status != "ok":
        return f"not measured ({status})"
    met = section.get("met")
    if met is None:
        return "measured (no pass/fail)"
    return "**MET**" if met else "**NOT MET**"


def _table(rows: list[list[str]], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _merged_lines(meta: dict) -> list[str]:
    """One line per merged run: which sections it measured, when, at what load."""
    lines = []
    for run in meta.get("merged_from") or []:
        if not isinstance(run, dict):  # reports merged before runs were summarised
            continue
        lines.append(
            f"  - measured {', '.join(run['sections']) or '—'}: `{run['command']}`, "
            f"started {run.get('started') or '?'}, kernel {run.get('kernel') or '?'}, "
            f"load average at start {run.get('loadavg_at_start') or '?'}"
        )
    return lines


def render(results: dict) -> str:
    """The whole markdown document."""
    meta = results["meta"]
    machine = meta["machine"]
    scale = meta["scale"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/run.py` — do not edit by hand; re-run the command "
        "below.",
        "Every figure stands next to a baseline measured **in the same run on the same "
        "machine** (machines are shared and noisy, so the ratios are what to compare).",
        "",
        "## Run",
        "",
        f"- Command: `{meta['command']}`"
        + (
            f" — this report combines {len(meta['merged_from'])} runs of the same "
            "scale, in this order (a section of a later run replaces the earlier "
            "one's); each section names the run that measured it"
            if meta.get("merged_from")
            else ""
        ),
        *_merged_lines(meta),
        f"- Date (UTC): {meta['started']} → {meta['finished']} "
        f"({fmt(meta.get('wall_s'))} s wall)",
        f"- Scale: {fmt(scale['users'])} users, {fmt(scale['items'])} items, "
        f"{fmt(scale['interactions'])} interactions, {scale['dim']}-dimensional model "
        f"({scale['name']})",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB RAM, kernel {machine['kernel']}, load average at "
        f"start {machine['loadavg_at_start']}",
        f"- Software: Python {machine['python']}, PostgreSQL {machine['postgres']}, "
        f"BLAS {machine['blas']} "
        f"(OPENBLAS_CORETYPE={machine['openblas_coretype'] or 'unset'}), "
        f"load generator {machine['wrk']}",
        f"- Server under test: gunicorn, {meta.get('web_workers', 2)} sync workers, "
        "DEBUG off, `OPENBLAS_NUM_THREADS=1`, its own database "
        f"`{meta['database']}` on the same PostgreSQL; load from a separate process on "
        "127.0.0.1.",
        "",
        "## Summary",
        "",
    ]
    rows = []
    for key, title in SECTIONS:
        section = results.get(key, {"status": "not run"})
        rows.append(
            [
                title.split(":")[0],
                section.get("target", ""),
                section.get("headline", "—"),
                verdict(section),
            ]
        )
    lines += [
        _table(rows, ["Target", "Goal", "Measured (vs same-run baseline)", "Verdict"]),
        "",
    ]
    setup = results.get("setup")
    if setup:
        lines += [
            "### Data set-up (not a target)",
            "",
            _table([[k, v] for k, v in setup.items()], ["step", "value"]),
            "",
        ]
    for key, title in SECTIONS:
        section = results.get(key, {"status": "not run"})
        lines += [f"## {title}", ""]
        if section.get("target"):
            lines += [f"Target: {section['target']}", ""]
        lines += [f"Verdict: {verdict(section)}", ""]
        run = section.get("run")
        if run and run.get("command") != meta["command"]:
            lines += [f"Measured by `{run['command']}` ({run['started']} UTC).", ""]
        if section.get("status") != "ok":
            reason = section.get("reason", "")
            lines += [f"Not measured: {reason or section.get('status')}", ""]
        if section.get("rows"):
            lines += [
                _table(section["rows"], section.get("columns", ["what", "value"])),
                "",
            ]
        for note in section.get("notes", []):
            lines += [f"- {note}"]
        if section.get("notes"):
            lines.append("")
        if section.get("profile"):
            lines += [
                "Profile (top of the hot path):",
                "",
                "```",
                section["profile"].rstrip(),
                "```",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict, path: Path, json_path: Path | None = None) -> None:
    """Write the markdown (and the raw results as JSON next to it if asked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
