"""The `examples` pack: a CSV report, as a python action.

It reads a CSV (or, without `csv_path`, makes a sample one), sums a value column per
group while reporting progress and counters, and keeps three artifacts: an HTML
report, the per-group data as CSV, and an SVG bar chart. Its result describes those
outputs and the data quality, as the tenant API's job results show them.

Define it in a project with csv_report.json (the worker needs this directory on
EXECD_ACTIONS_PATH, as `make run` sets it); README.md runs it as a job.
"""

from __future__ import annotations

import csv
import html
import random
import time
from pathlib import Path
from typing import Any

from execd.action import Context

REGIONS = ("North", "South", "East", "West", "Central")


def summarize(
    ctx: Context,
    csv_path: str | None = None,
    rows: int = 1000,
    group_by: str = "region",
    value: str = "amount",
    delay: float = 0.0,
) -> dict[str, Any]:
    ctx.progress(0, stage="Loading")
    source = Path(csv_path) if csv_path else _sample(ctx.work_dir / "input.csv", rows)
    with source.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    total = len(records)
    ctx.counters(processed=0, total=total)

    ctx.progress(5, stage="Data Processing")
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    invalid = 0
    step = max(1, total // 20)
    for number, record in enumerate(records, start=1):
        try:
            amount = float(record[value])
            group = record[group_by] or "(none)"
        except (KeyError, ValueError, TypeError):
            invalid += 1
        else:
            sums[group] = sums.get(group, 0.0) + amount
            counts[group] = counts.get(group, 0) + 1
        if number % step == 0 or number == total:
            ctx.counters(processed=number, total=total, errors=invalid)
            ctx.progress(5 + 85 * number / max(total, 1), stage="Data Processing")
            if delay:
                time.sleep(delay)
    if invalid:
        ctx.warning(f"{invalid} rows had no valid {value!r} or {group_by!r} and were skipped")

    ctx.progress(92, stage="Writing outputs")
    groups = sorted(sums)
    with ctx.artifact("summary.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([group_by, "count", f"total_{value}"])
        for group in groups:
            writer.writerow([group, counts[group], f"{sums[group]:.2f}"])
    ctx.artifact("chart.svg").write_text(_chart(groups, sums), encoding="utf-8")
    ctx.artifact("report.html").write_text(
        _report(groups, sums, counts, total, invalid, group_by, value), encoding="utf-8"
    )
    ctx.progress(100, stage="Done")
    valid = total - invalid
    return {
        "summary": {
            "recordsProcessed": total,
            "dataQualityScore": round(100 * valid / total, 1) if total else 100.0,
            "groups": len(groups),
        },
        "outputs": [
            {"path": "report.html", "title": "CSV report", "primary": True},
            {"path": "summary.csv", "title": f"Totals by {group_by}", "recordCount": len(groups)},
            {"path": "chart.svg", "title": f"Total {value} by {group_by}"},
        ],
        "qualityMetrics": {
            "dataValidation": {
                "totalRecords": total,
                "validRecords": valid,
                "invalidRecords": invalid,
            },
            "processingErrors": [],
        },
    }


def _sample(path: Path, rows: int) -> Path:
    generator = random.Random(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "region", "amount"])
        for number in range(rows):
            amount = f"{generator.uniform(5, 500):.2f}" if number % 97 else "n/a"
            writer.writerow([number, generator.choice(REGIONS), amount])
    return path


def _chart(groups: list[str], sums: dict[str, float]) -> str:
    width, bar, gap = 480, 28, 12
    height = (bar + gap) * len(groups) + gap
    top = max(sums.values(), default=1.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
    ]
    for index, group in enumerate(groups):
        y = gap + index * (bar + gap)
        length = (width - 160) * sums[group] / top
        parts.append(f'<text x="4" y="{y + 19}" font-size="13">{html.escape(group)}</text>')
        parts.append(f'<rect x="100" y="{y}" width="{length:.1f}" height="{bar}" fill="#3b7dd8"/>')
        parts.append(
            f'<text x="{104 + length:.1f}" y="{y + 19}" font-size="12">{sums[group]:.0f}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _report(
    groups: list[str],
    sums: dict[str, float],
    counts: dict[str, int],
    total: int,
    invalid: int,
    group_by: str,
    value: str,
) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(g)}</td><td>{counts[g]}</td><td>{sums[g]:.2f}</td></tr>"
        for g in groups
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>CSV report</title></head>"
        f"<body><h1>Total {html.escape(value)} by {html.escape(group_by)}</h1>"
        f"<p>{total} records, {invalid} skipped as invalid.</p>"
        f"<table><tr><th>{html.escape(group_by)}</th><th>count</th><th>total</th></tr>"
        f"{rows}</table><p><img src='chart.svg' alt='chart'></p></body></html>\n"
    )
