"""Hostile input through every adapter (Discord options and modal, Slack command and modal, the
console chat, the command line): each gets one clear sentence or a clean result, nothing
crashes, nothing pings anyone, the database holds only cleaned text and stays whole."""

from __future__ import annotations

import asyncio
import io
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.app import DB_NAME, build_service
from bot.chat.console import ConsoleChat
from tests.conftest import SEGMIND_KEY
from tests.fakes.discord import FakeDiscord, FakeUser
from tests.fakes.slack import FakeSlack
from tests.helpers import env_without_settings
from tests.reliability.books import rows
from tests.reliability.conftest import SLACK_MEMBER
from tests.reliability.hostile import (
    AT_BOUNDS,
    DISCORD_MENTIONS,
    HOSTILE_PROMPTS,
    LONG_PROMPT,
    PAST_BOUNDS,
    SLACK_MENTIONS,
    SQL,
    SURVIVING,
    WRONG_TYPES,
    assert_clear_sentence,
    assert_stored_clean,
    assert_tables_intact,
    discord_embed_fits,
    slack_pings,
    slack_texts,
    stored_prompts,
)
from tests.reliability.support import discord_endings, until

ROOMY = {"quota": {"default_allowance": 10_000, "max_queued_per_user": 100}}
_ids = itertools.count(6_000_000)


def someone() -> FakeUser:
    """A new Discord member (so no per-user queue limit is reached)."""
    number = next(_ids)
    return FakeUser(number, f"user{number}")


def db_of(tmp_path: Path) -> Path:
    return tmp_path / "data" / DB_NAME


# --- Discord ---------------------------------------------------------------------------------


async def discord_ask(fake: FakeDiscord, requests: list[dict[str, Any]]
                      ) -> list[tuple[FakeUser, str, dict[str, Any]]]:
    """Send /imagine with each option set (each from a new member); (who, kind, payload) each."""
    sent = []
    for options in requests:
        user = someone()
        sent.append((user, await fake.slash("imagine", by=user, **options)))
    await until(lambda: all(s.token in discord_endings(fake) for _, s in sent), 60,
                "every request answered")
    endings = discord_endings(fake)
    return [(user, *endings[s.token]) for user, s in sent]


def assert_discord_pings_nobody(fake: FakeDiscord) -> None:
    """Every message the bot sent or edited allows no mention but its requester's."""
    for captured in fake.captured:
        body = captured.payload.get("data", captured.payload) if captured.kind == "callback" \
            else captured.payload
        if not isinstance(body, dict) or not (body.get("content") or body.get("embeds")):
            continue
        mentions = body.get("allowed_mentions")
        assert mentions is not None, f"{captured.kind} without allowed_mentions: {body}"
        assert mentions.get("parse") == [], mentions
        assert not mentions.get("roles") and len(mentions.get("users", [])) <= 1, mentions


async def test_discord_hostile_prompts_make_clean_results_that_ping_nobody(
        discord_bot, fake_discord, tmp_path):
    await discord_bot(**ROOMY)
    prompts = [*HOSTILE_PROMPTS.values(), DISCORD_MENTIONS]

    answers = await discord_ask(fake_discord, [{"prompt": p} for p in prompts])

    assert [kind for _, kind, _ in answers] == ["images"] * len(prompts)
    for _, _, payload in answers:
        discord_embed_fits(payload["embeds"][0])
    assert_discord_pings_nobody(fake_discord)
    assert_stored_clean(db_of(tmp_path))
    stored = " ".join(stored_prompts(db_of(tmp_path)))
    for name, words in SURVIVING.items():
        assert all(word in stored for word in words), (name, stored)
    assert_tables_intact(db_of(tmp_path))


async def test_discord_a_ten_thousand_character_prompt_gets_a_sentence_and_costs_nothing(
        discord_bot, fake_discord, tmp_path):
    await discord_bot()

    [(_, kind, payload)] = await discord_ask(fake_discord, [{"prompt": LONG_PROMPT}])

    assert kind == "sentence" and payload["flags"] == 64
    assert payload["content"] == ("prompt of 10000 characters is not allowed: at most 2000 "
                                  "characters.")
    assert rows(db_of(tmp_path), "SELECT * FROM jobs") == []


async def test_discord_options_at_every_bound_are_accepted(discord_bot, fake_discord, tmp_path):
    await discord_bot(**ROOMY)
    options = [{"steps": 1}, {"steps": 8}, {"seed": 0}, {"seed": 2**32 - 1}, {"samples": 4},
               {"model": "chroma", "cfg": 1.0, "steps": 10},
               {"model": "kolors", "cfg": 0.0, "samples": 10}, {"aspect_ratio": "21:9"}]

    answers = await discord_ask(fake_discord, [{"prompt": "a fox", **o} for o in options])

    assert [kind for _, kind, _ in answers] == ["images"] * len(options)


@pytest.mark.parametrize(("options", "named"), [
    ({"steps": 0}, "steps"), ({"steps": 9}, "steps"), ({"steps": 151}, "steps"),
    ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"), ({"seed": 2**70}, "seed"),
    ({"samples": 0}, "samples"), ({"samples": 5}, "samples"), ({"samples": 11}, "samples"),
    ({"model": "chroma", "cfg": 0.5}, "cfg"), ({"model": "chroma", "cfg": 31.0}, "cfg"),
    ({"cfg": 5.0}, "cfg"), ({"aspect_ratio": "999:1"}, "aspect_ratio"),
    ({"model": "no-such-model"}, "model"), ({"sampler": "no-such"}, "sampler"),
    ({"scheduler": "no-such"}, "scheduler"), ({"negative_prompt": "blur"}, "negative prompt"),
    # wrong types (Discord itself never sends these; the bot must still answer in words)
    ({"seed": "abc"}, "seed"), ({"steps": "ten"}, "steps"), ({"samples": 2.5}, "samples"),
    ({"steps": True}, "steps"), ({"model": 7}, "model"), ({"aspect_ratio": 16}, "aspect_ratio"),
    ({"sampler": 3}, "sampler"), ({"model": "kolors", "negative_prompt": 5}, "negative_prompt"),
    ({"prompt": 123}, "prompt"), ({"prompt": ""}, "prompt"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
async def test_discord_options_past_a_bound_or_of_a_wrong_type_get_a_sentence_naming_them(
        discord_bot, fake_discord, tmp_path, options, named):
    bot = await discord_bot()

    [(_, kind, payload)] = await discord_ask(fake_discord, [{"prompt": "a fox", **options}])

    assert kind == "sentence" and payload["flags"] == 64
    assert_clear_sentence(payload["content"], named)
    assert rows(db_of(tmp_path), "SELECT * FROM ledger") == []
    [(_, after, _)] = await discord_ask(fake_discord, [{"prompt": "a fox"}])
    assert after == "images"  # nothing broke
    assert bot.service.dispatcher.queue_depth() == {"segmind": 0}


async def test_discord_a_number_option_that_is_not_a_number_gets_a_sentence(
        discord_bot, fake_discord):
    await discord_bot()

    user = someone()
    sent = await fake_discord.slash("imagine", by=user, prompt="a fox", cfg="x")
    await until(lambda: sent.token in discord_endings(fake_discord), 3, "an answer")


@pytest.mark.parametrize("name", ["long", *HOSTILE_PROMPTS, "mentions", "bounds", "types"])
async def test_discord_the_edit_modal_cleans_or_refuses_hostile_prompts(
        discord_bot, fake_discord, tmp_path, name):
    await discord_bot(**ROOMY)
    [(owner, _, result)] = await discord_ask(fake_discord, [{"prompt": "a fox",
                                                              "model": "kolors"}])
    job_id = next(c["custom_id"].split(":")[2] for row in result["components"]
                  for c in row["components"] if c["custom_id"].startswith("imagine:reroll:"))
    prompt = {"long": LONG_PROMPT, "mentions": DISCORD_MENTIONS, "bounds": "a fox --steps 99",
              "types": "a fox --seed many"}.get(name) or HOSTILE_PROMPTS[name]

    sent = await fake_discord.submit_modal(f"imagine:edit-modal:{job_id}",
                                           {"prompt": prompt, "negative_prompt": "\x00\u202eblur"},
                                           by=owner)
    await until(lambda: sent.token in discord_endings(fake_discord), 30, "an answer")

    kind, payload = discord_endings(fake_discord)[sent.token]
    if name in ("long", "bounds", "types"):
        assert kind == "sentence"
        assert_clear_sentence(payload["content"])
    else:
        assert kind == "images", payload
        discord_embed_fits(payload["embeds"][0])
    assert_discord_pings_nobody(fake_discord)
    assert_stored_clean(db_of(tmp_path))
    assert_tables_intact(db_of(tmp_path))


async def test_discord_admin_amounts_with_sql_and_past_bounds_get_sentences(
        discord_bot, fake_discord, tmp_path):
    await discord_bot()
    admin = FakeUser(6_999_999, "ada", permissions=(1 << 5) | (1 << 10) | (1 << 11))
    cases = [{"action": "grant", "user": someone(), "amount": "1; DROP TABLE jobs"},
             {"action": "grant", "user": someone(), "amount": "1000001"},
             {"action": "set", "user": someone(), "amount": "-5"},
             {"action": "top", "amount": "101"},
             {"action": "set-workspace", "amount": SQL}]

    for options in cases:
        sent = await fake_discord.slash("quota-admin", by=admin, **options)
        answer = await fake_discord.wait_for("callback", token=sent.token)
        assert_clear_sentence(answer.payload["data"]["content"])
    assert_tables_intact(db_of(tmp_path))
    assert rows(db_of(tmp_path), "SELECT * FROM workspace_quota") == []


# --- Slack -----------------------------------------------------------------------------------


async def slack_ask(fake: FakeSlack, text: str, user: str = SLACK_MEMBER) -> None:
    """/imagine TEXT over Socket Mode, as Slack sends it (markup escaped)."""
    await fake.slash_command("/imagine", text, user=user, channel="C0HOSTILE")


def slack_whispers(fake: FakeSlack) -> list[str]:
    return [str(a["text"]) for a in fake.calls_to("chat.postEphemeral")]


def slack_results(fake: FakeSlack) -> int:
    return len(fake.calls_to("files.completeUploadExternal"))


async def test_slack_hostile_prompts_make_clean_results_that_ping_nobody(
        slack_bot, fake_slack, tmp_path):
    await slack_bot(**ROOMY)
    prompts = [*HOSTILE_PROMPTS.values(), SLACK_MENTIONS, "&lt;!channel&gt; &amp;lt; a fox"]

    for prompt in prompts:
        await slack_ask(fake_slack, prompt)
    await until(lambda: slack_results(fake_slack) == len(prompts), 60, "every result")

    assert slack_whispers(fake_slack) == []
    for call in fake_slack.calls:
        for text in slack_texts(call.args):
            assert slack_pings(text, SLACK_MEMBER) == [], text
    assert_stored_clean(db_of(tmp_path))
    assert_tables_intact(db_of(tmp_path))


@pytest.mark.parametrize("flags", [*PAST_BOUNDS, *WRONG_TYPES])
async def test_slack_flags_past_a_bound_or_of_a_wrong_type_get_a_sentence_naming_them(
        slack_bot, fake_slack, tmp_path, flags):
    await slack_bot()

    await slack_ask(fake_slack, f"a fox {flags}")
    await until(lambda: slack_whispers(fake_slack), 10, "a sentence")

    [sentence] = slack_whispers(fake_slack)
    named = PAST_BOUNDS.get(flags) or WRONG_TYPES[flags]
    assert_clear_sentence(sentence, named)
    assert rows(db_of(tmp_path), "SELECT * FROM jobs") == []


async def test_slack_a_ten_thousand_character_command_gets_a_sentence(slack_bot, fake_slack):
    await slack_bot()

    await slack_ask(fake_slack, LONG_PROMPT)
    await until(lambda: slack_whispers(fake_slack), 10, "a sentence")

    assert slack_whispers(fake_slack) == [
        "prompt of 10000 characters is not allowed: at most 2000 characters."]


def _has_edit(message: Any) -> bool:
    """A result message (progress messages carry blocks too, but no Edit)."""
    return any(e.get("action_id") == "imagine_edit" for b in message.blocks
               for e in b.get("elements", []))


async def open_slack_editor(fake_slack: FakeSlack) -> dict[str, Any]:
    """Make one kolors result as the member, press its Edit, and return the modal shown."""
    await slack_ask(fake_slack, "a fox --model kolors")
    await until(lambda: any(_has_edit(m) for m in fake_slack.posted()), 10, "the first result")
    message = next(m for m in fake_slack.posted() if _has_edit(m))
    await fake_slack.click(message, "imagine_edit", user=SLACK_MEMBER)
    [opened] = await fake_slack.wait_for("views.open")
    return opened["view"]


@pytest.mark.parametrize("name", ["long", "mentions", "sql", "bounds"])
async def test_slack_the_edit_modal_cleans_or_refuses_hostile_prompts(
        slack_bot, fake_slack, tmp_path, name):
    await slack_bot(**ROOMY)
    view = await open_slack_editor(fake_slack)
    prompt = {"long": LONG_PROMPT, "mentions": SLACK_MENTIONS, "sql": SQL,
              "bounds": "a fox --steps 51"}[name]

    ack = await fake_slack.submit_view(view, {"prompt": prompt, "negative": "\u202e\x00blur"},
                                       user=SLACK_MEMBER)

    if name in ("long", "bounds"):
        assert ack["payload"]["response_action"] == "errors"
        assert_clear_sentence(ack["payload"]["errors"]["prompt"])
    else:
        assert "payload" not in ack
        await until(lambda: slack_results(fake_slack) == 2, 10, "the edited result")
    for call in fake_slack.calls:
        for text in slack_texts(call.args):
            assert slack_pings(text, SLACK_MEMBER) == [], text
    assert_stored_clean(db_of(tmp_path))
    assert_tables_intact(db_of(tmp_path))


async def test_slack_an_edit_modal_prompt_that_is_not_text_gets_a_sentence(slack_bot, fake_slack):
    await slack_bot(**ROOMY)
    view = await open_slack_editor(fake_slack)

    ack = await fake_slack.submit_view(view, {"prompt": 12345}, user=SLACK_MEMBER)  # type: ignore

    assert ack["payload"]["response_action"] == "errors"
    assert_clear_sentence(ack["payload"]["errors"]["prompt"], "prompt")


async def test_slack_admin_commands_with_sql_and_past_bounds_get_sentences(
        slack_bot, fake_slack, tmp_path):
    await slack_bot()
    lines = ["grant <@U0MEMBER|member> 10'; DROP TABLE ledger; --",
             "grant <@U0MEMBER> 1000001", "set <@U0MEMBER> -1", "top 0",
             "set <@U0MEMBER> 5 fortnight", "block <!channel>", "show '; DROP TABLE jobs; --"]

    for line in lines:
        await fake_slack.slash_command("/imagine-quota", line, user="U0ADMIN", channel="C0")
    await until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == len(lines), 10,
                "every answer")

    for text in slack_whispers(fake_slack):
        assert_clear_sentence(text)
        assert slack_pings(text, SLACK_MEMBER) == [], text
    assert rows(db_of(tmp_path), "SELECT * FROM quota_accounts") == []
    assert_tables_intact(db_of(tmp_path))


# --- the console chat ------------------------------------------------------------------------


@pytest.fixture
async def console(settings_for):
    """A console chat on a started service; its output in a buffer. Every prompt of a test may
    wait at once (the per-user cap is above their number), however slow the machine is."""
    service = await build_service(settings_for(quota={"max_queued_per_user": 20}))
    await service.start()
    out = io.StringIO()
    chat = ConsoleChat(service, out, user="operator")
    yield chat, out
    await service.stop()


async def test_console_hostile_prompts_are_stored_clean(console, tmp_path):
    chat, out = console

    prompts = [*HOSTILE_PROMPTS.values(), DISCORD_MENTIONS, SLACK_MENTIONS]
    assert len(prompts) <= chat.service.settings.max_queued_per_user  # none refused as a backlog
    for prompt in prompts:
        assert await chat.handle(f"/imagine {prompt}") is True
    await chat.wait_idle(30)

    assert out.getvalue().count("] done: ") == len(HOSTILE_PROMPTS) + 2
    assert_stored_clean(db_of(tmp_path))
    assert_tables_intact(db_of(tmp_path))


async def test_console_every_bound_and_wrong_type_gets_a_sentence(settings_for, tmp_path):
    from bot.app import build_service

    service = await build_service(settings_for(**ROOMY))
    await service.start()
    out = io.StringIO()
    chat = ConsoleChat(service, out, user="operator")
    try:
        for flags in AT_BOUNDS:
            await chat.handle(f"/imagine a fox {flags}")
        await chat.wait_idle(60)
        accepted = out.getvalue()
        for flags, named in {**PAST_BOUNDS, **WRONG_TYPES}.items():
            out.seek(0), out.truncate()
            await chat.handle(f"/imagine a fox {flags}")
            assert_clear_sentence(out.getvalue().strip(), named)
        out.seek(0), out.truncate()
        await chat.handle(f"/imagine {LONG_PROMPT}")
        assert_clear_sentence(out.getvalue().strip(), "prompt of 10000 characters")
        for line in ["vary 1 abc", "vary 999", "reroll '; DROP TABLE jobs; --", "edit 1",
                     "info \x00", "cancel -1", "/quota-admin grant bob lots",
                     "\u202e/imagine"]:
            out.seek(0), out.truncate()
            assert await chat.handle(line) is True
            assert_clear_sentence(out.getvalue().strip())
    finally:
        await service.stop()
    assert accepted.count("] done: ") == len(AT_BOUNDS)
    assert_stored_clean(db_of(tmp_path))
    assert_tables_intact(db_of(tmp_path))


async def test_console_an_unbalanced_quote_in_an_admin_command_gets_a_sentence(console):
    chat, out = console

    await chat.handle("/quota-admin grant 'bob 5")

    assert_clear_sentence(out.getvalue().strip(), "quot")


# --- the command line ------------------------------------------------------------------------


def cli_env(data: Path, segmind_url: str) -> dict[str, str]:
    return env_without_settings() | {
        "IMAGINE_STORAGE__PATH": str(data), "IMAGINE_CONFIG": str(data / "none.toml"),
        "IMAGINE_METRICS__PORT": "0",
        "IMAGINE_SEGMIND__BASE_URL": segmind_url, "SEGMIND_API_KEY": SEGMIND_KEY}


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_command_line_answers_hostile_arguments_with_a_sentence_and_status_1(
        fake_segmind, tmp_path):
    env = cli_env(tmp_path / "data", fake_segmind.base_url)
    cases = [(LONG_PROMPT,), ("a fox", "--seed", "abc"), ("a fox", "--steps", "1e9"),
             ("a fox", "--samples", "-1"), ("a fox", "--model", SQL),
             ("a fox", "--cfg", "nan", "--model", "chroma"), ("\u202e\u200b\x07 \x1b",)]

    results = await asyncio.gather(*(run_cli(env, "imagine", *case) for case in cases))

    for status, out, err in results:
        assert status == 1 and out == "", err
        assert_clear_sentence(err.strip().splitlines()[-1])
        assert "Traceback" not in err


async def test_the_command_line_stores_hostile_prompts_clean(fake_segmind, tmp_path):
    env = cli_env(tmp_path / "data", fake_segmind.base_url)
    prompts = [HOSTILE_PROMPTS["zero-width and right-to-left"], HOSTILE_PROMPTS["markdown"], SQL]

    results = [await run_cli(env, "imagine", prompt) for prompt in prompts]

    assert [status for status, _, _ in results] == [0] * len(prompts)
    assert_stored_clean(db_of(tmp_path))
    assert_tables_intact(db_of(tmp_path))
    assert len(rows(db_of(tmp_path), "SELECT * FROM jobs WHERE state = 'done'")) == len(prompts)
