"""Draws docs/stats-example.png, the chart in the README, from a fortnight of made-up jobs.

    .venv/bin/python docs/stats_example.py

The jobs are generated (seeded, so the picture is the same each time) and go through the same
summarize() and render_chart() that /stats uses; only the database read is skipped.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.chat.stats_chart import render_chart
from bot.core.budget import BudgetRules, BudgetStatus
from bot.core.quota import Period
from bot.core.stats import JobFacts, summarize

UNTIL = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=14)
PRICES = {"flux-schnell": 0.003, "kolors": 0.01, "chroma": 0.055}
OUT = Path(__file__).with_name("stats-example.png")


def jobs(rng: random.Random, rules: BudgetRules) -> list[JobFacts]:
    """About 40 jobs a day: flux-schnell on the worker, chroma and kolors on Segmind until the
    week's budget is used up, then on the worker too ([routing] auto)."""
    made: list[JobFacts] = []
    spent: dict[datetime, float] = {}
    for day in range(14):
        for _ in range(rng.randint(25, 55)):
            model = rng.choices(list(PRICES), weights=(6, 2, 1))[0]
            backend = "worker" if model == "flux-schnell" else "segmind"
            samples = rng.choice((1, 1, 2, 4))
            created = (SINCE + timedelta(days=day, minutes=rng.randint(0, 1439))).timestamp()
            failed = rng.random() < 0.04
            week = rules.window(datetime.fromtimestamp(created, UTC))[0]
            price = PRICES[model] * samples
            if backend == "segmind" and rules.would_pass(spent.get(week, 0.0), price):
                backend = "worker"
            money = 0.0 if backend == "worker" or failed else price
            spent[week] = spent.get(week, 0.0) + money
            made.append(JobFacts(
                created_at=created, started_at=created + 2, finished_at=created + 12,
                state="failed" if failed else "done", backend=backend, model=model,
                platform="discord", scope="discord:1", user_id=str(rng.randint(1, 9)),
                samples=samples, cost=samples, committed=not failed, refunded=failed,
                money=money, money_measured=True, backend_seconds=10.0,
                gpu_seconds=10.0 if backend == "worker" else None))
    return made


def main() -> None:
    """Write the PNG next to this file."""
    rules = BudgetRules(period=Period.WEEK, limit=3.0)
    start, resets = rules.window(UNTIL)
    facts = sorted(jobs(random.Random(7), rules), key=lambda j: j.created_at)
    spent = sum(j.money or 0 for j in facts if j.created_at >= start.timestamp())
    report = summarize(facts, SINCE, UNTIL,
                       BudgetStatus(Period.WEEK, start, resets, rules.limit, spent, 0.8))
    OUT.write_bytes(render_chart(report))
    print(OUT)


if __name__ == "__main__":
    main()
