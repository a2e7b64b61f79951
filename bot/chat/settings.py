"""/settings on every platform: the words of a settings command in, one answer out.

The console types `settings set --model kolors --ar 16:9`; Discord and Slack build the same
SettingsCommand from their options and modal; every answer is worded here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from bot.core.defaults import (
    LABELS,
    SETTINGS,
    Defaults,
    Source,
    setting_name,
    shown_value,
    source_label,
)
from bot.core.errors import SettingError
from bot.core.jobs import Actor
from bot.core.service import ImagineService
from bot.core.user_settings import SettingsView

USAGE = ("Usage: settings [server] show | set --model M --ar W:H --steps N --cfg X --no TEXT "
         "--format F [--visibility channel|me] | reset [SETTING ...]")
ACTIONS = ("show", "set", "reset")
# Platforms whose results can go to the asker alone (an ephemeral follow-up).
PRIVATE_RESULTS = ("discord",)
_FLAG = re.compile(r"(?:^|(?<=\s))(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)")


@dataclass(frozen=True)
class SettingsCommand:
    """One settings command: what to do, to whose defaults, with which values."""

    action: str = "show"
    workspace: bool = False  # the workspace's (server's) defaults, not the asker's own
    values: dict[str, Any] = field(default_factory=dict)  # field -> raw value, for set
    names: tuple[str, ...] = ()  # fields, for reset (empty: all)


def parse_settings(text: str) -> SettingsCommand:
    """`[server|workspace] show | set --flag value ... | reset [name ...]` -> a command."""
    words = text.split(maxsplit=1)
    workspace = bool(words) and words[0].lower() in ("server", "workspace")
    if workspace:
        text = words[1] if len(words) > 1 else ""
    action, _, rest = text.strip().partition(" ")
    action = action.lower() or "show"
    if action.startswith("-"):  # "settings --steps 30" means set
        action, rest = "set", text
    if action not in ACTIONS:
        raise SettingError(f"Unknown settings command {action[:20]!r}. {USAGE}")
    if action == "show":
        return SettingsCommand("show", workspace)
    if action == "reset":
        names = tuple(setting_name(word) for word in rest.replace(",", " ").split())
        return SettingsCommand("reset", workspace, names=names)
    return SettingsCommand("set", workspace, values=_flags(rest))


def _flags(text: str) -> dict[str, str]:
    matches = list(_FLAG.finditer(text))
    if not matches or text[: matches[0].start()].strip():
        raise SettingError(f"Give each setting as a flag, as in set --steps 30. {USAGE}")
    values: dict[str, str] = {}
    for i, match in enumerate(matches):
        name = setting_name(match.group(1))
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[match.end():end].strip()
        if not value:
            raise SettingError(f"--{match.group(1).lower()[:20]} needs a value.")
        if name in values:
            raise SettingError(f"{LABELS[name]} is given twice; give it once.")
        values[name] = value
    return values


async def run_settings(service: ImagineService, actor: Actor, command: SettingsCommand) -> str:
    """Carry out a settings command for `actor`; returns the answer to show them."""
    settings = service.user_settings
    if "visibility" in command.values and actor.platform not in PRIVATE_RESULTS:
        raise SettingError("visibility is a Discord setting: results here always go to the "
                           "channel.")
    if command.action == "set":
        stored = await settings.change(actor, command.values, workspace=command.workspace)
        return saved_text(command, stored, actor.platform)
    if command.action == "reset":
        await settings.reset(actor, command.names, workspace=command.workspace)
        return reset_text(command, actor.platform)
    return show_text(await settings.show(actor, workspace=command.workspace), actor.platform)


def show_text(view: SettingsView, platform: str) -> str:
    """The settings in force, one per line, each with where it comes from."""
    if view.workspace:
        head = (f"{view.word.capitalize()} defaults (set by admins; a member's own defaults "
                "and typed flags win over them):")
    else:
        head = (f"Your defaults (a flag you type wins, then yours, then the {view.word}'s, "
                "then the model's):")
    lines = [head]
    for name in SETTINGS:
        if name == "visibility" and platform not in PRIVATE_RESULTS:
            continue
        value, source = view.effective[name]
        shown = shown_value(name, value)
        if name == "visibility":
            shown = "only to me" if value == "me" else "in the channel"
        label = source_label(source, view.word)
        if name == "visibility" and source is Source.MODEL:
            label = "default"
        lines.append(f"{LABELS[name]}: {shown} ({label})")
    lines.extend(view.notes)
    return "\n".join(lines)


def saved_text(command: SettingsCommand, stored: Defaults, platform: str) -> str:
    """What was saved, and what is stored now."""
    whose = _whose(command, platform)
    now = stored.values()
    changed = ", ".join(f"{LABELS[n]} {shown_value(n, now[n])}" for n in command.values
                        if n in now)
    everything = ", ".join(f"{LABELS[n]} {shown_value(n, v)}" for n, v in now.items())
    return f"Saved {whose}: {changed}. Stored now: {everything}. A flag you type still wins."


def reset_text(command: SettingsCommand, platform: str) -> str:
    """What was forgotten."""
    whose = _whose(command, platform)
    if not command.names:
        return f"All {whose} are reset."
    return f"Reset {whose}: {', '.join(LABELS[n] for n in command.names)}."


def _whose(command: SettingsCommand, platform: str) -> str:
    if command.workspace:
        return f"the {'server' if platform == 'discord' else 'workspace'} defaults"
    return "your defaults"


async def console_settings(service: ImagineService, actor: Actor, text: str) -> str:
    """The console's `settings ...`: the operator owns the terminal, so may set its
    workspace defaults too (as with /quota-admin)."""
    return await run_settings(service, replace(actor, is_admin=True), parse_settings(text))
