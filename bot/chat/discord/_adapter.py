"""The Discord client: connects through the configured endpoints, syncs commands, delivers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from bot.chat import admin_alerts
from bot.chat.discord import _alerts, _commands, _stats
from bot.chat.discord._convert import PLATFORM
from bot.chat.discord._delivery import Delivery
from bot.chat.discord._jobs import JobHandlers
from bot.chat.discord._sync import record_path, sync_commands
from bot.chat.discord._tree import CheckedTree
from bot.chat.discord._ui import JobButton
from bot.config import ConfigError, DiscordSettings, Settings
from bot.core.service import ImagineService
from bot.ops.health import HealthBoard

log = logging.getLogger("bot.chat.discord")


def use_endpoints(settings: DiscordSettings) -> None:
    """Point discord.py's REST base and gateway at [discord] api_base_url and gateway_url.

    Both are class attributes in discord.py, so this applies to the whole process.
    """
    discord.http.Route.BASE = settings.api_base_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


class ImagineClient(discord.Client):
    """A discord.Client with the command tree, the result buttons and the modal handler."""

    def __init__(self, adapter: DiscordAdapter, *, guild_ready_timeout_s: float = 2.0) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels (for NSFW checks) and roles; nothing privileged
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(),
                         guild_ready_timeout=guild_ready_timeout_s)
        self.adapter = adapter
        self.tree: app_commands.CommandTree[Any] = CheckedTree(self)

    async def setup_hook(self) -> None:
        """Register the commands and buttons, then sync the commands where they changed."""
        _commands.register(self.tree, self.adapter)
        _stats.register(self.tree, self.adapter)
        self.add_dynamic_items(JobButton)
        # Server commands appear at once; global ones (guild_ids empty) also work in DMs.
        report = await sync_commands(self.tree, self.adapter.settings.guild_ids,
                                     record_path(self.adapter.service.data_dir))
        log.info("discord commands: %s", report.sentence())

    async def on_ready(self) -> None:
        """The gateway session is up (also after a reconnect that started a new session)."""
        self.adapter.connected = True

    async def on_resumed(self) -> None:
        """The gateway session resumed after a drop."""
        self.adapter.connected = True

    async def on_disconnect(self) -> None:
        """The gateway dropped; discord.py reconnects on its own."""
        self.adapter.connected = False

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Modal submits are matched here by custom id, so they work after a restart."""
        if interaction.type is discord.InteractionType.modal_submit:
            await self.adapter.jobs.on_modal_submit(interaction)


class DiscordAdapter:
    """Runs the bot: `await start()` returns once the gateway is ready; `await close()`.

    progress_interval_s: the least time between two progress edits of one job.
    guild_ready_timeout_s: how long discord.py waits for more servers before READY counts.
    """

    def __init__(self, service: ImagineService, settings: Settings, *,
                 progress_interval_s: float = 2.0, guild_ready_timeout_s: float = 2.0) -> None:
        token = settings.secret("discord_token")
        if not token:
            raise ConfigError("DISCORD_TOKEN is not set: the Discord adapter needs the bot token.")
        self._token = token
        self.service = service
        self.settings = settings.discord
        self.client = ImagineClient(self, guild_ready_timeout_s=guild_ready_timeout_s)
        self.delivery = Delivery(self.client, service, interval_s=progress_interval_s)
        self.jobs = JobHandlers(service, self.settings, self.delivery)
        self._runner: asyncio.Task[None] | None = None
        self._listening = False
        self.connected = False  # the gateway session, as discord.py's events tell it

    async def start(self, *, ready_within_s: float = 60.0) -> None:
        """Log in, sync commands, connect the gateway, wait for READY, then take job events."""
        use_endpoints(self.settings)
        try:
            await self.client.login(self._token)
        except BaseException:
            await self.client.close()  # release the HTTP session a failed login leaves open
            raise
        self._runner = asyncio.create_task(self.client.connect(reconnect=True),
                                           name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._runner}, timeout=ready_within_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            failed = self._runner in done
            await self.close()
            if failed and self._runner.exception() is not None:
                raise self._runner.exception()  # type: ignore[misc]
            raise TimeoutError(f"the Discord gateway was not ready within {ready_within_s:g} s")
        user = self.client.user
        log.info("discord connected as %s (application %s)", user, self.client.application_id)
        self.service.listen(PLATFORM, self.delivery)
        self._listening = True
        self.admin_alerts = _alerts.attach(self.service, self.client, self.settings.admin_channel_id)

    async def problem(self) -> str | None:
        """None while the gateway is connected, else why not (for /healthz)."""
        if self.client.is_closed():
            return "the Discord client is closed"
        return None if self.connected else "the Discord gateway is disconnected (reconnecting)"

    async def wait_closed(self) -> None:
        """Wait until the gateway connection ends."""
        if self._runner is not None:
            await self._runner

    async def close(self) -> None:
        """Stop taking job events and disconnect; unfinished jobs stay with the service."""
        if self._listening:
            self.service.unlisten(PLATFORM, self.delivery)
            self._listening = False
            admin_alerts.detach(self.service, self.admin_alerts)
        await self.delivery.close()
        await self.client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._runner


async def run_discord(service: ImagineService, settings: Settings,
                      health: HealthBoard | None = None) -> None:
    """Run the Discord adapter until it disconnects or the task is cancelled."""
    adapter = DiscordAdapter(service, settings)
    try:
        await adapter.start()
        if health is not None:
            health.report(PLATFORM, adapter.problem)
        await adapter.wait_closed()
    finally:
        await adapter.close()
