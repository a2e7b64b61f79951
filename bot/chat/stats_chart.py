"""The /stats chart: images per day by model, and Segmind credits per day against the budget.

Drawn with matplotlib's Agg backend through its object API (no pyplot): nothing global is
touched, so charts may be drawn in worker threads, and matplotlib is imported only here, the
first time a chart is drawn.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

from bot.core.budget import BudgetStatus
from bot.core.quota import period_start
from bot.core.stats import StatsReport

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
_COLORS = {"flux-schnell": "#4C72B0", "chroma": "#DD8452", "kolors": "#55A868"}


def render_chart(report: StatsReport, *, width_px: int = WIDTH_PX,
                 height_px: int = HEIGHT_PX) -> bytes:
    """A PNG of exactly width_px x height_px: two panels sharing the days of the window."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    days = list(range(len(report.days)))
    labels = [day.strftime("%m-%d") for day in report.days]

    stacked = [0] * len(days)
    for model in report.models:
        counts = report.images_per_day(model)
        top.bar(days, counts, bottom=stacked, label=model, color=_COLORS.get(model))
        stacked = [a + b for a, b in zip(stacked, counts, strict=True)]
    top.set_title("Images per day by model")
    top.set_ylabel("images")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    if report.models:
        top.legend(loc="upper left")

    money = report.money_per_day()
    bottom.bar(days, money, color="#8172B3", label="spent that day")
    budget = report.budget
    if budget is not None:
        label: str | None = f"spent this {budget.period.value} so far"
        for segment in _periods(report.days, money, budget):  # the line restarts at each reset
            xs, ys = zip(*segment, strict=True)
            bottom.plot(xs, ys, color="#C44E52", marker="o", label=label)
            label = None
        if budget.limit > 0:
            bottom.axhline(budget.limit, color="#C44E52", linestyle="--",
                           label=f"budget per {budget.period.value} ({budget.limit:g})")
    bottom.set_title("Segmind credits per day against the budget")
    bottom.set_ylabel("Segmind credits")
    bottom.legend(loc="upper left")
    step = max(1, len(days) // 15)  # at most ~15 date labels
    bottom.set_xticks(days[::step], labels[::step], rotation=45 if len(days) > 8 else 0)
    for axes in (top, bottom):
        axes.grid(axis="y", alpha=0.3)
        axes.set_xlim(-0.6, max(len(days), 1) - 0.4)
    figure.suptitle(f"imagine-bot, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d %H:%M} UTC")
    figure.tight_layout()  # moves the panels inside the canvas; the canvas size stays
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _periods(days: tuple[date, ...], money: list[float],
             budget: BudgetStatus) -> list[list[tuple[int, float]]]:
    """(day index, spend so far in that day's budget period) per period of the window."""
    segments: list[list[tuple[int, float]]] = []
    running, current = 0.0, None
    for index, (day, spent) in enumerate(zip(days, money, strict=True)):
        start = period_start(budget.period, datetime(day.year, day.month, day.day, tzinfo=UTC))
        if start != current:
            running, current = 0.0, start
            segments.append([])
        running += spent
        segments[-1].append((index, round(running, 6)))
    return segments
