"""Small inline SVG charts for the HTML report: no script, no fonts, no network.

Each function takes plain numbers and returns one `<svg>` element as text, drawn in a
fixed viewBox that the page scales to its width. Every label is escaped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP, RIGHT = 48, 28, 12, 12


def _frame(body: list[str], label: str, height: int = HEIGHT) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "middle", cls: str = "lbl") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">'
        f"{escape(text)}</text>"
    )


def _axis(top_value: float, unit: str) -> list[str]:
    base = HEIGHT - BOTTOM
    return [
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" class="axis"/>',
        _text(LEFT - 6, TOP + 8, f"{unit}{top_value:g}", "end"),
        _text(LEFT - 6, base, f"{unit}0", "end"),
    ]


def _nice(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if value <= step * factor:
            return step * factor
    return value


def stacked_bars(
    labels: Sequence[str],
    stacks: Sequence[dict[str, float]],
    colours: dict[str, str],
    *,
    label: str,
    unit: str = "",
    line: float | None = None,
    line_label: str = "",
) -> str:
    """One bar per label, stacked by key in `colours` order; `line` draws a level (a cap)."""
    top = _nice(max([sum(s.values()) for s in stacks] + [line or 0, 0]))
    plot_h = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    body = _axis(top, unit)
    every = max(1, round(len(labels) / 12))  # at most about a dozen x labels
    for index, (name, stack) in enumerate(zip(labels, stacks, strict=True)):
        x = LEFT + index * slot + slot * 0.15
        y = HEIGHT - BOTTOM
        for key, colour in colours.items():
            value = stack.get(key, 0)
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(f"{name}: {key} {value:g}")}</title></rect>'
            )
        if index % every == 0:
            body.append(_text(x + slot * 0.35, HEIGHT - BOTTOM + 16, name))
    if line is not None:
        y = HEIGHT - BOTTOM - plot_h * line / top
        body.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                    'class="cap"/>')  # fmt: skip
        body.append(_text(WIDTH - RIGHT, y - 4, line_label, "end", "cap-lbl"))
    return _frame(body, label)


def step_line(points: Sequence[tuple[float, float]], *, label: str, x_labels: tuple[str, str],
              end_x: float = 1.0) -> str:  # fmt: skip
    """A step line over x in [0, end_x] (points sorted by x), held to the right edge."""
    if not points:
        return _frame([_text(WIDTH / 2, HEIGHT / 2, "no records in this window")], label)
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = max(high - low, 1)
    low, high = max(0.0, low - span * 0.1), high + span * 0.1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP

    def xy(x: float, v: float) -> tuple[float, float]:
        return (LEFT + plot_w * x / (end_x or 1),
                HEIGHT - BOTTOM - plot_h * (v - low) / (high - low))  # fmt: skip

    corners = [xy(*points[0])]
    for (_, before), (x, value) in itertools.pairwise(points):
        corners += [xy(x, before), xy(x, value)]
    corners.append(xy(end_x, points[-1][1]))
    path = [f"{x:.1f},{y:.1f}" for x, y in corners]
    body = [
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
        'class="axis"/>',
        f'<polyline points="{" ".join(path)}" class="step"/>',
        _text(LEFT - 6, TOP + 8, f"{high:.0f}", "end"),
        _text(LEFT - 6, HEIGHT - BOTTOM, f"{low:.0f}", "end"),
        _text(LEFT, HEIGHT - BOTTOM + 16, x_labels[0], "start"),
        _text(WIDTH - RIGHT, HEIGHT - BOTTOM + 16, x_labels[1], "end"),
    ]
    for x, value in points:
        cx, cy = xy(x, value)
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" class="dot">'
                    f"<title>{value:g}</title></circle>")  # fmt: skip
    return _frame(body, label)


def timeline(spans: Sequence[tuple[float, float, str]], *, label: str,
             x_labels: tuple[str, str]) -> str:  # fmt: skip
    """Spans over [0, 1] of the window (the incidents), each with its cause as a tooltip."""
    height = 60
    plot_w = WIDTH - LEFT - RIGHT
    body = [
        f'<rect x="{LEFT}" y="16" width="{plot_w}" height="18" class="track"/>',
        _text(LEFT, 52, x_labels[0], "start"),
        _text(WIDTH - RIGHT, 52, x_labels[1], "end"),
    ]
    for start, end, cause in spans:
        x = LEFT + plot_w * max(0.0, start)
        w = max(plot_w * (min(1.0, end) - max(0.0, start)), 2)
        body.append(f'<rect x="{x:.1f}" y="16" width="{w:.1f}" height="18" class="incident">'
                    f"<title>{escape(cause)}</title></rect>")  # fmt: skip
    return _frame(body, label, height)


def meter(value: float | None) -> str:
    """A small horizontal bar for a ratio in a table cell."""
    if value is None:
        return ""
    return (
        '<svg viewBox="0 0 100 10" class="meter">'
        '<rect width="100" height="10" class="track"/>'
        f'<rect width="{100 * value:.1f}" height="10" class="fill"/></svg>'
    )
