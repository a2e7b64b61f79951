"""Start a service with one chat adapter in front of it, as the chat and reliability tests do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from bot.app import build_service
from bot.chat.discord import DiscordAdapter
from bot.chat.slack import SlackAdapter
from bot.config import Settings
from bot.core.service import ImagineService


class Adapter(Protocol):
    async def close(self) -> None: ...


AdapterT = TypeVar("AdapterT", bound=Adapter)


@dataclass
class Bot(Generic[AdapterT]):
    """A running service and its chat adapter."""

    service: ImagineService
    adapter: AdapterT
    stopped: bool = False

    async def stop(self) -> None:
        """Stop the service first (its last deliveries finish), then the adapter."""
        if not self.stopped:
            self.stopped = True
            await self.service.stop()
            await self.adapter.close()


@dataclass
class Bots:
    """Every bot a test started, stopped in reverse order when it ends."""

    started: list[Bot[Any]] = field(default_factory=list)

    async def discord(self, settings: Settings, **options: Any) -> Bot[DiscordAdapter]:
        """A started service with a Discord adapter connected (options go to the adapter)."""
        service = await build_service(settings)
        await service.start()
        adapter = DiscordAdapter(service, settings, **{"guild_ready_timeout_s": 0.05, **options})
        bot = Bot(service, adapter)
        self.started.append(bot)
        await adapter.start(ready_within_s=10)
        return bot

    async def slack(self, settings: Settings, **options: Any) -> Bot[SlackAdapter]:
        """A started service with a Slack adapter listening (options go to the adapter)."""
        service = await build_service(settings)
        adapter = SlackAdapter(service, settings, **{
            "http_host": "127.0.0.1", "http_port": 0, "update_interval_s": 0.05, **options})
        await adapter.start()
        await service.start()
        bot = Bot(service, adapter)
        self.started.append(bot)
        return bot

    async def stop_all(self) -> None:
        """Stop every bot, the last started first."""
        for bot in reversed(self.started):
            await bot.stop()


@asynccontextmanager
async def bots() -> AsyncIterator[Bots]:
    """A Bots that stops everything it started on the way out."""
    started = Bots()
    try:
        yield started
    finally:
        await started.stop_all()
