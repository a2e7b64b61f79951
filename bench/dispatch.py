"""Dispatcher benchmark: throughput against the ideal C/L, the bot's own added latency, memory.

1,000 jobs from 50 users go through ImagineService (validation, quota, SQLite, fair queue,
dispatcher, the real Segmind client over HTTP) to the fake Segmind, which runs in its own
process and answers after a fixed latency L, with backend concurrency C. Then 10,000 jobs are
queued (behind a slow backend) to measure peak memory.

"Added" time of a job = what the bot itself costs, in two parts measured separately so that
neither the wait for a free backend slot nor the backend call is counted:
  submit: imagine() called -> it returned (validation, quota reservation, the job row, queueing);
  after: a backend slot took the job (its started_at) -> the result event reached the listener, less
  the backend call as the dispatcher timed it (start the call, save the images, commit, event;
  marking the job running overlaps the call, so it counts only where it outlasts it).

For scale, the same run times one small transaction alone on an idle database (the round trip
to the database's thread), back to back and with pauses between.

Side by side in the same run, the Segmind client alone (no bot: C parallel calls in a loop)
against the same fake shows what the HTTP client and the fake cost on this machine, so the
bot's ratio can be read against both the ideal C/L and what the client alone reaches.

Usage: python bench/dispatch.py [--jobs 1000] [--users 50] [--latency 0.2] [--concurrency 8]
The last line is: throughput_ratio=X added_p50_ms=Y added_p99_ms=Z peak_rss_mb=W
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bot.app import build_service
from bot.backends.segmind import SegmindBackend
from bot.config import Settings
from bot.core.catalog import Catalog
from bot.core.jobs import Actor, JobDone, JobEvent, JobFailed, ReplyTarget
from bot.core.request import build_request
from bot.store.db import Database

KEY = "bench-key"


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The fake Segmind in a child process; returns it and its base URL."""
    here = Path(__file__).parent
    process = subprocess.Popen(
        [sys.executable, str(here / "fake_segmind_server.py"), "--latency", str(latency),
         "--api-key", KEY], stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def settings(data: Path, url: str, concurrency: int) -> Settings:
    return Settings.model_validate({
        "storage": {"path": str(data)},
        "segmind": {"base_url": url, "concurrency": concurrency, "timeout_s": 600},
        "quota": {"default_allowance": 10**9, "max_queued_per_user": 100_000},
        "segmind_api_key": KEY,
    })


async def throughput(jobs: int, users: int, latency: float, concurrency: int,
                     data: Path, url: str) -> tuple[float, float, dict[str, list[float]]]:
    """Run `jobs` jobs; returns (jobs per second, ideal, added seconds per job by part)."""
    service = await build_service(settings(data, url, concurrency))
    submit_seconds: dict[str, float] = {}
    finished: dict[str, float] = {}  # wall-clock time, as job.started_at is
    all_done = asyncio.Event()

    async def on_event(event: JobEvent) -> None:
        if isinstance(event, JobDone | JobFailed):
            finished[event.job.id] = time.time()
            if isinstance(event, JobFailed):
                print("failed:", event.message, file=sys.stderr)
            if len(finished) == jobs:
                all_done.set()

    service.listen("bench", on_event)
    await service.start()
    target = ReplyTarget(platform="bench", channel_id="c")
    start = time.time()
    for i in range(jobs):
        actor = Actor("bench", user_id=f"user{i % users}", workspace_id="w")
        t0 = time.perf_counter()
        job = await service.imagine(actor, f"a lighthouse number {i}", None, target)
        submit_seconds[job.id] = time.perf_counter() - t0
    await asyncio.wait_for(all_done.wait(), timeout=jobs * latency + 600)
    elapsed = max(finished.values()) - start
    added: dict[str, list[float]] = {"total": [], "submit": [], "after": []}
    for job_id, submit in submit_seconds.items():
        job = await service.jobs.get(job_id)
        assert job is not None and job.started_at is not None and job.backend_seconds
        after = finished[job_id] - job.started_at - job.backend_seconds
        added["submit"].append(submit)
        added["after"].append(after)
        added["total"].append(submit + after)
    await service.stop()
    return jobs / elapsed, concurrency / latency, added


async def client_alone(jobs: int, concurrency: int, url: str) -> float:
    """Jobs per second of the Segmind client by itself: C calls in flight, no bot."""
    catalog = Catalog()
    requests = [build_request(f"a lighthouse number {i}", None, catalog) for i in range(jobs)]
    async with httpx.AsyncClient() as client:
        backend = SegmindBackend(base_url=url, api_key=KEY, timeout_s=600,
                                 models=catalog.names, client=client)
        pending = iter(requests)

        async def caller() -> None:
            for request in pending:
                await backend.generate(request)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return jobs / (time.perf_counter() - start)


async def memory(queued: int, users: int, data: Path, url: str) -> float:
    """Queue `queued` jobs behind a backend that is busy for long; returns peak RSS in MB."""
    service = await build_service(settings(data, url, 1))
    await service.start()
    target = ReplyTarget(platform="bench", channel_id="c")
    for i in range(queued):
        actor = Actor("bench", user_id=f"user{i % users}", workspace_id="w")
        await service.imagine(actor, f"a lighthouse number {i}", None, target)
    await asyncio.sleep(2)  # let a few position reports run over the full queue
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await service.stop()
    return peak


async def round_trip(data: Path, pause: float, count: int = 300) -> float:
    """p50 seconds of one small transaction on an otherwise idle database, `pause` apart."""
    db = await Database(data / "round-trip.db").open()
    seconds = []
    try:
        for _ in range(count):
            await asyncio.sleep(pause)
            start = time.perf_counter()
            await db.transaction(lambda conn: conn.execute("SELECT 1").fetchone())
            seconds.append(time.perf_counter() - start)
    finally:
        await db.close()
    return statistics.median(seconds)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2, help="L, seconds")
    parser.add_argument("--concurrency", type=int, default=8, help="C")
    parser.add_argument("--queued", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fake, url = start_fake(args.latency)
    try:
        alone = await client_alone(args.jobs, args.concurrency, url)
        with tempfile.TemporaryDirectory() as tmp:
            rate, ideal, added = await throughput(args.jobs, args.users, args.latency,
                                                  args.concurrency, Path(tmp) / "a", url)
        print(f"{args.jobs} jobs, {args.users} users, L={args.latency}s, C={args.concurrency}")
        print(f"ideal C/L {ideal:.1f} jobs/s; Segmind client alone {alone:.1f} jobs/s "
              f"({alone / ideal:.3f} of ideal)")
        print(f"the bot {rate:.1f} jobs/s: {rate / ideal:.3f} of ideal, {rate / alone:.3f} of the "
              f"client alone")
        p50, p99 = (percentile(added["total"], q) * 1000 for q in (50, 99))
        print(f"added by the bot per job: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        for part, words in (("submit", "submit: validate + reserve + store + queue"),
                            ("after", "after: start the call; save + commit + deliver the event")):
            print(f"  {words}: p50 {percentile(added[part], 50) * 1000:.1f} ms, "
                  f"p99 {percentile(added[part], 99) * 1000:.1f} ms")
        with tempfile.TemporaryDirectory() as tmp:
            hops = [await round_trip(Path(tmp), pause) for pause in (0, 0.025)]
        print(f"  for scale, one transaction alone on an idle database: p50 "
              f"{hops[0] * 1000:.2f} ms back to back, {hops[1] * 1000:.2f} ms 25 ms apart")
    finally:
        fake.terminate()
    slow, slow_url = start_fake(3600)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            peak = await memory(args.queued, args.users, Path(tmp) / "b", slow_url)
        print(f"peak RSS with {args.queued} jobs queued: {peak:.0f} MB")
    finally:
        slow.terminate()
    print(f"throughput_ratio={rate / ideal:.3f} client_alone_ratio={alone / ideal:.3f} "
          f"added_p50_ms={p50:.1f} "
          f"added_p99_ms={p99:.1f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
