"""/imagine-stats [24h|7d|30d|...] for workspace admins: the summary, only to them; the chart
goes to [slack] admin_channel (Slack cannot show a file to one person alone)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.slack._format import escape, is_user_id, to_plain
from bot.chat.slack._people import People
from bot.chat.stats import plain_name, stats_answer
from bot.core.errors import ImagineError
from bot.core.service import ImagineService
from bot.core.stats import UserStats

log = logging.getLogger(__name__)

COMMAND = "/imagine-stats"
ADMINS_ONLY = "Only Slack workspace admins can see /imagine-stats."
OOPS = "Something went wrong on our side; please try again in a moment."
NO_CHANNEL = "(Set [slack] admin_channel to get the chart posted there.)"


class StatsCommand:
    """The /imagine-stats listener; acks at once, answers with an ephemeral message."""

    def __init__(self, service: ImagineService, client: AsyncWebClient, people: People,
                 admin_channel: str) -> None:
        self.service = service
        self.client = client
        self.people = people
        self.admin_channel = admin_channel

    def register(self, app: AsyncApp) -> None:
        """Attach the command to `app`."""
        app.command(COMMAND)(self.command)

    async def command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """/imagine-stats [since]"""
        await ack()
        user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
        try:
            text = await self._answer(user, command.get("team_id"),
                                      to_plain(str(command.get("text", ""))).strip())
        except ImagineError as error:
            text = escape(error.sentence())
        except Exception:
            log.exception("slack: %s from %s failed", COMMAND, user)
            text = OOPS
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as error:
            log.warning("chat.postEphemeral failed: %s", error.response.get("error"))

    async def _answer(self, user: str, team: str | None, since: str) -> str:
        actor = await self.people.actor(user, team)
        if not actor.is_admin:
            return ADMINS_ONLY
        answer = await stats_answer(self.service, since or None, name=_name,
                                    chart=bool(self.admin_channel))
        # No further escaping: _name escaped every name that is not a real mention, and the
        # rest of the summary is numbers and words of ours.
        if answer.chart is None:
            return answer.text + ("\n" + NO_CHANNEL if not self.admin_channel else "")
        where = f"<#{self.admin_channel}>"
        try:
            await self.client.files_upload_v2(
                channel=self.admin_channel, file=answer.chart, filename="imagine-stats.png",
                title="imagine-bot stats", initial_comment=f"Stats chart asked for by <@{user}>.")
        except SlackApiError as error:
            log.warning("slack: the stats chart could not be posted: %s",
                        error.response.get("error"))
            return answer.text + f"\n(The chart could not be posted in {where}: invite me there.)"
        return answer.text + f"\n(The chart is in {where}.)"


def _name(user: UserStats) -> str:
    """A Slack user as a mention (ids checked first); anyone else as escaped text."""
    if user.platform == "slack" and is_user_id(user.user_id):
        return f"<@{user.user_id}>"
    return escape(plain_name(user))
