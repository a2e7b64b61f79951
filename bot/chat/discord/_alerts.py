"""Admin alerts (budget, credits, failing backends) posted to [discord] admin_channel_id."""

from __future__ import annotations

import discord

from bot.chat import admin_alerts
from bot.core.service import ImagineService

MAX_MESSAGE = 2000  # Discord's limit on a message's content


class DiscordAdminAlerts:
    """An AdminAlerts sink: one plain message per alert in the admin channel, pinging nobody."""

    def __init__(self, client: discord.Client, channel_id: int) -> None:
        self.client = client
        self.channel_id = channel_id
        self.name = f"discord:{channel_id}"

    async def post(self, text: str) -> None:
        """Send the alert; discord.HTTPException when Discord refuses (then it is retried)."""
        channel = self.client.get_partial_messageable(self.channel_id)
        await channel.send(text[:MAX_MESSAGE], allowed_mentions=discord.AllowedMentions.none())


def attach(service: ImagineService, client: discord.Client,
           channel_id: int | None) -> DiscordAdminAlerts | None:
    """Register the admin channel with the service's alerts, when one is configured."""
    return admin_alerts.attach(service, None if not channel_id else DiscordAdminAlerts(client, channel_id))
