"""Command sync: send the command set only where it changed, and empty the scopes no longer used.

Discord keeps global commands and each server's (guild's) commands apart. A bot that moved
from global commands to [discord] guild_ids would otherwise keep its global ones, and members
would see /imagine twice; one that dropped a server from guild_ids would leave its commands
there. A record in the data folder holds, per application and scope ("global" or a server
id), a hash of the payload last synced there, so an unchanged set is not sent again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger("bot.chat.discord")

RECORD_NAME = "discord-commands.json"
GLOBAL = "global"
# Servers looked at on a start without a record (one GET each): enough for a bot that was
# synced to servers by hand; a larger bot is told in the log to clear the rest itself.
SCAN_LIMIT = 100
_GONE = (discord.Forbidden, discord.NotFound)  # the bot left, or lost the scope there


@dataclass(frozen=True)
class SyncReport:
    """What one start did, scope by scope ("global" or a server id)."""

    synced: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    def sentence(self) -> str:
        """One log line: each kind of outcome with its scopes."""
        parts = [f"{label} {', '.join(scopes)}" for label, scopes in (
            ("synced", self.synced), ("cleared", self.cleared),
            ("unchanged", self.unchanged), ("failed to clear", self.failed)) if scopes]
        return "; ".join(parts) or "nothing to sync"


def record_path(data_dir: Path) -> Path:
    """Where the hashes of the synced commands are kept."""
    return data_dir / RECORD_NAME


def digest(payload: list[dict[str, Any]]) -> str:
    """A stable hash of the command payloads of one scope."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def sync_commands(tree: app_commands.CommandTree[Any], guild_ids: Sequence[int],
                        path: Path) -> SyncReport:
    """Sync the tree to guild_ids (or globally when empty) and empty every other scope we used.

    The tree's global commands are removed from the tree when guild_ids are set: they live on
    as copies in each server, which is where interactions are matched.
    """
    client = tree.client
    app_id = str(client.application_id)
    recorded = _load(path, app_id)
    hashes = dict(recorded or {})
    wanted: dict[str, list[dict[str, Any]]] = {}
    for guild_id in guild_ids:
        guild = discord.Object(guild_id)
        tree.copy_global_to(guild=guild)
        wanted[str(guild_id)] = _payload(tree, guild)
    if guild_ids:
        tree.clear_commands(guild=None)  # empties the global scope on its next sync
    wanted[GLOBAL] = _payload(tree, None)
    stale = [scope for scope in hashes if scope not in wanted]
    if recorded is None:  # no record: an older version may have synced to other servers
        stale += await _servers_holding_commands(tree, set(wanted))
    synced: list[str] = []
    unchanged: list[str] = []
    cleared: list[str] = []
    failed: list[str] = []
    try:
        # Servers first, then global: when moving to guild_ids, /imagine stays usable.
        for scope in sorted(wanted, key=lambda s: s == GLOBAL):
            payload = wanted[scope]
            if hashes.get(scope) == digest(payload) and await _still_there(tree, scope,
                                                                          payload):
                unchanged.append(scope)
                continue
            try:
                await tree.sync(guild=_guild(scope))
            except discord.HTTPException as error:
                if payload:
                    raise  # the commands we need could not be sent: the start fails, as before
                log.warning("could not clear the old %s discord commands (HTTP %s); "
                            "trying again on the next start", _name(scope), error.status)
                failed.append(scope)
                continue
            hashes[scope] = digest(payload)
            (synced if payload else cleared).append(scope)
        for scope in stale:
            try:
                await tree.sync(guild=_guild(scope))  # nothing in the tree there: sends []
            except _GONE:
                log.info("discord server %s no longer lets the bot manage commands there; "
                         "forgetting it", scope)
            except discord.HTTPException as error:
                log.warning("could not clear the discord commands of server %s (HTTP %s); "
                            "trying again on the next start", scope, error.status)
                failed.append(scope)
                continue
            else:
                cleared.append(scope)
            hashes.pop(scope, None)
    finally:
        # Nothing learnt on a first start that failed: keep no record, so the next start
        # looks for old server commands again.
        if hashes != recorded and (recorded is not None or hashes):
            _save(path, app_id, hashes)
    return SyncReport(tuple(synced), tuple(cleared), tuple(unchanged), tuple(failed))


def _payload(tree: app_commands.CommandTree[Any],
             guild: discord.abc.Snowflake | None) -> list[dict[str, Any]]:
    """What CommandTree.sync would send for that scope (we use no translator)."""
    return [command.to_dict(tree) for command in tree.get_commands(guild=guild)]


async def _still_there(tree: app_commands.CommandTree[Any], scope: str,
                       payload: list[dict[str, Any]]) -> bool:
    """Whether Discord still holds commands of those names there (someone may have deleted
    them in the Developer Portal, or another copy of the bot synced elsewhere)."""
    if not payload:
        return True  # an emptied scope stays empty: nothing of ours adds to it
    try:
        held = await tree.fetch_commands(guild=_guild(scope))
    except discord.HTTPException:
        return False  # let the sync itself fail or succeed
    return {(c.name, c.type.value) for c in held} == {(p["name"], p.get("type", 1))
                                                      for p in payload}


async def _servers_holding_commands(tree: app_commands.CommandTree[Any],
                                    wanted: set[str]) -> list[str]:
    """Servers the bot is in, not wanted, that hold commands of this application."""
    found: list[str] = []
    try:
        servers = [guild.id async for guild in tree.client.fetch_guilds(
            limit=SCAN_LIMIT + 1, with_counts=False)]
    except discord.HTTPException as error:
        log.warning("could not list the bot's discord servers (HTTP %s); old server commands "
                    "are not cleared", error.status)
        return found
    if len(servers) > SCAN_LIMIT:
        log.warning("the bot is in more than %d discord servers: only the first %d were checked "
                    "for old server commands", SCAN_LIMIT, SCAN_LIMIT)
    for server in servers[:SCAN_LIMIT]:
        if str(server) in wanted:
            continue
        try:
            if await tree.fetch_commands(guild=discord.Object(server)):
                found.append(str(server))
        except discord.HTTPException:
            continue  # no applications.commands scope there: no commands of ours either
    return found


def _guild(scope: str) -> discord.Object | None:
    return None if scope == GLOBAL else discord.Object(int(scope))


def _name(scope: str) -> str:
    return "global" if scope == GLOBAL else f"server {scope}"


def _load(path: Path, app_id: str) -> dict[str, str] | None:
    """The recorded hashes for this application, or None when there is no usable record."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("ignoring %s (%s): syncing every scope", path, type(error).__name__)
        return None
    if not isinstance(stored, dict) or not isinstance(stored.get("scopes"), dict):
        log.warning("ignoring %s (not a record of synced commands): syncing every scope", path)
        return None
    scopes = stored["scopes"]
    if stored.get("application_id") != app_id:
        return None  # another application's record (the token changed): start afresh
    return {str(k): str(v) for k, v in scopes.items()}


def _save(path: Path, app_id: str, hashes: dict[str, str]) -> None:
    """Write the record atomically; a failure only means syncing again next time."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"application_id": app_id, "scopes": hashes},
                                        indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        log.warning("could not write %s (%s): commands will be synced on every start",
                    path, type(error).__name__)
        with contextlib.suppress(OSError):
            temporary.unlink()
