"""The defaults tables (/settings): user_defaults per user per scope, workspace_defaults per scope."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Mapping
from typing import Any

from bot.core.defaults import SETTINGS, Defaults, Layers
from bot.store.db import Database

_COLUMNS = ", ".join(SETTINGS)  # fixed names from the core, never user text


class SettingsRepository:
    """Reads and writes stored defaults; a write is one statement, so it is atomic."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def layers(self, scope: str, user_id: str) -> Layers:
        """The user's and the workspace's defaults, in one hop."""
        def read(conn: sqlite3.Connection) -> Layers:
            user = conn.execute(f"SELECT {_COLUMNS} FROM user_defaults "
                                "WHERE scope = ? AND user_id = ?", (scope, user_id)).fetchone()
            workspace = conn.execute(f"SELECT {_COLUMNS} FROM workspace_defaults "
                                     "WHERE scope = ?", (scope,)).fetchone()
            return Layers(user=_defaults(user), workspace=_defaults(workspace))

        return await self.db.run(read)

    async def save(self, scope: str, user_id: str | None, values: Mapping[str, Any],
                   clear: Collection[str] = ()) -> Defaults:
        """Set `values`, unset `clear`, and return what is stored now (user_id None: the
        workspace's own defaults)."""
        changes = {name: values[name] for name in SETTINGS if name in values}
        changes.update({name: None for name in SETTINGS if name in clear and name not in values})
        keys: tuple[str, ...]
        key_values: tuple[str, ...]
        if user_id is None:
            table, keys, key_values = "workspace_defaults", ("scope",), (scope,)
        else:
            table, keys, key_values = "user_defaults", ("scope", "user_id"), (scope, user_id)
        names = [*keys, *changes, "updated_at"]
        updates = ", ".join(f"{name} = excluded.{name}" for name in [*changes, "updated_at"])
        rows = await self.db.write_returning(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates} RETURNING {_COLUMNS}",
            (*key_values, *changes.values(), time.time()),
        )
        return _defaults(rows[0] if rows else None)


def _defaults(row: sqlite3.Row | None) -> Defaults:
    return Defaults.of(dict(row)) if row is not None else Defaults()
