"""Bar charts as inline SVG, rendered on the server (no script, readable by screen readers)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float


def bar_chart(title: str, bars: list[Bar], unit: str, *, width: int = 640) -> str:
    """A horizontal bar chart with a title, one labelled bar per value, and a text alternative."""
    row, label_w, top = 24, 200, 28
    height = top + row * max(len(bars), 1) + 8
    peak = max((bar.value for bar in bars), default=0.0) or 1.0
    summary = ", ".join(f"{bar.label}: {bar.value:g} {unit}" for bar in bars) or "no data"
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(title)}: {escape(summary)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-weight="bold" font-size="14">{escape(title)}</text>',
    ]
    if not bars:
        parts.append(f'<text x="0" y="{top + 16}" font-size="13">No data yet.</text>')
    for index, bar in enumerate(bars):
        y = top + index * row
        length = (width - label_w - 90) * bar.value / peak
        label, value = escape(bar.label[:30]), f"{bar.value:g} {escape(unit)}"
        parts += [
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">{label}</text>',
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
            'fill="#2563eb"/>',
            f'<text x="{label_w + length + 6:.1f}" y="{y + 15}" font-size="12">{value}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)
