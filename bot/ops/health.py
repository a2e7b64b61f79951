"""What /healthz reports on the chat connections: each adapter says whether it is up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# None while the connection is up; otherwise the reason, in a few words.
Probe = Callable[[], Awaitable[str | None]]


class HealthBoard:
    """The chat connections this process is meant to hold, and how to ask each of them."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe | None] = {}

    def expect(self, platform: str) -> None:
        """A connection that is configured but not (yet) started counts as down."""
        self._probes.setdefault(platform, None)

    def report(self, platform: str, probe: Probe) -> None:
        """The adapter is started: ask `probe` from now on."""
        self._probes[platform] = probe

    async def problems(self) -> dict[str, str]:
        """platform -> why its connection is down, for every connection that is."""
        problems = {}
        for platform, probe in self._probes.items():
            if probe is None:
                problems[platform] = "not connected yet"
                continue
            try:
                reason = await probe()
            except Exception as error:  # a probe must never take /healthz down with it
                log.warning("health probe of %s failed", platform, exc_info=True)
                reason = f"its check failed ({type(error).__name__})"
            if reason is not None:
                problems[platform] = reason
        return problems

    async def connected(self) -> dict[str, bool]:
        """platform -> whether its connection is up."""
        down = await self.problems()
        return {platform: platform not in down for platform in self._probes}
