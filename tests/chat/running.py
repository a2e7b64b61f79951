"""A started service with one chat adapter, as the chat tests run it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

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
