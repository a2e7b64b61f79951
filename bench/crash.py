"""Crash benchmark: kill -9 a real `python -m bot run` (Discord adapter) at four moments.

For each kill point (arriving, running, answered, uploading; see tests/reliability/crashkit.py),
N users each send one /imagine through the loopback fake Discord; the fake Segmind (latency L,
concurrency C) and the fake Discord run in this process and kill the bot from inside their
handlers at the chosen moment; the bot is started again on the same data folder; then every
request is accounted for from what the fake Discord received and what SQLite holds.

Usage: python bench/crash.py [--requests 100] [--latency 0.2] [--concurrency 4] [--points ...]
Each point prints its figures; the last line is: crash_ok=yes|no duplicates=N lost=N
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.crashkit import KILL_POINTS, crash_run


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="one per user")
    parser.add_argument("--latency", type=float, default=0.2, help="L, seconds")
    parser.add_argument("--concurrency", type=int, default=4, help="C")
    parser.add_argument("--points", nargs="*", default=list(KILL_POINTS), choices=KILL_POINTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the dead bot's sockets make aiohttp chatty
    command = "python bench/crash.py " + shlex.join(sys.argv[1:])
    print(f"$ {command}")
    all_ok, duplicates, lost = True, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for point in args.points:
            report = await crash_run(point, args.requests, Path(tmp), latency_s=args.latency,
                                     concurrency=args.concurrency,
                                     kill_after=args.requests // 2, settle_s=300)
            print("\n".join(report.lines()), flush=True)
            all_ok = all_ok and report.ok and report.duplicated_after_restart == 0
            duplicates += report.duplicates
            lost += len(report.missing) + len(report.failures_untold)
    print(f"crash_ok={'yes' if all_ok else 'no'} duplicates={duplicates} lost={lost}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
