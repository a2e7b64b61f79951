"""The console's cancel, queue, history and again."""

from __future__ import annotations

import asyncio
import io

from bot.app import build_service
from bot.chat.console import ConsoleChat


class Screen(io.StringIO):
    """The console's output, with a way to wait for a line to appear."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        return written

    async def shows(self, text: str, within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while text not in self.getvalue():
                self.changed.clear()
                await self.changed.wait()


async def test_history_lists_my_jobs_and_again_runs_one_with_its_seed(service, fake_segmind):
    out = io.StringIO()
    chat = ConsoleChat(service, out, user="operator")
    await chat.handle("/imagine a red fox --seed 31")
    await chat.wait_idle(30)

    await chat.handle("history")
    [line] = [x for x in out.getvalue().splitlines() if x.startswith("1. ")]
    job_id = line.rsplit("job ", 1)[1]
    await chat.handle(f"again {job_id}")
    await chat.wait_idle(30)

    assert line.startswith("1. “a red fox” · flux-schnell · ")
    assert " · seed 31 · 1 credit · done · " in line
    assert [body["seed"] for body in fake_segmind.bodies()] == [31, 31]
    assert "[2] queued again" in out.getvalue()


async def test_cancel_of_a_waiting_job_prints_the_refund_once_and_the_queue_forgets_it(
        settings_for, fake_segmind):
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings_for(segmind={"concurrency": 1}))
    await service.start()
    out = Screen()
    chat = ConsoleChat(service, out, user="operator")
    try:
        await chat.handle("/imagine first")
        await out.shows("[1] Generating")
        await chat.handle("/imagine second")
        await chat.handle("cancel 2")
        await chat.handle("queue")
        fake_segmind.gate.set()
        await chat.wait_idle(30)
    finally:
        await service.stop(drain_s=30)

    text = out.getvalue()
    assert text.count("Cancelled. Your credits were refunded.") == 1
    queue = [x for x in text.splitlines() if x.startswith(("1. ", "2. ", "All users"))]
    assert len(queue) == 2 and "“first”" in queue[0]
    assert queue[1] == "All users: segmind: 0 waiting, 1 running."


async def test_cancel_without_a_job_number_says_how(service):
    out = io.StringIO()
    chat = ConsoleChat(service, out, user="operator")

    await chat.handle("cancel")

    assert out.getvalue() == "cancel needs a job number, as in cancel 1.\n"
