"""`imagine-bot stats` as a real process: the summary, the chart and the CSV; bad input is one
sentence and exit status 2."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image

from tests.test_cli import cli_env, run_cli


async def test_stats_prints_the_summary_and_writes_the_chart_and_the_csv(tmp_path,
                                                                         fake_segmind):
    env = cli_env(tmp_path / "data", fake_segmind.base_url)
    status, _, err = await run_cli("imagine", "a red fox --n 2", env=env)
    assert status == 0, err
    chart, table = tmp_path / "stats.png", tmp_path / "stats.csv"

    status, out, err = await run_cli("stats", "--since", "24h", "--chart", str(chart),
                                     "--csv", str(table), env=env)

    assert status == 0, err
    assert "Jobs: 1 (1 done, 0 failed, 0 cancelled, 0 waiting); images: 2." in out
    assert "Top users: cli:local 2 credits (2 images)." in out
    with Image.open(chart) as image:
        assert (image.format, image.size) == ("PNG", (1200, 800))
    [row] = list(csv.DictReader(io.StringIO(table.read_text())))
    assert (row["model"], row["jobs"], row["images"], row["credits_charged"]) == (
        "flux-schnell", "1", "2", "2")


async def test_a_since_that_cannot_be_read_exits_2_with_one_sentence(tmp_path):
    status, out, err = await run_cli("stats", "--since", "fortnight",
                                     env=cli_env(tmp_path, None))

    assert (status, out) == (2, "")
    assert err.strip().splitlines()[-1] == ("imagine-bot: since 'fortnight' cannot be read: use 24h, 7d, 30d "
                           "(any number of h, d or w) or a date such as 2025-01-31.")


async def test_a_chart_path_that_cannot_be_written_exits_2_with_one_sentence(tmp_path):
    missing = tmp_path / "no-such-folder" / "stats.png"

    status, _, err = await run_cli("stats", "--chart", str(missing), env=cli_env(tmp_path, None))

    assert status == 2
    assert err.strip().splitlines()[-1] == (
        f"imagine-bot: cannot write the chart to {missing}: its folder does not exist or is "
        "not writable.")


@pytest.mark.parametrize(("variable", "value", "sentence"), [
    ("IMAGINE_BUDGET__LIMIT", "-5",
     "imagine-bot: Bad configuration: budget.limit: Input should be greater than or equal to 0"),
    ("IMAGINE_BUDGET__PERIOD", "fortnight",
     "imagine-bot: Bad configuration: budget.period: Input should be 'day', 'week' or 'month'"),
])
async def test_a_bad_budget_setting_exits_2_with_one_sentence(tmp_path, variable, value,
                                                              sentence):
    status, _, err = await run_cli("stats", env={**cli_env(tmp_path, None), variable: value})

    assert (status, err.strip()) == (2, sentence)
