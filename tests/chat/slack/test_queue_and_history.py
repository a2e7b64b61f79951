"""Slack: Cancel on a waiting job's progress message, /imagine-queue and /imagine-history."""

from __future__ import annotations

import asyncio
import json

from bot.core.jobs import Actor, JobAction
from tests.chat.slack.conftest import ANN, CHANNEL, job_of, result, whisper
from tests.fakes.slack import FakeSlack, Message


def _buttons(message: Message) -> list[str]:
    return [e["action_id"] for b in message.blocks for e in b.get("elements", [])
            if e.get("type") == "button"]


async def _waiting(slack: FakeSlack, fake_segmind) -> Message:
    """Ann's second job waits behind her first (held at the fake Segmind): its progress message."""
    fake_segmind.gate = asyncio.Event()
    await slack.slash_command("/imagine", "first", user=ANN, channel=CHANNEL)
    await slack.slash_command("/imagine", "second", user=ANN, channel=CHANNEL)
    await slack.wait_until(lambda: any("second" in m.text and "imagine_cancel" in _buttons(m)
                                       for m in slack.posted(CHANNEL)))
    return next(m for m in slack.posted(CHANNEL) if "second" in m.text)


async def test_a_waiting_jobs_progress_message_has_a_cancel_button(
        start_bot, slack_settings, slack, fake_segmind):
    await start_bot(slack_settings(segmind={"concurrency": 1}))

    progress = await _waiting(slack, fake_segmind)

    assert _buttons(progress) == ["imagine_cancel"]


async def test_the_queue_command_lists_my_jobs_with_their_place(
        start_bot, slack_settings, slack, fake_segmind):
    await start_bot(slack_settings(segmind={"concurrency": 1}))
    await _waiting(slack, fake_segmind)

    await slack.slash_command("/imagine-queue", "", user=ANN, channel=CHANNEL)
    text = await whisper(slack, ANN)

    lines = text.splitlines()
    assert lines[0].startswith("1. generating now: “first”")
    assert lines[1].startswith("2. place 1, about ")
    assert lines[-1] == "All users: segmind: 1 waiting, 1 running."


async def test_history_lists_my_last_jobs_and_run_again_repeats_one_with_its_seed(bot, slack):
    await slack.slash_command("/imagine", "a red fox --seed 77", user=ANN, channel=CHANNEL)
    first = await job_of(bot, await result(slack))

    await slack.slash_command("/imagine-history", "", user=ANN, channel=CHANNEL)
    [call] = await slack.wait_for("chat.postEphemeral", user=ANN)
    blocks = call["blocks"] if isinstance(call["blocks"], list) else json.loads(call["blocks"])
    listing = Message(channel=CHANNEL, ts="1.000001", text=call["text"], blocks=blocks)
    assert call["text"].startswith("1. “a red fox” · flux-schnell")
    await slack.click(listing, f"imagine_again_{first.id}", user=ANN)
    again = await job_of(bot, await result(slack, 2))

    assert again.action is JobAction.AGAIN and again.parent_id == first.id
    assert again.request.seed == 77 and again.request.prompt == "a red fox"
    status = await bot.service.quota_status(Actor("slack", ANN, "T0001"))
    assert status.balance == 50 - first.cost - again.cost
