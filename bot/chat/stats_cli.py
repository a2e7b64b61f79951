"""`imagine-bot stats [--since 7d] [--chart FILE.png] [--csv FILE]`: /stats at the shell."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.chat.stats import stats_answer, stats_csv
from bot.config import Settings
from bot.core.errors import ImagineError
from bot.core.stats import parse_since

BAD_INPUT = 2  # the exit status for a since that cannot be read or a file that cannot be written


async def run_stats(settings: Settings, since: str, chart: Path | None, csv: Path | None,
                    out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print the summary; write the chart and the CSV when asked. Returns the exit status."""
    from bot.app import build_service

    # Bad input is told before the database is opened.
    try:
        parse_since(since, datetime.now(UTC))
    except ImagineError as error:
        print(f"imagine-bot: {error.sentence()}", file=err)
        return BAD_INPUT
    for path, what in ((chart, "chart"), (csv, "CSV")):
        if path is not None and not _writable(path):
            print(f"imagine-bot: cannot write the {what} to {path}: its folder does not exist "
                  "or is not writable.", file=err)
            return BAD_INPUT
    service = await build_service(settings)
    try:
        try:
            answer = await stats_answer(service, since, chart=chart is not None)
        except ImagineError as error:
            print(f"imagine-bot: {error.sentence()}", file=err)
            return BAD_INPUT
        print(answer.text, file=out)
        written = [(chart, answer.chart, "chart"),
                   (csv, stats_csv(answer.report).encode("utf-8"), "CSV")]
        for path, data, what in written:
            if path is None or data is None:
                continue
            try:
                path.write_bytes(data)
            except OSError as error:
                print(f"imagine-bot: cannot write the {what} to {path}: "
                      f"{error.strerror or type(error).__name__}.", file=err)
                return BAD_INPUT
            print(f"{what}: {path}", file=out)
        if chart is not None and answer.chart is None:
            return 1  # the chart itself failed (the log says why); the text was printed
        return 0
    finally:
        await service.stop()


def _writable(path: Path) -> bool:
    """Whether a file can be written at `path` (an existing file there is replaced)."""
    if path.is_dir():
        return False
    folder = path.parent if str(path.parent) else Path(".")
    return folder.is_dir() and os.access(folder, os.W_OK)
