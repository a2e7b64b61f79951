"""Run tests/fakes/segmind.py's FakeSegmind as its own process (for benchmarks).

Prints its base URL on the first line of stdout, then serves until killed.
Usage: python bench/fake_segmind_server.py --latency 0.2 [--api-key KEY] [--failure-rate 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.segmind import FakeSegmind


async def serve(args: argparse.Namespace) -> None:
    """Start the fake and print its URL."""
    async with FakeSegmind(api_key=args.api_key, latency_s=args.latency, record=False,
                           credits=1e12, failure_rate=args.failure_rate) as fake:
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--failure-rate", type=float, default=0.0)
    asyncio.run(serve(parser.parse_args()))
