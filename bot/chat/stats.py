"""/stats for every front end: the text summary, the CSV, and one call that answers an admin.

Discord (/stats), Slack (/imagine-stats), the console (stats) and the command line
(imagine-bot stats) all answer through stats_answer(); only the markup of user names differs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.chat.render import format_seconds
from bot.core.service import ImagineService
from bot.core.stats import DEFAULT_SINCE, BackendStats, StatsReport, UserStats, parse_since

log = logging.getLogger(__name__)

CSV_COLUMNS = ("day", "model", "jobs", "images", "failed", "credits_charged", "credits_refunded",
               "segmind_credits_spent", "gpu_seconds")
NO_CHART = "(The chart could not be drawn; the details are in the log.)"

UserName = Callable[[UserStats], str]


def plain_name(user: UserStats) -> str:
    """'discord:123', 'cli:local': a user as plain text."""
    return f"{user.platform}:{user.user_id}"


def mention_on(platform: str, escape: Callable[[str], str] = str) -> UserName:
    """A name that is a <@id> mention for users of `platform` (both Discord and Slack write
    it so) and escaped plain text for the others."""

    def name(user: UserStats) -> str:
        if user.platform == platform and user.user_id.isalnum():
            return f"<@{user.user_id}>"
        return escape(plain_name(user))

    return name


def stats_text(report: StatsReport, name: UserName = plain_name) -> str:
    """The summary admins read: jobs, images, credits, money and budget, backends, queue
    wait, top users; one line each."""
    days = (report.until - report.since).total_seconds() / 86400
    span = f"{days:.0f} days" if days >= 2 else f"{days * 24:.0f} hours"
    lines = [
        f"Stats since {report.since:%Y-%m-%d %H:%M} UTC ({span}):",
        f"Jobs: {report.jobs} ({report.done} done, {report.failed} failed, "
        f"{report.cancelled} cancelled, {report.waiting} waiting); images: {report.images}.",
        f"Credits: {report.credits_charged} charged, {report.credits_refunded} refunded.",
        _money_line(report),
        "Backends: " + (" · ".join(_backend(b) for b in report.backends) or "no jobs yet") + ".",
        f"Queue wait: p50 {_seconds(report.wait_p50_s)}, p95 {_seconds(report.wait_p95_s)}.",
        "Top users: " + (" · ".join(
            f"{name(u)} {u.credits} credits ({u.images} images)" for u in report.top_users)
            or "nobody was charged") + ".",
    ]
    return "\n".join(lines)


def _money_line(report: StatsReport) -> str:
    estimated = round(report.money - report.money_measured, 6)
    line = (f"Money: {report.money:.4g} Segmind credits ({report.money_measured:.4g} measured, "
            f"{estimated:.4g} estimated)")
    if report.budget is not None:
        line += "; budget: " + report.budget.sentence()
    return line if line.endswith(".") else line + "."


def _backend(b: BackendStats) -> str:
    rate = f" ({b.failure_rate:.0%})" if b.failure_rate is not None else ""
    text = (f"{b.name} {b.jobs} jobs, {b.failed} failed{rate}, p50 {_seconds(b.p50_s)}, "
            f"p95 {_seconds(b.p95_s)}")
    return text + (f", GPU {b.gpu_seconds:.1f} s" if b.gpu_seconds else "")


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} s" if value < 90 else format_seconds(value)


def stats_csv(report: StatsReport) -> str:
    """The per-day, per-model numbers behind the summary and the chart, as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        writer.writerow((row.day.isoformat(), row.model, row.jobs, row.images, row.failed,
                         row.credits_charged, row.credits_refunded, f"{row.money:.6g}",
                         f"{row.gpu_seconds:.3f}"))
    return out.getvalue()


@dataclass(frozen=True)
class StatsAnswer:
    """What an admin gets back: the summary, the chart (PNG, unless it failed) and the report."""

    text: str
    chart: bytes | None
    report: StatsReport


async def stats_answer(service: ImagineService, since: str | None, *,
                       name: UserName = plain_name, chart: bool = True) -> StatsAnswer:
    """Read `since` (24h, 7d, 30d, ...; StatsInputError when it cannot be), sum the window
    and draw the chart off the event loop."""
    now = datetime.now(UTC)
    start = parse_since(since or DEFAULT_SINCE, now)
    report = await service.stats(start, now)
    text = stats_text(report, name)
    png = None
    if chart:
        from bot.chat.stats_chart import render_chart

        try:
            png = await asyncio.to_thread(render_chart, report)
        except Exception:  # the numbers are still worth having without the picture
            log.exception("drawing the stats chart failed")
            text += "\n" + NO_CHART
    return StatsAnswer(text, png, report)


async def console_stats(service: ImagineService, since: str | None) -> str:
    """The console's `stats`: the summary, and the chart saved in the data folder."""
    answer = await stats_answer(service, since)
    if answer.chart is None:
        return answer.text
    path = service.data_dir / f"stats-{answer.report.until:%Y%m%d-%H%M%S}.png"
    await asyncio.to_thread(path.write_bytes, answer.chart)
    return f"{answer.text}\nChart: {path}"
