"""Fixtures for the Slack adapter: a FakeSlack, and bots (service + adapter) pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.chat.slack import SlackAdapter
from bot.config import Settings
from bot.core.jobs import Job
from tests.chat.running import Bot as RunningBot
from tests.chat.running import bots
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, Message

ANN, BOB, ADA, OLGA = "U0ANN", "U0BOB", "U0ADA", "U0OLGA"
CHANNEL = "C0GENERAL"
USERS = {
    ANN: {"name": "ann"},
    BOB: {"name": "bob"},
    ADA: {"name": "ada", "is_admin": True},  # a workspace admin
    OLGA: {"name": "olga", "is_owner": True},  # the workspace owner
}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A loopback Slack that knows ann, bob, ada (an admin) and olga (the owner)."""
    async with FakeSlack(users=USERS) as fake:
        yield fake


@pytest.fixture
def slack_settings(settings_for: Callable[..., Settings],
                   slack: FakeSlack) -> Callable[..., Settings]:
    """slack_settings(mode="socket"|"http", slack={...}, quota={...}) -> Settings."""

    def build(mode: str = "socket", **sections: Any) -> Settings:
        extra = sections.pop("slack", {})
        settings = settings_for(slack={"api_base_url": slack.base_url, **extra}, **sections)
        secrets = {"slack_bot_token": SecretStr(BOT_TOKEN),
                   "slack_signing_secret": SecretStr(SIGNING_SECRET)}
        if mode == "socket":
            secrets["slack_app_token"] = SecretStr(APP_TOKEN)
        return settings.model_copy(update=secrets)

    return build


Bot = RunningBot[SlackAdapter]
StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_bot(slack_settings: Callable[..., Settings]) -> AsyncIterator[StartBot]:
    """start_bot(settings=None, **adapter_options) -> a started Bot, stopped after the test."""
    async with bots() as started:
        async def start(settings: Settings | None = None, **options: Any) -> Bot:
            return await started.slack(settings or slack_settings(), **options)

        yield start


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    """A bot in Socket Mode."""
    return await start_bot()


def texts(slack: FakeSlack) -> list[str]:
    """Every text the bot sent that Slack parses for markup (plain_text objects are never parsed)."""
    out: list[str] = []
    for call in slack.calls:
        for key in ("text", "initial_comment"):
            if call.args.get(key):
                out.append(str(call.args[key]))
        out.extend(_block_texts(call.args.get("blocks") or []))
    return out


def _block_texts(blocks: Any) -> list[str]:
    if isinstance(blocks, dict):
        parsed = isinstance(blocks.get("text"), str) and blocks.get("type") != "plain_text"
        found = [str(blocks["text"])] if parsed else []
        return found + [t for v in blocks.values() for t in _block_texts(v)]
    if isinstance(blocks, list):
        return [t for v in blocks for t in _block_texts(v)]
    return []


async def whisper(slack: FakeSlack, user: str, count: int = 1) -> str:
    """Wait for the count-th ephemeral message to `user` and return its text."""
    calls = await slack.wait_for("chat.postEphemeral", count, user=user)
    return str(calls[count - 1]["text"])


def results(slack: FakeSlack) -> list[Message]:
    """Posted result messages (the ones carrying buttons), oldest first."""
    return [m for m in slack.posted()
            if any(e.get("action_id") == "imagine_reroll"
                   for b in m.blocks for e in b.get("elements", []))]


async def result(slack: FakeSlack, count: int = 1) -> Message:
    """Wait for the count-th result message and return it."""
    await slack.wait_until(lambda: len(results(slack)) >= count)
    return results(slack)[count - 1]


async def job_of(bot: Bot, message: Message) -> Job:
    """The job a result message belongs to (its id rides in the buttons)."""
    return await bot.service.get_job(slack_button_value(message, "imagine_reroll"))


def slack_button_value(message: Message, action_id: str) -> str:
    """The value of a button of a posted message."""
    return str(FakeSlack.button(message, action_id)["value"])


async def job_count(bot: Bot) -> int:
    """How many jobs the database holds."""
    [row] = await bot.service.db.read("SELECT COUNT(*) FROM jobs")
    return int(row[0])


def progress_of(slack: FakeSlack, job: Job) -> Message:
    """The progress message of a job (its ts is stored as the job's message_id)."""
    assert job.target.message_id, "the job has no progress message"
    return slack.messages[job.target.message_id]
