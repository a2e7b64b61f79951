"""Who is asking: a Slack user as the core's Actor, admin rights from config or users.info."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.jobs import Actor

log = logging.getLogger(__name__)


class People:
    """Builds Actors; users.info answers are cached for `ttl_s` to stay under rate limits."""

    def __init__(self, client: AsyncWebClient, admin_user_ids: list[str], *,
                 ttl_s: float = 300.0) -> None:
        self.client = client
        self.admin_user_ids = frozenset(admin_user_ids)
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def actor(self, user_id: str, team_id: str | None, name: str = "") -> Actor:
        """The Actor for a Slack user in a workspace."""
        info = await self._info(user_id)
        profile = info.get("profile") or {}
        display = (profile.get("display_name") or profile.get("real_name")
                   or info.get("real_name") or info.get("name") or name or user_id)
        is_admin = (user_id in self.admin_user_ids or bool(info.get("is_admin"))
                    or bool(info.get("is_owner")) or bool(info.get("is_primary_owner")))
        return Actor(platform="slack", user_id=user_id, workspace_id=team_id or None,
                     display_name=str(display), is_admin=is_admin)

    async def _info(self, user_id: str) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached and cached[0] > now:
            return cached[1]
        try:
            response = await self.client.users_info(user=user_id)
            info = dict(response.get("user") or {})
        except SlackApiError as error:
            log.warning("users.info for %s failed: %s", user_id, _why(error))
            return {}  # not cached: the next request asks again
        except Exception as error:  # Slack unreachable: nobody gains rights, nothing breaks
            log.warning("users.info for %s failed: %s", user_id, type(error).__name__)
            return {}
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[user_id] = (now + self.ttl_s, info)
        return info


def _why(error: SlackApiError) -> str:
    """Slack's error code, or the HTTP status when the answer was not Slack's JSON.

    For a non-JSON answer (an HTML error page from a proxy) slack_sdk leaves a str in
    `.response.data`, or puts aiohttp's raw response in `.response`: neither has `.get`, and
    this runs inside an except clause, so it must not raise.
    """
    response = getattr(error, "response", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return f"HTTP {status}, not Slack's JSON" if status else type(error).__name__
