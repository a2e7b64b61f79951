"""The shared /stats answer: the summary's lines, the CSV and the chart, from known jobs."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta

from PIL import Image

from bot.chat.stats import CSV_COLUMNS, mention_on, stats_csv, stats_text
from bot.chat.stats_chart import render_chart
from bot.core.budget import BudgetRules, BudgetStatus
from bot.core.quota import Period
from bot.core.stats import JobFacts, StatsReport, summarize

UNTIL = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=7)


def job(day: int, model: str = "flux-schnell", *, state: str = "done", samples: int = 1,
        user: str = "U1", platform: str = "slack", backend: str = "segmind",
        money: float = 0.01) -> JobFacts:
    """A job created `day` days before UNTIL."""
    created = (UNTIL - timedelta(days=day)).timestamp()
    return JobFacts(
        created_at=created, started_at=created + 1, finished_at=created + 3, state=state,
        backend=backend, model=model, platform=platform, scope=f"{platform}:T1", user_id=user,
        samples=samples, cost=samples, committed=state == "done", refunded=state == "failed",
        money=money if state == "done" else None, money_measured=True, backend_seconds=2.0,
        gpu_seconds=None)


def budget() -> BudgetStatus:
    start, resets = BudgetRules(period=Period.WEEK).window(UNTIL)
    return BudgetStatus(Period.WEEK, start, resets, 1.0, 0.05, 0.8)


def report(*jobs: JobFacts) -> StatsReport:
    return summarize(jobs, SINCE, UNTIL, budget())


def test_the_summary_gives_jobs_images_credits_money_backends_wait_and_top_users():
    text = stats_text(report(job(1, samples=2), job(1, "kolors"), job(2, state="failed")))

    assert text.splitlines() == [
        "Stats since 2025-03-05 12:00 UTC (7 days):",
        "Jobs: 3 (2 done, 1 failed, 0 cancelled, 0 waiting); images: 3.",
        "Credits: 3 charged, 1 refunded.",
        "Money: 0.02 Segmind credits (0.02 measured, 0 estimated); budget: 0.05 of 1 Segmind "
        "credits spent this week (5%); resets 2025-03-17 00:00 UTC.",
        "Backends: segmind 3 jobs, 1 failed (33%), p50 2.0 s, p95 2.0 s.",
        "Queue wait: p50 1.0 s, p95 1.0 s.",
        "Top users: slack:U1 3 credits (3 images).",
    ]


def test_users_of_the_asking_platform_are_mentions_and_others_escaped_text():
    name = mention_on("slack", lambda text: text.replace("<", "&lt;"))
    text = stats_text(report(job(1, user="U1"), job(1, user="<!channel>", platform="cli")), name)

    assert "<@U1> 1 credits" in text
    assert "cli:&lt;!channel> 1 credits" in text


def test_the_csv_has_one_row_per_day_and_model_with_the_reports_numbers():
    rows = list(csv.DictReader(io.StringIO(stats_csv(report(
        job(1, samples=2), job(1), job(1, "kolors"), job(3, state="failed"))))))

    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["day"], r["model"], r["jobs"], r["images"], r["failed"], r["credits_charged"],
             r["segmind_credits_spent"]) for r in rows] == [
        ("2025-03-09", "flux-schnell", "1", "0", "1", "0", "0"),
        ("2025-03-11", "flux-schnell", "2", "3", "0", "3", "0.02"),
        ("2025-03-11", "kolors", "1", "1", "0", "1", "0.01"),
    ]


def test_the_chart_is_a_png_of_1200_by_800():
    png = render_chart(report(job(1, samples=2), job(2, "kolors"), job(6, "chroma")))

    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size) == ("PNG", (1200, 800))


def test_a_window_without_jobs_still_draws_the_chart():
    with Image.open(io.BytesIO(render_chart(report()))) as image:
        assert image.size == (1200, 800)


def test_charts_drawn_in_threads_at_once_are_all_whole():
    charts: list[bytes] = []
    threads = [threading.Thread(target=lambda: charts.append(render_chart(report(job(1)))))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(charts) == 3
    for png in charts:
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (1200, 800)
