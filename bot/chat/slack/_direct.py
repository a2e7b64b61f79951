"""Direct messages: the bot's App Home Messages tab, and /imagine typed in a DM.

A message to the bot in its Messages tab arrives as a `message` event with channel_type "im"
(bot event message.im, scope im:history) and is imagined like a mention, in that DM. /imagine
typed in the user's DM with the bot works as in a channel. Typed in a DM between two other
people it cannot: Slack lets no app post there, so the user is told what does work.

These listeners must be registered before the general ones: bolt runs the first listener that
matches, and these pass everything that is not a DM on (or hand it to the general handlers).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Protocol

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

ELSEWHERE = ("I cannot post in a direct message between other people. Message me in my App "
             "Home (under Apps, choose imagine, then Messages), or use /imagine in a channel "
             "I'm in. Nothing was charged.")
# What conversations.history answers for a DM the bot is not part of.
NOT_OURS = frozenset({"channel_not_found", "not_in_channel"})
_REMEMBER = 1000


class Imagining(Protocol):
    """The general handlers' entry points that a DM is passed to."""

    async def mention(self, body: dict[str, Any], event: dict[str, Any],
                      context: dict[str, Any]) -> None:
        """Imagine the text of a message event, once per event id."""

    async def imagine_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """Handle /imagine as typed in a channel."""


class DirectMessages:
    """The DM listeners; each hands the work to the general handlers once it is servable."""

    def __init__(self, handlers: Imagining, client: AsyncWebClient) -> None:
        self.handlers = handlers
        self.client = client
        self._seen: OrderedDict[str, None] = OrderedDict()

    def register(self, app: AsyncApp) -> None:
        """Attach the DM listeners to `app` (before the general listeners)."""
        app.event("message")(self.message)
        app.event("app_mention", matchers=[_event_in_a_dm])(self.mention_in_a_dm)
        app.command("/imagine", matchers=[_typed_in_a_dm])(self.imagine_in_a_dm)

    async def message(self, body: dict[str, Any], event: dict[str, Any],
                      context: dict[str, Any]) -> None:
        """A message to the bot in its Messages tab: imagined like a mention, in that DM."""
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return  # edits, deletions, file shares and bot posts are not prompts
        if self._first_time(event):
            await self.handlers.mention(body, event, context)

    async def mention_in_a_dm(self, body: dict[str, Any], event: dict[str, Any],
                              context: dict[str, Any]) -> None:
        """@imagine inside the DM: Slack may send it as app_mention as well as message.im."""
        if self._first_time(event):
            await self.handlers.mention(body, event, context)

    async def imagine_in_a_dm(self, ack: AsyncAck, command: dict[str, Any],
                              respond: AsyncRespond) -> None:
        """/imagine in a DM: as in a channel in the user's DM with the bot, else an answer."""
        await ack()
        if await self._can_post(str(command.get("channel_id", ""))):
            await self.handlers.imagine_command(ack, command)  # a second ack() sends nothing
            return
        try:
            # Only the response_url reaches a DM the bot is not part of.
            await respond(text=ELSEWHERE, response_type="ephemeral", replace_original=False)
        except Exception as error:
            log.warning("slack: the answer to /imagine in a DM failed: %s", type(error).__name__)

    def _first_time(self, event: dict[str, Any]) -> bool:
        """False for a message already taken: a retry, or its twin app_mention/message event."""
        ts = event.get("ts")
        if not ts:
            return True
        key = f"{event.get('channel')}:{ts}"
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > _REMEMBER:
            self._seen.popitem(last=False)
        return True

    async def _can_post(self, channel: str) -> bool:
        """Whether the bot is part of this DM (the user's DM with the bot is the only one)."""
        try:
            await self.client.conversations_history(channel=channel, limit=1)
        except SlackApiError as error:
            reason = error.response.get("error")
            if reason in NOT_OURS:
                return False
            # missing_scope (an install without im:history) or a Slack hiccup: let the
            # general path try to post, and answer from what it finds.
            log.info("slack: could not check a DM (%s)", reason)
        except Exception as error:
            log.info("slack: could not check a DM (%s)", type(error).__name__)
        return True


async def _event_in_a_dm(event: dict[str, Any]) -> bool:
    # app_mention carries no channel_type; DM channel ids start with D.
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


async def _typed_in_a_dm(command: dict[str, Any]) -> bool:
    return (command.get("channel_name") == "directmessage"
            or str(command.get("channel_id", "")).startswith("D"))
