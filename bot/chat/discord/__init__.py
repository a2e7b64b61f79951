"""Discord adapter: /imagine, /quota, /quota-admin and result buttons, over discord.py.

Public API: DiscordAdapter(service, settings) with `await start()` / `await close()`, and
`await run_discord(service, settings)`. Handlers live in the private modules beside this one.
"""

from __future__ import annotations

from bot.chat.discord._adapter import DiscordAdapter, run_discord, use_endpoints

__all__ = ["DiscordAdapter", "run_discord", "use_endpoints"]
