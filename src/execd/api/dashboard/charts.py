"""Charts drawn on the server as SVG: no script, nothing to load, and a text
alternative (a <title> and an aria-label) on each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 220, 44, 22, 10


@dataclass(frozen=True)
class Bar:
    label: str  # shown under the bar where there is room, and in its tooltip
    parts: Sequence[tuple[float, str]]  # stacked values, each with its CSS class
    tip: str | None = None  # the tooltip, if not the parts' values


def bars(title: str, items: Sequence[Bar], unit: str = "", top: float | None = None) -> str:
    """A bar chart of stacked bars, left to right."""
    peak = top or max((sum(v for v, _ in b.parts) for b in items), default=0) or 1
    inner_w, inner_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = inner_w / max(len(items), 1)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = PAD_TOP + inner_h * (1 - fraction)
        out.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(peak * fraction)}{escape(unit)}</text>"
        )
    every = max(1, round(len(items) / 12))
    for i, bar in enumerate(items):
        x = PAD_LEFT + i * step + step * 0.12
        base = float(PAD_TOP + inner_h)
        total = sum(v for v, _ in bar.parts)
        tip = bar.tip or f"{bar.label}: " + ", ".join(
            f"{_number(v)}{unit} {k}" for v, k in bar.parts
        )
        out.append(f"<g><title>{escape(tip)}</title>")
        for value, kind in bar.parts:
            h = inner_h * value / peak
            base -= h
            out.append(
                f'<rect class="{escape(kind)}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{step * 0.76:.1f}" height="{h:.1f}"/>'
            )
        if total == 0:
            out.append(f'<rect class="none" x="{x:.1f}" y="{PAD_TOP + inner_h - 1}" '
                       f'width="{step * 0.76:.1f}" height="1"/>')  # fmt: skip
        out.append("</g>")
        if i % every == 0:
            out.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}">{escape(bar.label)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.2g}"
