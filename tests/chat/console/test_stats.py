"""The console's `stats`: the summary and the chart's path; a bad since is one sentence."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bot.chat.console import ConsoleChat


async def test_stats_prints_the_summary_and_saves_the_chart(service):
    out = io.StringIO()
    chat = ConsoleChat(service, out, user="operator")
    await chat.handle("/imagine a red fox")
    await chat.wait_idle(30)

    await chat.handle("stats 24h")  # draws the chart: matplotlib's first import can be slow

    lines = out.getvalue().splitlines()
    assert "Jobs: 1 (1 done, 0 failed, 0 cancelled, 0 waiting); images: 1." in lines
    [chart] = [Path(line.removeprefix("Chart: ")) for line in lines if line.startswith("Chart: ")]
    with Image.open(chart) as image:
        assert image.size == (1200, 800)


async def test_a_since_that_cannot_be_read_is_one_sentence(service):
    out = io.StringIO()
    chat = ConsoleChat(service, out, user="operator")

    await chat.handle("stats soon")

    assert out.getvalue() == ("since 'soon' cannot be read: use 24h, 7d, 30d (any number of h, "
                              "d or w) or a date such as 2025-01-31.\n")
