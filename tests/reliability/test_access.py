"""Access: members are refused every admin command on Discord and Slack, a badly signed or stale
Slack request reaches nothing, the GPU worker wants its key, and no token or key ever shows up
in a log line, a chat message, a request body or the database."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import discord
import httpx
import pytest
from discord.gateway import DiscordWebSocket
from pydantic import SecretStr

from bot.app import DB_NAME, build_service
from bot.chat.discord import DiscordAdapter
from bot.chat.discord._commands import NOT_ADMIN
from bot.chat.slack import SlackAdapter
from bot.chat.slack._handlers import ADMINS_ONLY
from bot.config import Settings
from bot.core.service import ImagineService
from tests.fakes.discord import MANAGE_GUILD, MEMBER_PERMISSIONS, FakeDiscord, FakeUser
from tests.fakes.segmind import FakeSegmind
from tests.fakes.slack import FakeSlack
from tests.helpers import Recorder, actor, ledger_rows, target
from tests.reliability.books import rows
from tests.reliability.conftest import SLACK_ADMIN, SLACK_MEMBER
from tests.reliability.support import discord_endings, until

MEMBER = FakeUser(4_000_001, "member")
VICTIM = FakeUser(4_000_002, "victim")
ROLE_HOLDER = FakeUser(4_000_003, "roleholder", roles=(FakeDiscord.ROLE_ID,))
MANAGER = FakeUser(4_000_004, "manager", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)
ADMIN_OPTIONS: dict[str, dict[str, Any]] = {
    "show": {"user": VICTIM}, "set": {"user": VICTIM, "amount": "999", "period": "week"},
    "set-workspace": {"amount": "unlimited"}, "grant": {"user": VICTIM, "amount": "500"},
    "reset": {"user": VICTIM}, "block": {"user": VICTIM}, "unblock": {"user": VICTIM},
    "top": {},
}


def db_of(tmp_path: Path) -> Path:
    return tmp_path / "data" / DB_NAME


def quota_changes(db: Path) -> list[dict[str, Any]]:
    """Every row an admin command would have written."""
    return (rows(db, "SELECT * FROM workspace_quota")
            + rows(db, "SELECT * FROM ledger WHERE kind IN ('grant', 'adjust')")
            + rows(db, "SELECT * FROM quota_accounts WHERE allowance IS NOT NULL OR blocked = 1 "
                       "OR granted > 0"))


# --- admin commands --------------------------------------------------------------------------


async def discord_admin(fake: FakeDiscord, action: str, by: FakeUser) -> str:
    """Run /quota-admin ACTION as `by`; the sentence it answers."""
    sent = await fake.slash("quota-admin", by=by, action=action, **ADMIN_OPTIONS[action])
    await until(lambda: sent.token in discord_endings(fake), 10, "an answer")
    kind, payload = discord_endings(fake)[sent.token]
    assert kind == "sentence" and payload["flags"] == 64  # only the asker sees it
    return str(payload["content"])


@pytest.mark.parametrize("action", list(ADMIN_OPTIONS))
async def test_discord_a_member_is_refused_every_admin_command_and_changes_nothing(
        discord_bot, fake_discord, tmp_path, action):
    await discord_bot()

    answer = await discord_admin(fake_discord, action, MEMBER)

    assert answer == NOT_ADMIN
    assert quota_changes(db_of(tmp_path)) == []


async def test_discord_a_role_that_is_not_configured_as_admin_gives_no_rights(
        discord_bot, fake_discord, tmp_path):
    await discord_bot()

    assert await discord_admin(fake_discord, "grant", ROLE_HOLDER) == NOT_ADMIN
    assert quota_changes(db_of(tmp_path)) == []


async def test_discord_manage_server_or_a_configured_role_may_run_admin_commands(
        discord_bot, fake_discord):
    await discord_bot(discord={"admin_role_ids": [FakeDiscord.ROLE_ID]})

    assert (await discord_admin(fake_discord, "grant", MANAGER)).startswith("Granted 500")
    assert (await discord_admin(fake_discord, "grant", ROLE_HOLDER)).startswith("Granted 500")


async def test_discord_a_member_is_refused_admin_commands_in_a_direct_message(
        discord_bot, fake_discord, tmp_path):
    await discord_bot()

    sent = await fake_discord.slash("quota-admin", by=MANAGER, dm=True, action="set-workspace",
                                    amount="unlimited")  # Manage Server means nothing in a DM
    await until(lambda: sent.token in discord_endings(fake_discord), 10, "an answer")

    assert discord_endings(fake_discord)[sent.token][1]["content"] == NOT_ADMIN
    assert quota_changes(db_of(tmp_path)) == []


SLACK_LINES = {"show": "show <@U0VICTIM>", "set": "set <@U0VICTIM> 999 week",
               "set-workspace": "set-workspace unlimited", "grant": "grant <@U0VICTIM|victim> 500",
               "reset": "reset <@U0VICTIM>", "block": "block <@U0VICTIM>",
               "unblock": "unblock <@U0VICTIM>", "top": "top 5"}


@pytest.mark.parametrize("action", list(SLACK_LINES))
async def test_slack_a_member_is_refused_every_admin_command_and_changes_nothing(
        slack_bot, fake_slack, tmp_path, action):
    await slack_bot()

    await fake_slack.slash_command("/imagine-quota", SLACK_LINES[action], user=SLACK_MEMBER,
                                   channel="C0")
    [answer] = await fake_slack.wait_for("chat.postEphemeral", user=SLACK_MEMBER)

    assert answer["text"] == ADMINS_ONLY
    assert quota_changes(db_of(tmp_path)) == []


async def test_slack_an_unknown_user_gains_no_rights_when_users_info_fails(
        slack_bot, fake_slack, tmp_path):
    await slack_bot()

    await fake_slack.slash_command("/imagine-quota", "grant <@U0VICTIM> 5", user="U0STRANGER",
                                   channel="C0")
    [answer] = await fake_slack.wait_for("chat.postEphemeral", user="U0STRANGER")

    assert answer["text"] == ADMINS_ONLY
    assert quota_changes(db_of(tmp_path)) == []


async def test_slack_a_workspace_admin_may_run_admin_commands(slack_bot, fake_slack):
    await slack_bot()

    await fake_slack.slash_command("/imagine-quota", "grant <@U0VICTIM> 5", user=SLACK_ADMIN,
                                   channel="C0")
    [answer] = await fake_slack.wait_for("chat.postEphemeral", user=SLACK_ADMIN)

    assert answer["text"] == "Granted 5 one-off credits to <@U0VICTIM>."


# --- Slack request signatures ----------------------------------------------------------------


@pytest.fixture
async def http_slack(slack_bot):
    """A Slack bot in HTTP mode on a free loopback port."""
    bot = await slack_bot("http")
    assert bot.adapter.mode == "http"
    return bot


async def post_raw(url: str, body: str, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body.encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded", **headers})
        return response.status_code


def command_body(fake: FakeSlack, text: str = "a red fox") -> str:
    payload = fake.command_payload("/imagine", text, user=SLACK_MEMBER, channel="C0")
    return httpx.QueryParams(payload).__str__()


@pytest.mark.parametrize("forgery", [
    "wrong secret", "stale timestamp (a replay six minutes later)", "timestamp in the future",
    "body changed after signing", "no signature", "signature of another version",
])
async def test_slack_a_forged_or_replayed_request_is_refused_and_reaches_nothing(
        http_slack, fake_slack, tmp_path, forgery):
    body = command_body(fake_slack)
    now = int(time.time())
    headers = {
        "wrong secret": lambda: FakeSlack.sign(body, secret="not-the-secret"),
        "stale timestamp (a replay six minutes later)": lambda: FakeSlack.sign(
            body, timestamp=now - 6 * 60),
        "timestamp in the future": lambda: FakeSlack.sign(body, timestamp=now + 10 * 60),
        "body changed after signing": lambda: FakeSlack.sign(command_body(fake_slack, "other")),
        "no signature": lambda: {},
        "signature of another version": lambda: {
            **FakeSlack.sign(body), "X-Slack-Signature": "v1=" + "0" * 64},
    }[forgery]()

    status = await post_raw(http_slack.adapter.events_url, body, headers)

    assert status == 401
    assert rows(db_of(tmp_path), "SELECT * FROM jobs") == []
    assert fake_slack.calls == []  # not even users.info


async def test_slack_a_correctly_signed_request_is_served(http_slack, fake_slack, tmp_path):
    body = command_body(fake_slack)

    status = await post_raw(http_slack.adapter.events_url, body, FakeSlack.sign(body))
    await fake_slack.wait_for("files.completeUploadExternal")

    assert status == 200
    assert len(rows(db_of(tmp_path), "SELECT * FROM jobs")) == 1


async def test_slack_an_event_slack_sends_twice_is_imagined_once(http_slack, fake_slack, tmp_path):
    payload = fake_slack.mention_payload("<@UBOT> a red fox", user=SLACK_MEMBER, channel="C0")

    for _ in range(2):  # Slack retries an event it believes was missed, with the same id
        status, _ = await FakeSlack.signed_post(http_slack.adapter.events_url, payload,
                                                kind="event")
        assert status == 200
    await fake_slack.wait_for("files.completeUploadExternal")

    assert len(rows(db_of(tmp_path), "SELECT * FROM jobs")) == 1


# --- the GPU worker's API key ----------------------------------------------------------------

WORKER_KEY = "worker-key-never-shown-51f0"


@pytest.fixture(scope="module")
def worker_url() -> Iterator[str]:
    """Our worker's HTTP app with an API key and no models, on loopback (the key check comes
    before any model is looked at, so no pipeline is needed)."""
    import torch  # the worker extra is part of `make test`: missing, it is a broken install

    from bot.worker.app import create_app
    from bot.worker.pipelines import Engine
    from tests.worker.support import BackgroundServer

    engine = Engine({}, torch.device("cpu"), torch.float32)
    with BackgroundServer(create_app(engine, api_key=WORKER_KEY)) as url:
        yield url


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"x-api-key": ""}, 401), ({"x-api-key": "wrong"}, 401),
    ({"x-api-key": WORKER_KEY + "x"}, 401), ({"x-api-key": WORKER_KEY.upper()}, 401),
    ({"authorization": f"Bearer {WORKER_KEY}"}, 401), ({"x-api-key": WORKER_KEY}, 200),
])
async def test_the_worker_wants_its_exact_key_on_health(worker_url, headers, status):
    async with httpx.AsyncClient(base_url=worker_url) as client:
        response = await client.get("/health", headers=headers)

    assert response.status_code == status
    if status == 401:
        assert WORKER_KEY not in response.text


async def test_the_worker_refuses_a_generation_without_the_key_before_reading_the_body(
        worker_url):
    async with httpx.AsyncClient(base_url=worker_url) as client:
        response = await client.post("/v1/flux-schnell", content=b"not json",
                                     headers={"x-api-key": "guess"})

    assert response.status_code == 401
    assert response.json() == {
        "error": "Missing or invalid API key: send it in the x-api-key header."}


async def test_a_bot_with_the_wrong_worker_key_refunds_and_tells_the_user(
        settings_for, worker_url, caplog):
    caplog.set_level(logging.DEBUG)
    settings = settings_for(worker={"url": worker_url}, routing={"flux-schnell": "worker"})
    settings = settings.model_copy(update={"worker_api_key": SecretStr("stale-worker-key-9a")})
    service = await build_service(settings)
    await service.start()
    try:
        recorder = Recorder(service)
        job = await service.imagine(actor(), "a red fox", None, target())
        failed = await recorder.wait_final(job.id)
        balance = (await service.quota_status(actor())).balance
        ledger = [row["kind"] for row in await ledger_rows(service, job.id)]
    finally:
        await service.stop()

    assert failed.message == ("The image service is unavailable right now; an admin has been "
                              "alerted. Your credits were refunded.")
    assert balance == 50
    assert ledger == ["reserve", "refund"]
    assert "stale-worker-key-9a" not in caplog.text
    assert any("ADMIN" in r.getMessage() or "check the worker API key" in r.getMessage()
               for r in caplog.records if r.levelno >= logging.ERROR)


# --- secrets never leak ----------------------------------------------------------------------

SECRETS = {
    "SEGMIND_API_KEY": "sgm-SECRET-a1b2c3d4e5",
    "IMAGINE_WORKER_API_KEY": "wrk-SECRET-f6a7b8c9d0",
    "DISCORD_TOKEN": "dsc-SECRET-MTA5OTk5.Gx1y2z",
    "SLACK_BOT_TOKEN": "xoxb-SECRET-1111-2222-bbbb",
    "SLACK_APP_TOKEN": "xapp-SECRET-1-A0001-3333-cccc",
    "SLACK_SIGNING_SECRET": "sss-SECRET-0e1f2a3b4c",
}


def leaks(text: str | bytes) -> list[str]:
    """The names of the secrets found in `text`."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [name for name, value in SECRETS.items() if value.encode() in data]


def log_text(records: list[logging.LogRecord]) -> str:
    """Every record's message, arguments, exception and stack, as a handler could write them."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    parts = []
    for record in records:
        parts.append(formatter.format(record))
        parts.append(repr(record.args))
        parts.append(repr(record.__dict__.get("extra", "")))
    return "\n".join(parts)


async def test_no_secret_reaches_a_log_line_a_message_a_request_or_the_database(
        tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    route_base, gateway_base = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeSegmind(api_key=SECRETS["SEGMIND_API_KEY"]) as segmind, \
            FakeSegmind(api_key=SECRETS["IMAGINE_WORKER_API_KEY"],
                        health={"models": ["kolors"], "queue_depth": 0}) as worker, \
            FakeDiscord(token=SECRETS["DISCORD_TOKEN"]) as fake_discord, \
            FakeSlack(bot_token=SECRETS["SLACK_BOT_TOKEN"], app_token=SECRETS["SLACK_APP_TOKEN"],
                      users={SLACK_MEMBER: {"name": "member"}}) as fake_slack:
        environ = {**SECRETS,
                   "IMAGINE_STORAGE__PATH": str(tmp_path / "data"),
                   "IMAGINE_CONFIG": str(tmp_path / "none.toml"),
                   "IMAGINE_SEGMIND__BASE_URL": segmind.base_url,
                   "IMAGINE_SEGMIND__TIMEOUT_S": "5",
                   "IMAGINE_WORKER__URL": worker.root_url,
                   "IMAGINE_ROUTING__FLUX-SCHNELL": "segmind",
                   "IMAGINE_ROUTING__KOLORS": "worker",
                   "IMAGINE_DISPATCH__BACKOFF_BASE_S": "0.01",
                   "IMAGINE_DISCORD__API_BASE_URL": fake_discord.api_base_url,
                   "IMAGINE_DISCORD__GATEWAY_URL": fake_discord.gateway_url,
                   "IMAGINE_SLACK__API_BASE_URL": fake_slack.base_url}
        settings = Settings.load(environ=environ)
        service = await build_service(settings)
        await service.start()
        discord_adapter = DiscordAdapter(service, settings, guild_ready_timeout_s=0.05)
        slack_adapter = SlackAdapter(service, settings, update_interval_s=0.05)
        try:
            await discord_adapter.start(ready_within_s=10)
            await slack_adapter.start()
            await run_a_session(fake_discord, fake_slack, segmind, worker)
            failures = await login_failures(service, settings, fake_discord, fake_slack)
        finally:
            await service.stop()
            await discord_adapter.close()
            await slack_adapter.close()
            discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = route_base, gateway_base

        # The secrets were really in play: sent where they belong, and quoted back by the fakes.
        assert {r.headers.get("x-api-key") for r in segmind.requests} == {
            SECRETS["SEGMIND_API_KEY"]}
        assert SECRETS["IMAGINE_WORKER_API_KEY"] in {r.headers.get("x-api-key")
                                                     for r in worker.requests}
        assert caplog.text.count("invalid API key '***'") >= 2  # both 401s, scrubbed
        assert leaks(log_text(caplog.records)) == []
        assert leaks("\n".join(failures)) == []
        assert leaks(fake_bodies(fake_discord, fake_slack, segmind, worker)) == []
        assert leaks(database_dump(tmp_path / "data")) == []
    assert len(rows(tmp_path / "data" / DB_NAME, "SELECT * FROM jobs")) == 4


async def run_a_session(fake_discord: FakeDiscord, fake_slack: FakeSlack, segmind: FakeSegmind,
                        worker: FakeSegmind) -> None:
    """Two good jobs (Discord to Segmind, Slack to the worker), then both keys refused: the
    fakes' 401 answers quote the key they got back, and the bot must not pass it on."""
    ann = FakeUser(3_000_001, "ann")
    first = await fake_discord.slash("imagine", by=ann, prompt="a red fox")
    await fake_slack.slash_command("/imagine", "a blue fox --model kolors", user=SLACK_MEMBER)
    await until(lambda: first.token in discord_endings(fake_discord)
                and fake_slack.calls_to("files.completeUploadExternal"), 20, "two results")
    segmind.api_key = "rotated-segmind-key"
    worker.api_key = "rotated-worker-key"
    second = await fake_discord.slash("imagine", by=ann, prompt="a green fox")
    await fake_slack.slash_command("/imagine", "a grey fox --model kolors", user=SLACK_MEMBER)
    await until(lambda: second.token in discord_endings(fake_discord) and any(
        "refunded" in str(a.get("text")) for a in fake_slack.calls_to("chat.update")
        + fake_slack.calls_to("chat.postMessage")), 20, "both refusals told")
    assert "refunded" in discord_endings(fake_discord)[second.token][1]["content"]


async def login_failures(service: ImagineService, settings: Settings,
                         fake_discord: FakeDiscord, fake_slack: FakeSlack) -> list[str]:
    """Start each adapter once more after its token was revoked; the errors raised, as text."""
    out = []
    fake_discord.token = "revoked"
    adapter = DiscordAdapter(service, settings)
    with pytest.raises(discord.LoginFailure) as refused:
        await adapter.start(ready_within_s=5)
    await adapter.close()
    out.append(f"{refused.value!r} {refused.value}")
    fake_slack.app_token = "revoked"  # Socket Mode then retries (and logs) until stopped
    slack = SlackAdapter(service, settings, ping_interval_s=1)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slack.start(), 2)
    finally:
        await slack.close()
    return out


def fake_bodies(fake_discord: FakeDiscord, fake_slack: FakeSlack, segmind: FakeSegmind,
                worker: FakeSegmind) -> bytes:
    """Everything the bot sent the fakes, except the one header each secret belongs in."""
    parts: list[bytes] = []
    for captured in fake_discord.captured:
        parts.append(json.dumps(captured.payload).encode())
        parts.extend(f.data for f in captured.files)
        parts.append(captured.path.encode())
    for call in fake_slack.calls:
        parts.append(repr(call.args).encode())
    for upload in fake_slack.uploads.values():
        parts.append(upload.data + repr(upload).encode())
    for message in fake_slack.messages.values():
        parts.append(repr(message).encode())
    for fake in (segmind, worker):
        for request in fake.requests:
            headers = {k: v for k, v in request.headers.items() if k != "x-api-key"}
            parts.append(repr((request.path, headers, request.json)).encode())
    return b"\n".join(parts)


def database_dump(data: Path) -> bytes:
    """Every row of every table, and the raw database, WAL, shared-memory and lock files."""
    db = data / DB_NAME
    tables = [r["name"] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    dump = [repr(rows(db, f'SELECT * FROM "{table}"')).encode() for table in tables]
    for path in data.glob(f"{DB_NAME}*"):
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        dump.extend(file.read_bytes() for file in files if file.is_file())
    return b"\n".join(dump)
