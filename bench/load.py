"""Load benchmark: 500 users send 2,000 /imagine through the Discord adapter of a real bot process.

Three processes on loopback: this one runs the fake Discord (REST + gateway) and pushes real
INTERACTION_CREATE payloads; `python -m bot run` is the bot, unchanged (Discord adapter, SQLite,
fair queue, the Segmind client); bench/fake_segmind_server.py answers every image after a fixed
latency L. The bot runs C backend requests at once, so the most it can finish is C/L jobs/s.

Printed: how every request ended (images, a sentence, or nothing: must be 0), the time to the
deferral (Discord wants it within 3 s), jobs/s against the ideal C/L, the REST calls the bot made,
and the bot's RSS sampled every half second (first vs last, peak).

Usage: python bench/load.py [--users 500] [--requests 2000] [--latency 1.0] [--concurrency 16]
                            [--rate 40] [--invalid-every 20]
The last line is: load_ok=yes|no ratio=R lost=N rss_first_mb=A rss_last_mb=B rss_peak_mb=C
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.discord import Captured, FakeDiscord, FakeUser, SentInteraction
from tests.reliability.botproc import BotProcess, bot_env
from tests.reliability.support import until

KEY = "bench-key"
TOKEN = "load-bench-discord-token"


class CountingDiscord(FakeDiscord):
    """FakeDiscord that also tallies, per interaction token, how its request ended."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ended: dict[str, tuple[str, float]] = {}  # token -> ("images"|"sentence", at)
        self.acked: dict[str, float] = {}  # token -> when the deferral arrived
        self.kinds: Counter[str] = Counter()

    async def _capture(self, captured: Captured) -> None:
        self.kinds[captured.kind] += 1
        token = captured.token or ""
        if captured.kind == "callback":
            self.acked.setdefault(token, captured.at)
        elif captured.kind == "followup" and token not in self.ended:
            if captured.files:
                self.ended[token] = ("images", captured.at)
            elif captured.payload.get("content"):
                self.ended[token] = ("sentence", captured.at)
        captured.files = []  # keep the counts, not the bytes
        self.captured.append(captured)


@dataclass
class Sample:
    """One RSS reading of the bot process."""

    at: float
    rss_mb: float
    ended: int


@dataclass
class Run:
    """What one load run measured."""

    sent: list[SentInteraction] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    first_sent: float = 0.0
    waves: list[tuple[float, float, int]] = field(default_factory=list)  # start, last image, images
    after_wave: list[float] = field(default_factory=list)  # RSS (MB) a second after each wave
    bot_cpu_s: float = 0.0  # CPU seconds the bot process used during the waves
    own_cpu_s: float = 0.0  # and this process (the fake Discord)


def start_segmind(latency: float) -> tuple[subprocess.Popen[str], str]:
    """bench/fake_segmind_server.py in its own process; returns it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "fake_segmind_server.py"),
         "--latency", str(latency), "--api-key", KEY], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


async def sample_rss(pid: int, fake: CountingDiscord, run: Run, stop: asyncio.Event) -> None:
    """Read the bot's resident memory every half second until stopped."""
    process = psutil.Process(pid)
    while not stop.is_set():
        rss = process.memory_info().rss / 2**20
        run.samples.append(Sample(time.monotonic(), rss, len(fake.ended)))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def send_all(fake: CountingDiscord, run: Run, users: int, requests: int, rate: float,
                   invalid_every: int, first: int = 0) -> None:
    """Push requests first..first+requests at `rate` per second (0: as fast as possible)."""
    people = [FakeUser(8_000_000 + i, f"user{i}") for i in range(users)]
    start = time.monotonic()
    run.first_sent = run.first_sent or start
    for i in range(first, first + requests):
        if rate > 0:
            delay = start + (i - first) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        prompt = f"a lighthouse number {i}"
        if invalid_every and i % invalid_every == invalid_every - 1:
            prompt += " --steps 99"  # refused with a sentence, costs nothing
        run.sent.append(await fake.slash("imagine", by=people[i % users], prompt=prompt))


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method)."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=1.0, help="L, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="C")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="requests per second pushed (0: all at once)")
    parser.add_argument("--invalid-every", type=int, default=20,
                        help="every N-th request asks for 99 steps (0: none)")
    parser.add_argument("--waves", type=int, default=2,
                        help="send the requests in this many waves, each after the last ended")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after, seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    print(f"$ python bench/load.py {shlex.join(sys.argv[1:])}".rstrip(), flush=True)
    segmind, url = start_segmind(args.latency)
    run = Run()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with CountingDiscord(token=TOKEN) as fake:
                env = bot_env(Path(tmp) / "data", segmind_url=url, segmind_key=KEY, discord=fake,
                              settings={"IMAGINE_SEGMIND__CONCURRENCY": str(args.concurrency),
                                        "IMAGINE_SEGMIND__TIMEOUT_S": "120"})
                bot = BotProcess(env, Path(tmp) / "bot.log")
                await bot.start()
                assert bot.pid is not None
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(bot.pid, fake, run, stop))
                await asyncio.sleep(1.0)  # a first reading of the idle bot
                per_wave = args.requests // args.waves
                bot_process, me = psutil.Process(bot.pid), psutil.Process()
                cpu_before = (sum(bot_process.cpu_times()[:2]), sum(me.cpu_times()[:2]))
                for wave in range(args.waves):
                    started = time.monotonic()
                    await send_all(fake, run, args.users, per_wave, args.rate,
                                   args.invalid_every, first=wave * per_wave)
                    with contextlib.suppress(TimeoutError):  # counted as lost below
                        await until(lambda: len(fake.ended) >= len(run.sent), args.timeout,
                                    "every request of the wave answered")
                    images = [at for kind, at in fake.ended.values()
                              if kind == "images" and at >= started]
                    run.waves.append((started, max(images, default=started), len(images)))
                    await asyncio.sleep(1.0)
                    run.after_wave.append(psutil.Process(bot.pid).memory_info().rss / 2**20)
                run.bot_cpu_s = sum(bot_process.cpu_times()[:2]) - cpu_before[0]
                run.own_cpu_s = sum(me.cpu_times()[:2]) - cpu_before[1]
                stop.set()
                await sampler
                errors = [line for line in bot.log_text().splitlines() if " ERROR " in line]
                await bot.stop()
                return report(args, fake, run, errors)
    finally:
        segmind.terminate()


def report(args: argparse.Namespace, fake: CountingDiscord, run: Run, errors: list[str]) -> int:
    """Print the figures; 0 when nothing was lost and the ratio met 90%."""
    outcomes = Counter(fake.ended.get(s.token, ("nothing", 0.0))[0] for s in run.sent)
    acks = [fake.acked[s.token] - s.sent_at for s in run.sent if s.token in fake.acked]
    images = sum(count for _, _, count in run.waves)
    elapsed = sum(last - start for start, last, _ in run.waves) or float("inf")
    ideal = args.concurrency / args.latency
    rate = images / elapsed
    lost = outcomes["nothing"]
    print(f"{len(run.sent)} requests from {args.users} users in {args.waves} waves pushed at "
          f"{'full speed' if args.rate <= 0 else f'{args.rate:g}/s'}; L={args.latency:g}s, "
          f"C={args.concurrency}")
    print(f"ended in images {outcomes['images']}, in a sentence {outcomes['sentence']}, "
          f"in nothing {lost}")
    print(f"deferral after the interaction: p50 {percentile(acks, 50) * 1000:.0f} ms, "
          f"p99 {percentile(acks, 99) * 1000:.0f} ms, max {max(acks) * 1000:.0f} ms "
          f"(Discord's limit 3000 ms); {len(run.sent) - len(acks)} never deferred")
    for number, (start, last, count) in enumerate(run.waves, 1):
        print(f"wave {number}: {count} images in {last - start:.1f} s from its first request to its "
              f"last image = {count / (last - start):.2f} jobs/s")
    print(f"throughput {rate:.2f} jobs/s ({images} images in {elapsed:.1f} s of waves); ideal C/L "
          f"{ideal:.2f} jobs/s; ratio {rate / ideal:.3f} (target 0.9)")
    wall = sum(last - start for start, last, _ in run.waves) + len(run.waves)
    print(f"CPU: the bot {run.bot_cpu_s:.1f} s ({run.bot_cpu_s / wall:.2f} of a core, "
          f"{run.bot_cpu_s / max(1, len(run.sent)) * 1000:.1f} ms per request), the fake Discord "
          f"{run.own_cpu_s:.1f} s ({run.own_cpu_s / wall:.2f} of a core); "
          f"{psutil.cpu_count()} cores")
    print("REST calls the bot made: " + ", ".join(
        f"{kind} {count}" for kind, count in fake.kinds.most_common()))
    first, last = run.samples[0], run.samples[-1]
    peak = max(run.samples, key=lambda s: s.rss_mb)
    marks = []
    for share in (0.25, 0.5, 0.75, 1.0):
        reading = next((s for s in run.samples if s.ended >= share * len(run.sent)), last)
        marks.append(f"{int(share * 100)}% ended {reading.rss_mb:.0f} MB")
    print(f"bot RSS: first {first.rss_mb:.0f} MB (idle), last {last.rss_mb:.0f} MB, peak "
          f"{peak.rss_mb:.0f} MB at {peak.ended} ended; " + ", ".join(marks)
          + f"; {len(run.samples)} samples")
    print("bot RSS a second after each wave: "
          + ", ".join(f"wave {i} {mb:.0f} MB" for i, mb in enumerate(run.after_wave, 1)))
    print(f"bot log lines at ERROR: {len(errors)}" + (f" (first: {errors[0][:200]})"
                                                       if errors else ""))
    ok = lost == 0 and rate / ideal >= 0.9
    print(f"load_ok={'yes' if ok else 'no'} ratio={rate / ideal:.3f} lost={lost} "
          f"rss_first_mb={first.rss_mb:.0f} rss_last_mb={last.rss_mb:.0f} "
          f"rss_peak_mb={peak.rss_mb:.0f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
