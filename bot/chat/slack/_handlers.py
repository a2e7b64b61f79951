"""Slack requests -> the core: /imagine, @mentions, /imagine-quota, the buttons and the Edit modal."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.chat.actions import Action, Deleted, OpenEditor, ShowInfo, Started, perform
from bot.chat.guard import UNEXPECTED, guarded
from bot.chat.render import history_lines, queue_lines
from bot.chat.slack._delivery import Delivery, unreachable
from bot.chat.slack._format import (
    ACTION_PATTERN,
    EDIT_CALLBACK,
    edit_modal,
    edit_values,
    escape,
    history_blocks,
    info_text,
    is_user_id,
    mentions_to_ids,
    parse_action,
    to_plain,
)
from bot.chat.slack._people import People
from bot.core.admin import parse_admin, run_admin
from bot.core.errors import ImagineError, NotAllowed
from bot.core.jobs import ReplyTarget
from bot.core.service import ImagineService

log = logging.getLogger(__name__)

NOT_HERE = "I cannot post in this channel: invite me with /invite @imagine and try again."
ADMINS_ONLY = ("Only Slack workspace admins can change quotas; "
               "/imagine-quota alone shows your balance.")


@dataclass(frozen=True)
class Where:
    """Who asked, and where the answer goes."""

    user: str
    team: str | None
    channel: str
    thread: str | None = None
    response_url: str | None = None
    name: str = ""

    def target(self) -> ReplyTarget:
        """The core's ReplyTarget for a new job asked from here."""
        return ReplyTarget(platform="slack", channel_id=self.channel, workspace_id=self.team,
                           thread_id=self.thread)


class Handlers:
    """The listeners registered on the AsyncApp; each acks first, then asks the core."""

    def __init__(self, service: ImagineService, client: AsyncWebClient, people: People,
                 delivery: Delivery) -> None:
        self.service = service
        self.client = client
        self.people = people
        self.delivery = delivery
        self._seen_events: OrderedDict[str, None] = OrderedDict()

    def register(self, app: AsyncApp) -> None:
        """Attach every listener to `app`."""
        app.command("/imagine")(self.imagine_command)
        app.command("/imagine-quota")(self.quota_command)
        app.command("/imagine-queue")(self.queue_command)
        app.command("/imagine-history")(self.history_command)
        app.event("app_mention")(self.mention)
        app.action(ACTION_PATTERN)(self.button)
        app.view(EDIT_CALLBACK)(self.edit_submitted)
        from bot.chat.slack import _settings  # it imports Where from here

        _settings.register(app, self)  # /imagine-settings and its modal

    # --- requests -------------------------------------------------------------------------

    async def imagine_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """/imagine PROMPT --flags"""
        await ack()
        where = _from_command(command)
        await self._guard(where, lambda: self._imagine(where, to_plain(command.get("text", ""))))

    async def mention(self, body: dict[str, Any], event: dict[str, Any],
                      context: dict[str, Any]) -> None:
        """@imagine PROMPT --flags (bolt acks events before this runs)."""
        if self._repeated(str(body.get("event_id", ""))):
            return  # Slack re-sent an event it thought we missed: imagine (and charge) once
        where = Where(user=str(event.get("user", "")),
                      team=event.get("team") or context.get("team_id"),
                      channel=str(event.get("channel", "")), thread=event.get("thread_ts"))
        text = to_plain(str(event.get("text", "")), drop_user=context.get("bot_user_id"))
        await self._guard(where, lambda: self._imagine(where, text))

    def _repeated(self, event_id: str) -> bool:
        if not event_id:
            return False
        if event_id in self._seen_events:
            return True
        self._seen_events[event_id] = None
        if len(self._seen_events) > 1000:
            self._seen_events.popitem(last=False)
        return False

    async def _imagine(self, where: Where, text: str) -> None:
        actor = await self.people.actor(where.user, where.team, where.name)
        job = await self.service.imagine(actor, text, None, where.target())
        try:
            await self.delivery.started(job)
        except SlackApiError as error:
            if not unreachable(error):
                raise
            try:
                await self.service.cancel(actor, job.id)  # still queued: refunded
            except ImagineError:  # already running: it cannot be shown here
                raise ImagineError(f"{NOT_HERE} The image already being made will not be "
                                   f"shown here.") from None
            raise ImagineError(f"{NOT_HERE} Your credits were refunded.") from None

    async def quota_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """/imagine-quota (your balance) or /imagine-quota show|set|grant|... @user (admins)."""
        await ack()
        where = _from_command(command)
        await self._guard(where, lambda: self._quota(where, str(command.get("text", ""))))

    async def _quota(self, where: Where, text: str) -> None:
        actor = await self.people.actor(where.user, where.team, where.name)
        words = to_plain(mentions_to_ids(text)).split()
        if not words:
            status = await self.service.quota_status(actor)
            await self.whisper(where, status.sentence())
            return
        if not actor.is_admin:
            raise NotAllowed(ADMINS_ONLY)
        command = parse_admin(words)
        if command.user_id is not None and not is_user_id(command.user_id):
            raise ImagineError(f"Name the user with an @-mention, as in /imagine-quota "
                               f"{command.action} @ann.")
        await self.whisper(where, await run_admin(self.service.quota, actor.scope, command,
                                                  mention="<@{user}>"))

    async def queue_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """/imagine-queue: your waiting and running jobs, and the totals per backend."""
        await ack()
        where = _from_command(command)

        async def show() -> None:
            actor = await self.people.actor(where.user, where.team, where.name)
            view = await self.service.queue(actor)
            await self.whisper(where, escape("\n".join(queue_lines(view))))

        await self._guard(where, show)

    async def history_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """/imagine-history: your last 10 jobs, with Run again and Reroll for each."""
        await ack()
        where = _from_command(command)

        async def show() -> None:
            actor = await self.people.actor(where.user, where.team, where.name)
            jobs = await self.service.history(actor)
            text = escape("\n".join(history_lines(jobs)))
            await self.whisper(where, text, history_blocks(jobs, text))

        await self._guard(where, show)

    # --- buttons and the modal ------------------------------------------------------------

    async def button(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Reroll, Vary, Edit, Info or Delete under a result; the job id rides in the value."""
        await ack()
        user = body.get("user") or {}
        container = body.get("container") or {}
        message = body.get("message") or {}
        where = Where(user=str(user.get("id", "")),
                      team=(body.get("team") or {}).get("id") or user.get("team_id"),
                      channel=str((body.get("channel") or {}).get("id")
                                  or container.get("channel_id", "")),
                      thread=container.get("thread_ts") or message.get("thread_ts"),
                      response_url=body.get("response_url"), name=str(user.get("name", "")))
        kind, job_id, index = parse_action(str(action.get("action_id")),
                                           str(action.get("value", "")))
        await self._guard(where, lambda: self._button(where, kind, job_id, index, body))

    async def _button(self, where: Where, action: Action, job_id: str, index: int,
                      body: dict[str, Any]) -> None:
        actor = await self.people.actor(where.user, where.team, where.name)
        outcome = await perform(self.service, actor, action, job_id, where.target(), index=index)
        if isinstance(outcome, Started):
            await self.delivery.started(outcome.job)
        elif isinstance(outcome, OpenEditor):
            view = edit_modal(outcome.job, where.channel, where.thread,
                              negative_allowed=outcome.negative_allowed)
            await self.client.views_open(trigger_id=body["trigger_id"], view=view)
        elif isinstance(outcome, ShowInfo):
            await self.whisper(where, info_text(outcome.fields))
        elif isinstance(outcome, Deleted):
            await self.delivery.remove(outcome.job, where.user,
                                       (body.get("message") or {}).get("ts"))
        # Cancelled: the job's own events update its progress message.

    async def edit_submitted(self, ack: AsyncAck, body: dict[str, Any],
                             view: dict[str, Any]) -> None:
        """The Edit modal's Imagine: a new job from the edited prompt; errors show in the modal."""
        meta, prompt, negative = edit_values(view)
        user = body.get("user") or {}
        where = Where(user=str(user.get("id", "")),
                      team=(body.get("team") or {}).get("id") or user.get("team_id"),
                      channel=str(meta.get("channel", "")), thread=meta.get("thread"),
                      name=str(user.get("name", "")))
        try:
            actor = await self.people.actor(where.user, where.team, where.name)
            job = await self.service.edit(actor, str(meta.get("job", "")), prompt, negative,
                                          where.target())
        except ImagineError as error:
            await ack(response_action="errors", errors={"prompt": error.sentence()})
            return
        except Exception:
            log.exception("slack: the Edit modal failed")
            await ack(response_action="errors", errors={"prompt": UNEXPECTED})
            return
        await ack()
        await self._guard(where, lambda: self.delivery.started(job))

    # --- answers only the asker sees --------------------------------------------------------

    async def _guard(self, where: Where, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work`; a user sees the error's sentence, never a traceback."""
        await guarded(f"slack request from {where.user} in {where.channel}", work,
                      lambda sentence: self.whisper(where, escape(sentence)))

    async def whisper(self, where: Where, text: str,
                      blocks: list[dict[str, Any]] | None = None) -> None:
        """An ephemeral message to the asker (mrkdwn `text`, optionally with blocks); the
        response_url if that fails."""
        try:
            await self.client.chat_postEphemeral(channel=where.channel, user=where.user,
                                                 text=text, thread_ts=where.thread,
                                                 blocks=blocks)
            return
        except SlackApiError as error:
            log.warning("chat.postEphemeral failed: %s", error.response.get("error"))
        except Exception as error:
            log.warning("chat.postEphemeral failed: %s", type(error).__name__)
        if where.response_url:
            try:
                await AsyncWebhookClient(where.response_url).send(
                    text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
            except Exception as error:
                log.warning("response_url reply failed: %s", type(error).__name__)


def _from_command(command: dict[str, Any]) -> Where:
    return Where(user=str(command.get("user_id", "")), team=command.get("team_id"),
                 channel=str(command.get("channel_id", "")),
                 response_url=command.get("response_url"), name=str(command.get("user_name", "")))
