"""`imagine-bot doctor` against the loopback fakes: each check asks the service for real."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.doctor import SLACK_BOT_SCOPES, run_doctor
from tests.conftest import SEGMIND_KEY, make_settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FakeSegmind
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, MANIFEST_SCOPES, SIGNING_SECRET, FakeSlack

DISCORD_TOKEN = "discord-doctor-token.3f9a"
SLACK_DOC = Path(__file__).resolve().parents[1] / "docs" / "slack.md"
Build = Callable[..., Settings]


@pytest.fixture
async def discord_() -> AsyncIterator[FakeDiscord]:
    """A loopback Discord that knows DISCORD_TOKEN."""
    async with FakeDiscord(token=DISCORD_TOKEN) as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A loopback Slack that knows BOT_TOKEN and APP_TOKEN."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def build(tmp_path: Path, fake_segmind: FakeSegmind, discord_: FakeDiscord,
          slack: FakeSlack) -> Build:
    """build(segmind_key=..., discord={...}, ...) -> Settings with every secret, aimed at fakes."""

    def make(segmind_key: str = SEGMIND_KEY, **sections: Any) -> Settings:
        discord = {"api_base_url": discord_.api_base_url, "gateway_url": discord_.gateway_url}
        settings = make_settings(
            tmp_path / "data", fake_segmind.base_url,
            discord={**discord, **sections.pop("discord", {})},
            slack={"api_base_url": slack.base_url, **sections.pop("slack", {})}, **sections,
        )
        return settings.model_copy(update={
            "segmind_api_key": SecretStr(segmind_key),
            "discord_token": SecretStr(DISCORD_TOKEN),
            "slack_bot_token": SecretStr(BOT_TOKEN),
            "slack_app_token": SecretStr(APP_TOKEN),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
        })

    return make


async def doctor(settings: Settings) -> tuple[int, str]:
    """Run the doctor; its exit status and what it printed."""
    out = io.StringIO()
    status = await run_doctor(settings, out=out)
    return status, out.getvalue()


def line_of(out: str, what: str) -> str:
    """The one printed line for the check `what` (e.g. "discord commands")."""
    found = [line for line in out.splitlines() if line[7:].startswith(f"{what}: ")]
    assert len(found) == 1, f"expected one {what!r} line in:\n{out}"
    return found[0]


def synced(names: list[str]) -> list[dict[str, Any]]:
    """Commands as Discord keeps them once the bot has synced them."""
    return [{"id": str(i), "name": name, "type": 1} for i, name in enumerate(names, 1)]


async def test_a_healthy_setup_passes_every_check_and_exits_0(build: Build,
                                                              discord_: FakeDiscord):
    discord_.commands[None] = synced(["imagine", "quota", "quota-admin"])
    status, out = await doctor(build())
    assert status == 0, out
    assert "[FAIL]" not in out
    for what in ("database", "backend segmind", "discord", "discord commands", "slack",
                 "slack scopes", "slack mode", "slack app token"):
        assert line_of(out, what).startswith("[ok  ]")


async def test_a_valid_discord_token_passes_and_the_registered_commands_are_counted(
    build: Build, discord_: FakeDiscord
):
    discord_.commands[None] = synced(["imagine"])
    discord_.commands[str(FakeDiscord.GUILD_ID)] = synced(["imagine", "quota"])
    status, out = await doctor(build(discord={"guild_ids": [FakeDiscord.GUILD_ID]}))
    assert status == 0, out
    assert line_of(out, "discord") == "[ok  ] discord: DISCORD_TOKEN is valid for the bot imagine"
    assert line_of(out, "discord commands") == (
        f"[ok  ] discord commands: 3 registered (global: /imagine; "
        f"server {FakeDiscord.GUILD_ID}: /imagine, /quota)")


async def test_no_registered_discord_commands_is_said_plainly_and_is_not_a_failure(build: Build):
    status, out = await doctor(build())
    assert status == 0, out
    assert line_of(out, "discord commands") == (
        "[--  ] discord commands: none registered yet; the bot registers its slash commands "
        "each time it starts")


async def test_a_revoked_discord_token_fails_naming_DISCORD_TOKEN(build: Build,
                                                                  discord_: FakeDiscord):
    discord_.revoked = True
    status, out = await doctor(build())
    assert status == 1
    assert line_of(out, "discord").startswith(
        "[FAIL] discord: DISCORD_TOKEN was rejected by Discord (HTTP 401): it was reset or is wrong")
    assert "discord commands" not in out  # nothing more to ask with a dead token


async def test_a_discord_server_the_bot_is_not_in_fails_naming_the_server(build: Build):
    status, out = await doctor(build(discord={"guild_ids": [123456789]}))
    assert status == 1
    assert "[FAIL] discord commands: Discord refused to show the commands in server 123456789 " \
           "(HTTP 403)" in out


async def test_a_revoked_slack_app_token_fails_naming_SLACK_APP_TOKEN(build: Build,
                                                                      slack: FakeSlack):
    slack.revoked_tokens.add(APP_TOKEN)
    status, out = await doctor(build())
    assert status == 1
    assert line_of(out, "slack app token").startswith(
        "[FAIL] slack app token: SLACK_APP_TOKEN was rejected by Slack (token_revoked): "
        "it was revoked or is wrong")
    assert line_of(out, "slack").startswith("[ok  ]")  # the bot token still works


async def test_a_wrong_slack_app_token_fails_naming_SLACK_APP_TOKEN(build: Build):
    settings = build().model_copy(update={"slack_app_token": SecretStr("xapp-not-this-one")})
    status, out = await doctor(settings)
    assert status == 1
    assert "SLACK_APP_TOKEN was rejected by Slack (invalid_auth)" in line_of(out, "slack app token")


async def test_a_revoked_slack_bot_token_fails_naming_SLACK_BOT_TOKEN(build: Build,
                                                                      slack: FakeSlack):
    slack.revoked_tokens.add(BOT_TOKEN)
    status, out = await doctor(build())
    assert status == 1
    assert line_of(out, "slack").startswith(
        "[FAIL] slack: SLACK_BOT_TOKEN was rejected by Slack (token_revoked)")


async def test_missing_slack_scopes_are_named(build: Build, slack: FakeSlack):
    slack.scopes = ["commands", "chat:write", "app_mentions:read", "im:history"]
    status, out = await doctor(build())
    assert status == 1
    assert line_of(out, "slack scopes").startswith(
        "[FAIL] slack scopes: the bot token lacks files:write, users:read, which the app "
        "manifest asks for")


def test_the_scopes_doctor_asks_for_are_the_bot_scopes_of_the_documented_manifest():
    manifest = SLACK_DOC.read_text(encoding="utf-8").split("oauth_config:", 1)[1]
    bot_block = manifest.split("    bot:\n", 1)[1]
    scopes = []
    for text in bot_block.splitlines():
        item = re.match(r"^      - ([\w:.]+)", text)
        if item is None:
            break
        scopes.append(item[1])
    assert tuple(scopes) == SLACK_BOT_SCOPES == MANIFEST_SCOPES


@pytest.mark.parametrize("refusal", ["wrong key", 403])
async def test_a_rejected_segmind_key_fails_naming_SEGMIND_API_KEY(
    build: Build, fake_segmind: FakeSegmind, refusal: str | int
):
    if refusal == "wrong key":
        settings = build(segmind_key="not-the-segmind-key")  # the fake answers 401
    else:
        settings = build()
        fake_segmind.fail_for(403)
    status, out = await doctor(settings)
    assert status == 1
    expected = 401 if refusal == "wrong key" else 403
    assert line_of(out, "backend segmind") == (
        f"[FAIL] backend segmind: SEGMIND_API_KEY was rejected by Segmind (HTTP {expected}): it "
        "is wrong or was revoked; copy a current key from your Segmind account.")


async def test_checking_the_segmind_key_costs_no_credits(build: Build, fake_segmind: FakeSegmind):
    before = fake_segmind.credits
    status, out = await doctor(build())
    assert status == 0, out
    assert fake_segmind.credits == before and fake_segmind.images_served == 0
    assert line_of(out, "backend segmind").startswith("[ok  ] backend segmind: SEGMIND_API_KEY accepted")


async def test_an_unreachable_worker_fails_with_its_url_and_what_to_do(build: Build):
    status, out = await doctor(build(worker={"url": "http://127.0.0.1:9"}))  # nothing there
    assert status == 1
    assert line_of(out, "backend worker") == (
        "[FAIL] backend worker: the worker at http://127.0.0.1:9 is unreachable (ConnectError): "
        "start it with `imagine-bot worker` or fix [worker] url.")


async def test_no_secret_is_printed_even_when_a_service_quotes_it(build: Build,
                                                                  discord_: FakeDiscord,
                                                                  slack: FakeSlack):
    wrong_key = "segmind-key-that-the-fake-quotes-back"  # its 401 body repeats the key it got
    discord_.revoked = True
    slack.revoked_tokens.update({BOT_TOKEN, APP_TOKEN})
    status, out = await doctor(build(segmind_key=wrong_key))
    assert status == 1
    for secret in (wrong_key, DISCORD_TOKEN, BOT_TOKEN, APP_TOKEN, SIGNING_SECRET):
        assert secret not in out
