"""UserSettings: read, set and reset defaults for an Actor, with the admin rule for workspaces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.core.catalog import Catalog
from bot.core.defaults import (
    SETTINGS,
    Defaults,
    Layers,
    Source,
    Visibility,
    check_new,
    effective,
    setting_name,
    visibility_of,
    workspace_word,
)
from bot.core.errors import NotAllowed, SettingError
from bot.core.jobs import Actor
from bot.core.ports import DefaultsStore


@dataclass(frozen=True)
class SettingsView:
    """What /settings show tells: the stored layers and what a bare request would use now."""

    layers: Layers
    effective: dict[str, tuple[Any, Source]]
    notes: tuple[str, ...]
    workspace: bool  # the view is of the workspace's defaults (an admin's)
    word: str  # "server" or "workspace"


class UserSettings:
    """The per-user and per-workspace defaults of one deployment (no store: none are kept)."""

    def __init__(self, store: DefaultsStore | None, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog

    async def layers(self, actor: Actor) -> Layers:
        """The actor's own defaults and their workspace's."""
        if self.store is None:
            return Layers()
        return await self.store.layers(actor.scope, actor.user_id)

    async def visibility(self, actor: Actor) -> Visibility:
        """Where the actor's results go (Discord): the channel, or only them."""
        return visibility_of(await self.layers(actor))

    async def show(self, actor: Actor, *, workspace: bool = False) -> SettingsView:
        """The actor's defaults (or, with workspace, the workspace's) and what applies now."""
        layers = await self.layers(actor)
        shown = Layers(workspace=layers.workspace) if workspace else layers
        values, notes = effective(shown, self.catalog, workspace_word(actor.platform))
        return SettingsView(layers, values, tuple(notes), workspace,
                            workspace_word(actor.platform))

    async def change(self, actor: Actor, values: Mapping[str, Any], *,
                     clear: Iterable[str] = (), workspace: bool = False) -> Defaults:
        """Check and store new defaults, forgetting those in `clear` (in one write); one
        sentence, and nothing stored, if any value is wrong."""
        store = self._store(actor, workspace)
        cleared = tuple(dict.fromkeys(setting_name(name) for name in clear))
        layers = await self.layers(actor)
        stored, below = (layers.workspace, Defaults()) if workspace else (
            layers.user, layers.workspace)
        stored = replace(stored, **dict.fromkeys(cleared))  # checked as they will be
        checked = check_new(values, stored, below, self.catalog) if values or not cleared \
            else {}
        return await store.save(actor.scope, None if workspace else actor.user_id, checked,
                                cleared)

    async def reset(self, actor: Actor, names: Iterable[str] = (), *,
                    workspace: bool = False) -> Defaults:
        """Forget the named defaults (all of them when none is named)."""
        store = self._store(actor, workspace)
        fields = tuple(dict.fromkeys(setting_name(n) for n in names)) or SETTINGS
        return await store.save(actor.scope, None if workspace else actor.user_id, {}, fields)

    def _store(self, actor: Actor, workspace: bool) -> DefaultsStore:
        word = workspace_word(actor.platform)
        if workspace and not actor.is_admin:
            raise NotAllowed(f"Only admins can change the {word} defaults; "
                             "/settings alone changes yours.")
        if workspace and actor.workspace_id is None and actor.platform in ("discord", "slack"):
            raise SettingError(f"There is no {word} here: set {word} defaults in a {word} "
                               "channel, not in a direct message.")
        if self.store is None:
            raise SettingError("Defaults cannot be stored here (no database).")
        return self.store
