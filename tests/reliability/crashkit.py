"""kill -9 a real `python -m bot run` (Discord adapter) at a chosen moment, start it again on the
same data folder, and account for every request: delivered once, refunded with a sentence, or
never acknowledged (and then never charged).

The fakes run in this process, so the kill fires from inside a fake's handler at the exact moment:

    arriving   the fake Discord received the N-th deferral (the interaction is acknowledged, the
               job row is not written yet: the bot is waiting for Discord's answer)
    running    the fake Segmind received its N-th request while others are in flight
    answered   the fake Segmind has just sent its N-th image (the bot has not saved it yet)
    uploading  the fake Discord received the N-th result upload (the message exists; the bot
               never hears back, so it does not know it was posted)

Used by tests/reliability/test_crash.py (few requests) and bench/crash.py (100 per kill point).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.discord import FakeDiscord, FakeUser, SentInteraction
from tests.fakes.segmind import FakeSegmind
from tests.reliability.books import DB_NAME, Books, check_books, job_targets, rows
from tests.reliability.botproc import BotProcess, bot_env

KILL_POINTS = ("arriving", "running", "answered", "uploading")
SEGMIND_KEY = "crash-segmind-key"
DISCORD_TOKEN = "crash-discord-token"


class HookedDiscord(FakeDiscord):
    """FakeDiscord that calls `after_request(request)` once it has handled (and recorded) a REST
    request, before the bot gets the answer."""

    after_request: Callable[[web.Request], None] | None = None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        response = await super()._rest(request)
        if self.after_request is not None:
            self.after_request(request)
        return response


class HookedSegmind(FakeSegmind):
    """FakeSegmind with two hooks: `on_request()` as a request arrives (in_flight counts it) and
    `after_image()` right after an image answer has been written to the socket."""

    on_request: Callable[[], None] | None = None
    after_image: Callable[[], None] | None = None

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.on_request is not None:
            self.on_request()
        response = await super()._answer(request)
        if self.after_image is not None and response.status == 200:
            await response.prepare(request)
            await response.write_eof()  # the bytes are on their way before the hook runs
            self.after_image()
        return response


def is_upload(request: web.Request) -> bool:
    """A result post: a multipart follow-up or channel message (the files ride with it)."""
    parts = request.path.strip("/").split("/")
    posting = request.method == "POST" and request.content_type.startswith("multipart/")
    followup = "webhooks" in parts and len(parts) == 5
    channel = "channels" in parts and parts[-1] == "messages"
    return posting and (followup or channel)


def is_callback(request: web.Request) -> bool:
    """An interaction callback (the bot's deferral)."""
    return request.path.endswith("/callback")


@dataclass
class Killer:
    """Kills the bot once, at the `after`-th occurrence of the kill point's moment."""

    point: str
    after: int
    bot: BotProcess
    concurrency: int
    seen: int = 0
    fired_at: float | None = None
    in_flight_at_kill: int = 0
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    _hooks: list[tuple[Any, str]] = field(default_factory=list)

    def arm(self, discord: HookedDiscord, segmind: HookedSegmind) -> None:
        """Install the hook that matches the kill point."""
        self._hooks = [(discord, "after_request"), (segmind, "on_request"),
                       (segmind, "after_image")]
        if self.point == "arriving":
            discord.after_request = lambda r: self._count(is_callback(r), segmind.in_flight)
        elif self.point == "uploading":
            discord.after_request = lambda r: self._count(is_upload(r), segmind.in_flight)
        elif self.point == "running":
            def running() -> None:
                busy = segmind.in_flight >= min(2, self.concurrency)
                self._count(True, segmind.in_flight, ready=busy)
            segmind.on_request = running
        elif self.point == "answered":
            segmind.after_image = lambda: self._count(True, segmind.in_flight)
        else:
            raise ValueError(f"unknown kill point {self.point!r}; use one of {KILL_POINTS}")

    def _count(self, match: bool, in_flight: int, *, ready: bool = True) -> None:
        if not match or self.fired_at is not None:
            return
        self.seen += 1
        if self.seen >= self.after and ready:
            self.fired_at = time.monotonic()
            self.in_flight_at_kill = in_flight
            self.bot.kill()
            self.killed.set()
            for fake, hook in self._hooks:
                setattr(fake, hook, None)  # once only; the dead bot's other answers go as usual


@dataclass
class CrashReport:
    """Where every request of one crash run ended."""

    point: str
    requests: int
    sent: int = 0  # interactions the fake pushed through the gateway
    unsent: int = 0  # pushing failed (the gateway socket died under it)
    acked: int = 0  # interactions the bot deferred
    jobs: int = 0
    done: int = 0
    failed: int = 0
    delivered_once: int = 0
    duplicates: int = 0  # extra copies of results (the at-least-once window)
    duplicated_jobs: list[str] = field(default_factory=list)
    duplicated_in_window: int = 0  # first copy from the killed bot: the at-least-once window
    duplicated_after_restart: int = 0  # every copy posted by the restarted bot
    missing: list[str] = field(default_factory=list)  # done but never posted
    failures_told: int = 0
    failures_untold: list[str] = field(default_factory=list)
    acked_without_job: int = 0  # deferred, then killed before the job row: never charged
    charged_without_job: int = 0  # must stay 0
    unacked_with_job: int = 0  # must stay 0
    backend_requests: int = 0
    regenerated: int = 0  # backend requests beyond one per job (re-run after the restart)
    in_flight_at_kill: int = 0
    killed: bool = False
    kill_at: float = 0.0  # time.monotonic() of the kill
    # time.monotonic() of the restarted bot's gateway session: it posts nothing before it, and
    # the dead bot's last posts may still be arriving after the kill instant
    restarted_at: float = 0.0
    books: Books = field(default_factory=Books)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing stuck, the books balance (duplicates are reported, not failed)."""
        return (self.killed and not self.missing and not self.failures_untold
                and self.books.balanced and not self.books.undelivered
                and self.charged_without_job == 0 and self.unacked_with_job == 0
                and self.delivered_once + len(self.duplicated_jobs) + self.failures_told
                == self.jobs)

    def lines(self) -> list[str]:
        """The report, one figure per line."""
        return [
            f"kill point {self.point}: {self.requests} requests, killed={self.killed} "
            f"({self.in_flight_at_kill} backend requests in flight), {self.seconds:.1f} s",
            f"  sent {self.sent}, not sent {self.unsent}, deferred by the bot {self.acked}, "
            f"jobs {self.jobs} (done {self.done}, failed {self.failed})",
            f"  results posted exactly once {self.delivered_once}, jobs posted twice or more "
            f"{len(self.duplicated_jobs)} ({self.duplicates} extra posts; first copy before the "
            f"restart {self.duplicated_in_window}, all copies after the restart "
            f"{self.duplicated_after_restart}), done but never posted {len(self.missing)}",
            f"  failures told with a sentence {self.failures_told}, untold "
            f"{len(self.failures_untold)}",
            f"  deferred but killed before the job row {self.acked_without_job} (never charged: "
            f"{self.charged_without_job == 0}); jobs without a deferral {self.unacked_with_job}",
            f"  backend requests {self.backend_requests}, re-generated after the restart "
            f"{self.regenerated}",
            f"  books: balanced={self.books.balanced}, unfinished {len(self.books.unfinished)}, "
            f"undelivered {len(self.books.undelivered)}, unbalanced {len(self.books.unbalanced)}",
        ]


async def crash_run(point: str, requests: int, tmp: Path, *, latency_s: float = 0.2,
                    concurrency: int = 4, kill_after: int | None = None,
                    gap_s: float = 0.02, settle_s: float = 120.0) -> CrashReport:
    """Send `requests` /imagine from as many users, kill the bot at `point`, restart, account."""
    started = time.monotonic()
    data = tmp / f"data-{point}"
    report = CrashReport(point, requests)
    async with HookedSegmind(api_key=SEGMIND_KEY, latency_s=latency_s, credits=1e9) as segmind, \
            HookedDiscord(token=DISCORD_TOKEN) as discord:
        env = bot_env(data, segmind_url=segmind.base_url, segmind_key=SEGMIND_KEY,
                      discord=discord, settings={"IMAGINE_SEGMIND__CONCURRENCY": str(concurrency)})
        bot = BotProcess(env, tmp / f"bot-{point}.log")
        killer = Killer(point, kill_after or max(1, requests * 2 // 5), bot, concurrency)
        killer.arm(discord, segmind)
        await bot.start()
        restarter = asyncio.create_task(_restart_after_kill(bot, killer))
        sent: list[SentInteraction] = []
        users = [FakeUser(7_000_000 + i, f"user{i}") for i in range(requests)]
        try:
            for i, user in enumerate(users):
                await bot.ready.wait()
                try:
                    sent.append(await discord.slash("imagine", by=user,
                                                    prompt=f"crash test {i} --seed {i}"))
                except Exception:  # the gateway socket died under the push: never reached the bot
                    report.unsent += 1
                await asyncio.sleep(gap_s)
            if not killer.killed.is_set():  # a late kill point: wait for it
                await asyncio.wait_for(killer.killed.wait(), settle_s)
            await restarter
            await _settle(data / DB_NAME, discord, sent, settle_s)
        finally:
            restarter.cancel()
            await bot.stop()
        report.killed = killer.killed.is_set()
        report.kill_at = killer.fired_at or 0.0
        report.restarted_at = min((t for t in discord.sessions_at if t > report.kill_at),
                                  default=float("inf"))
        report.in_flight_at_kill = killer.in_flight_at_kill
        report.backend_requests = len(segmind.requests)
        account(report, discord, sent, data / DB_NAME)
    report.seconds = time.monotonic() - started
    return report


async def _restart_after_kill(bot: BotProcess, killer: Killer) -> None:
    await killer.killed.wait()
    await bot.wait_exit()
    await bot.start()


async def _settle(db: Path, discord: FakeDiscord, sent: list[SentInteraction],
                  within_s: float) -> None:
    """Wait until no job is unfinished or undelivered and the captures stop changing."""
    deadline = time.monotonic() + within_s
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        open_jobs = rows(db, "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running') "
                             "OR delivered = 0")[0]["n"]
        if len(discord.captured) != last:
            last, quiet_since = len(discord.captured), time.monotonic()
        if open_jobs == 0 and time.monotonic() - quiet_since > 1.0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"jobs still open after {within_s:g} s")


def account(report: CrashReport, discord: FakeDiscord, sent: list[SentInteraction],
            db: Path) -> None:
    """Fill the report from what the fake Discord captured and what the database holds."""
    jobs = job_targets(db)
    report.books = check_books(db)
    report.sent = len(sent)
    acked = {c.token for c in discord.requests("callback")}
    report.acked = sum(1 for s in sent if s.token in acked)
    report.jobs = len(jobs)
    report.done = sum(1 for j in jobs.values() if j["state"] == "done")
    report.failed = report.jobs - report.done
    by_token = {j["target"]["adapter_state"].get("interaction_token"): j for j in jobs.values()}
    by_user = {j["user_id"]: j for j in jobs.values()}
    report.acked_without_job = sum(1 for s in sent if s.token in acked and s.token not in by_token)
    report.unacked_with_job = sum(1 for s in sent if s.token not in acked and s.token in by_token)
    charged = {r["user_id"] for r in rows(db, "SELECT user_id FROM ledger WHERE kind = 'reserve'")}
    report.charged_without_job = len(charged - set(by_user))
    posts: Counter[str] = Counter()
    first_post: dict[str, float] = {}
    told: set[str] = set()
    for captured in discord.captured:
        if captured.kind not in ("followup", "channel_message") or captured.message is None:
            continue
        job_id = result_job_id(captured.payload)
        if job_id is not None and captured.files:
            posts[job_id] += 1
            first_post[job_id] = min(first_post.get(job_id, captured.at), captured.at)
            continue
        content = str(captured.payload.get("content") or "")
        job = by_token.get(captured.token) if captured.kind == "followup" else None
        if job is None and content.startswith("<@"):
            job = by_user.get(content[2:].split(">", 1)[0])
        if job is not None and "refunded" in content:
            told.add(job["id"])
    for job in jobs.values():
        if job["state"] == "done":
            count = posts.get(job["id"], 0)
            if count == 0:
                report.missing.append(job["id"])
            elif count == 1:
                report.delivered_once += 1
            else:
                report.duplicated_jobs.append(job["id"])
                report.duplicates += count - 1
                if first_post[job["id"]] < report.restarted_at:
                    report.duplicated_in_window += 1
                else:
                    report.duplicated_after_restart += 1
        elif job["id"] in told:
            report.failures_told += 1
        else:
            report.failures_untold.append(job["id"])
    report.regenerated = max(0, report.backend_requests - report.jobs)


def result_job_id(payload: dict[str, Any]) -> str | None:
    """The job id a result message carries in its Reroll button, if it is a result."""
    for row in payload.get("components") or []:
        for component in row.get("components", []):
            parts = str(component.get("custom_id", "")).split(":")
            if parts[:2] == ["imagine", "reroll"]:
                return parts[2]
    return None
