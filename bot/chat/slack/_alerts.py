"""Admin alerts (budget, credits, failing backends) posted to [slack] admin_channel."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import admin_alerts
from bot.chat.slack._format import escape
from bot.core.service import ImagineService


class SlackAdminAlerts:
    """An AdminAlerts sink: one message per alert in the admin channel, escaped so an alert
    never becomes a mention or a link."""

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.name = f"slack:{channel}"

    async def post(self, text: str) -> None:
        """Send the alert; SlackApiError when Slack refuses (then it is retried)."""
        await self.client.chat_postMessage(channel=self.channel, text=escape(text),
                                           unfurl_links=False, unfurl_media=False)


def attach(service: ImagineService, client: AsyncWebClient,
           channel: str) -> SlackAdminAlerts | None:
    """Register the admin channel with the service's alerts, when one is configured."""
    return admin_alerts.attach(service, None if not channel else SlackAdminAlerts(client, channel))
