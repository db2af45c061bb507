"""The dashboard's chart, drawn on the server as plain SVG shapes (no script needed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Bar:
    """One day's bar in the chart's own coordinates."""

    x: float
    y: float
    width: float
    height: float
    value: int
    day: date
    weekend: bool
    today: bool


@dataclass(frozen=True)
class Series:
    """One row of bars with its scale."""

    bars: list[Bar]
    top: int  # the value at the top of the scale
    ticks: list[tuple[float, int]]  # (y, value)
    height: float


def _nice(value: int) -> int:
    for step in (1, 2, 3, 4, 5, 10, 20, 25, 50, 75, 100):
        if value <= step:
            return step
    magnitude = int(10 ** (len(str(value)) - 1))
    return -(-value // magnitude) * magnitude


def series(
    days: list[date], values: list[int], today: date, width: float = 640.0, height: float = 200.0
) -> Series:
    """Lay out one bar per day, scaled to a round maximum."""
    top = _nice(max([*values, 1]))
    slot = width / max(len(days), 1)
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = height * value / top
        bars.append(
            Bar(
                x=round(i * slot + slot * 0.15, 2),
                y=round(height - h, 2),
                width=round(slot * 0.7, 2),
                height=round(h, 2),
                value=value,
                day=day,
                weekend=day.weekday() >= 5,
                today=day == today,
            )
        )
    steps = min(4, top)  # a scale of 2 gets 0, 1, 2, not 0, 0, 1, 1, 2
    ticks = [(round(height - height * k / steps, 2), top * k // steps) for k in range(steps + 1)]
    return Series(bars, top, ticks, height)


def last_days(today: date, n: int) -> list[date]:
    """Return the *n* days ending today, oldest first."""
    return [today - timedelta(days=n - 1 - i) for i in range(n)]
