"""What every chat front end does alike, run once over Discord, Slack and the console.

Each driver speaks its platform through the loopback fake (or, for the console, the REPL) and
answers three questions: make a job wait, press a job's button as someone, and what that
someone was told."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any, ClassVar, Protocol

import discord
import pytest
from discord.gateway import DiscordWebSocket
from pydantic import SecretStr

from bot.app import build_service
from bot.chat.console import ConsoleChat
from bot.config import Settings
from bot.core.jobs import JobState
from bot.core.service import ImagineService
from tests.chat.running import bots
from tests.fakes.discord import FakeDiscord, FakeUser
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, Message
from tests.helpers import ledger_rows
from tests.reliability.support import until

CANCELLED = "Cancelled. Your credits were refunded."
NOT_YOURS = "Only the owner of that image or an admin can do that."
ONE_SLOT = {"segmind": {"concurrency": 1}}  # with the fake held, a second job waits


class Chat(Protocol):
    service: ImagineService

    async def waiting_job(self, owner: str) -> str: ...
    async def press(self, action: str, job_id: str, user: str) -> None: ...
    async def told(self, user: str) -> str: ...
    async def owner_told(self, job_id: str) -> str: ...


class DiscordChat:
    TOKEN = "fake-bot-token-everywhere"
    USERS: ClassVar = {"ann": FakeUser(1001, "ann"), "bob": FakeUser(1002, "bob")}

    async def start(self, stack: AsyncExitStack, settings_for: Callable[..., Settings]) -> None:
        base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        stack.callback(setattr, DiscordWebSocket, "DEFAULT_GATEWAY", gateway)
        stack.callback(setattr, discord.http.Route, "BASE", base)
        self.fake = await stack.enter_async_context(FakeDiscord(token=self.TOKEN))
        settings = settings_for(**ONE_SLOT, discord={"api_base_url": self.fake.api_base_url,
                                                     "gateway_url": self.fake.gateway_url})
        settings = settings.model_copy(update={"discord_token": SecretStr(self.TOKEN)})
        started = await stack.enter_async_context(bots())
        self.service = (await started.discord(settings)).service
        self.progress: dict[str, tuple[str, dict[str, Any]]] = {}  # job -> (token, message)
        self.presses: dict[str, str] = {}  # user -> token of their last press

    async def waiting_job(self, owner: str) -> str:
        await self.fake.slash("imagine", by=self.USERS[owner], prompt="first")
        sent = await self.fake.slash("imagine", by=self.USERS[owner], prompt="second")
        edit = await self.fake.wait_for("edit_original", token=sent.token, where=lambda c: bool(
            c.message and "imagine:cancel:" in str(c.message["components"])))
        assert edit.message is not None
        job_id = str(edit.message["components"]).split("imagine:cancel:")[1][:12]
        self.progress[job_id] = (sent.token, edit.message)
        return job_id

    async def press(self, action: str, job_id: str, user: str) -> None:
        message = self.progress[job_id][1]
        press = await self.fake.click(message, f"imagine:{action}:{job_id}", by=self.USERS[user])
        self.presses[user] = press.token

    async def told(self, user: str) -> str:
        answer = await self.fake.wait_for("callback", token=self.presses[user])
        return str(answer.payload["data"]["content"])

    async def owner_told(self, job_id: str) -> str:
        notice = await self.fake.wait_for("followup", token=self.progress[job_id][0])
        return str(notice.payload["content"])


class SlackChat:
    USERS: ClassVar = {"ann": "U0ANN", "bob": "U0BOB"}
    CHANNEL = "C0GENERAL"

    async def start(self, stack: AsyncExitStack, settings_for: Callable[..., Settings]) -> None:
        self.fake = await stack.enter_async_context(
            FakeSlack(users={uid: {"name": name} for name, uid in self.USERS.items()}))
        settings = settings_for(**ONE_SLOT, slack={"api_base_url": self.fake.base_url})
        settings = settings.model_copy(update={
            "slack_bot_token": SecretStr(BOT_TOKEN), "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_app_token": SecretStr(APP_TOKEN)})
        started = await stack.enter_async_context(bots())
        self.service = (await started.slack(settings)).service
        self.progress: dict[str, Message] = {}

    async def waiting_job(self, owner: str) -> str:
        for prompt in ("first", "second"):
            await self.fake.slash_command("/imagine", prompt, user=self.USERS[owner],
                                          channel=self.CHANNEL)
        await self.fake.wait_until(lambda: self._second() is not None)
        message = self._second()
        assert message is not None
        job_id = str(self.fake.button(message, "imagine_cancel")["value"])
        self.progress[job_id] = message
        return job_id

    def _second(self) -> Message | None:
        return next((m for m in self.fake.posted(self.CHANNEL) if "second" in m.text and any(
            e.get("action_id") == "imagine_cancel" for b in m.blocks
            for e in b.get("elements", []))), None)

    async def press(self, action: str, job_id: str, user: str) -> None:
        await self.fake.click(self.progress[job_id], f"imagine_{action}", user=self.USERS[user])

    async def told(self, user: str) -> str:
        [call] = await self.fake.wait_for("chat.postEphemeral", user=self.USERS[user])
        return str(call["text"])

    async def owner_told(self, job_id: str) -> str:
        message = self.progress[job_id]
        await self.fake.wait_until(lambda: CANCELLED in message.text)
        return message.text.splitlines()[-1]


class ConsoleChats:
    """One console per user over one service, as operators at two terminals would be."""

    async def start(self, stack: AsyncExitStack, settings_for: Callable[..., Settings]) -> None:
        self.service = await build_service(settings_for(**ONE_SLOT))
        await self.service.start()
        stack.push_async_callback(self.service.stop)
        self.outs = {name: io.StringIO() for name in ("ann", "bob")}
        self.chats = {name: ConsoleChat(self.service, out, user=name)
                      for name, out in self.outs.items()}

    async def waiting_job(self, owner: str) -> str:
        await self.chats[owner].handle("/imagine first")
        await self.chats[owner].handle("/imagine second")
        return self.chats[owner].numbers[2]

    async def press(self, action: str, job_id: str, user: str) -> None:
        await self.chats[user].handle(f"{action} {job_id}")

    async def told(self, user: str) -> str:
        return self.outs[user].getvalue().splitlines()[-1]

    async def owner_told(self, job_id: str) -> str:
        out = self.outs["ann"]
        await until(lambda: CANCELLED in out.getvalue(), 10, "the cancellation notice")
        return next(line for line in out.getvalue().splitlines() if CANCELLED in line)


@pytest.fixture(params=["discord", "slack", "console"])
async def chat(request, settings_for, fake_segmind) -> AsyncIterator[Chat]:
    """A started bot on one front end, with the fake Segmind holding every call."""
    fake_segmind.gate = asyncio.Event()
    driver = {"discord": DiscordChat, "slack": SlackChat, "console": ConsoleChats}[request.param]()
    async with AsyncExitStack() as stack:
        stack.callback(fake_segmind.gate.set)  # runs first: the held call ends, the bot stops
        await driver.start(stack, settings_for)
        yield driver


async def test_the_owner_cancels_a_waiting_job_which_is_refunded_and_never_sent(
        chat, fake_segmind):
    job_id = await chat.waiting_job("ann")

    await chat.press("cancel", job_id, "ann")

    assert (await chat.owner_told(job_id)).endswith(CANCELLED)
    assert (await chat.service.get_job(job_id)).state is JobState.CANCELLED
    assert [row["kind"] for row in await ledger_rows(chat.service, job_id)] == ["reserve", "refund"]
    assert "second" not in [body["prompt"] for body in fake_segmind.bodies()]


async def test_someone_else_cannot_cancel_a_waiting_job_and_it_keeps_waiting(chat):
    job_id = await chat.waiting_job("ann")

    await chat.press("cancel", job_id, "bob")

    assert await chat.told("bob") == NOT_YOURS
    assert (await chat.service.get_job(job_id)).state is JobState.QUEUED
    assert [row["kind"] for row in await ledger_rows(chat.service, job_id)] == ["reserve"]
