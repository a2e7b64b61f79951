"""People.actor against the fake Slack: any users.info failure means "not an admin", never a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.slack._people import People
from tests.chat.slack.conftest import ADA
from tests.fakes.slack import BOT_TOKEN, FakeSlack

TEAM = "T0001"


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    """A Web API client built the way the adapter builds its own, aimed at the fake."""
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(
            token=BOT_TOKEN, base_url=slack.base_url, session=session,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=2),
                            AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )


async def test_a_workspace_admin_is_an_admin_when_users_info_answers(client: AsyncWebClient):
    actor = await People(client, []).actor(ADA, TEAM)
    assert actor.is_admin and actor.display_name == "ada"


@pytest.mark.parametrize(("status", "content_type"), [
    (405, "text/html"),         # slack_sdk leaves an empty dict in the response
    (500, "text/plain"),        # slack_sdk leaves the page, a str, in the response
    (405, "application/json"),  # a page that says it is JSON: slack_sdk keeps aiohttp's response
])
async def test_a_non_json_users_info_answer_gives_a_non_admin_actor_not_a_crash(
    slack: FakeSlack, client: AsyncWebClient, status: int, content_type: str
):
    slack.html_error("users.info", status, content_type)
    actor = await People(client, []).actor(ADA, TEAM, name="ada")
    assert not actor.is_admin
    assert (actor.user_id, actor.workspace_id, actor.display_name) == (ADA, TEAM, "ada")
    assert slack.calls_to("users.info", status=status)  # the broken answer was really served


async def test_a_slack_json_error_from_users_info_gives_a_non_admin_actor(
    slack: FakeSlack, client: AsyncWebClient
):
    slack.revoked_tokens.add(BOT_TOKEN)  # users.info answers {"ok": false, "error": "token_revoked"}
    actor = await People(client, []).actor(ADA, TEAM)
    assert not actor.is_admin and actor.display_name == ADA
    assert slack.calls_to("users.info", status=401)  # Slack really refused the call


async def test_a_failed_users_info_is_not_cached_so_the_next_request_asks_again(
    slack: FakeSlack, client: AsyncWebClient
):
    people = People(client, [])
    slack.html_error("users.info", 500)
    assert not (await people.actor(ADA, TEAM)).is_admin
    slack.html_errors.pop("users.info")
    assert (await people.actor(ADA, TEAM)).is_admin


async def test_an_admin_named_in_config_stays_an_admin_when_users_info_fails(
    slack: FakeSlack, client: AsyncWebClient
):
    slack.html_error("users.info", 405, "text/plain")
    assert (await People(client, [ADA]).actor(ADA, TEAM)).is_admin
