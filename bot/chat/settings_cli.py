"""`imagine-bot settings show|set|reset`: defaults at the shell, for any user or workspace.

Who it applies to, as `imagine-bot quota` names users:

- no --scope: the command-line user `--user NAME` (default `local`), scope `cli:user:NAME`,
  whose defaults `imagine-bot imagine --user NAME` uses;
- `--scope discord:GUILD_ID --user USER_ID` (or `slack:TEAM_ID`): that member's own defaults
  there; `--scope discord:user:USER_ID`: their defaults in DMs with the bot;
- `--scope discord:GUILD_ID --workspace`: the server's (or Slack workspace's) defaults, which an
  admin sets; whoever runs this command on the bot's machine counts as an admin.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.core.defaults import setting_name
from bot.core.errors import SettingError
from bot.core.jobs import Actor

if TYPE_CHECKING:  # imported when it runs, so `--help` stays fast
    from bot.core.service import ImagineService

# The options of `settings set`, as the argparse dests hold them -> the setting they set.
OPTIONS = {"model": "model", "ar": "aspect_ratio", "steps": "steps", "cfg": "cfg",
           "negative": "negative_prompt", "format": "image_format", "visibility": "visibility"}


def add_settings_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `settings` subcommand and its options."""
    parser = sub.add_parser("settings", help="show, set or reset a user's or a workspace's "
                                             "defaults (/settings)")
    parser.add_argument("action", choices=("show", "set", "reset"))
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="for reset: the settings to forget (default: all)")
    parser.add_argument("--scope", help="discord:GUILD_ID, slack:TEAM_ID or discord:user:ID "
                                        "(default: the command-line user's own scope)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", default="local", help="whose defaults (default: local)")
    who.add_argument("--workspace", action="store_true",
                     help="the workspace's (server's) defaults, for everyone in --scope")
    parser.add_argument("--model")
    parser.add_argument("--ar", help="aspect ratio W:H")
    parser.add_argument("--steps")
    parser.add_argument("--cfg")
    parser.add_argument("--negative", help="negative prompt")
    parser.add_argument("--format", help="png, jpeg or webp")
    parser.add_argument("--visibility", choices=("channel", "me"), help="Discord only")
    parser.set_defaults(handler=run_settings_cli)


def actor_for(scope: str | None, user: str, workspace: bool) -> Actor:
    """The Actor a --scope / --user / --workspace combination stands for (an admin)."""
    if scope is None:
        if workspace:
            raise SettingError("--workspace needs --scope, as in --scope discord:GUILD_ID.")
        return Actor("cli", user_id=user, display_name=user, is_admin=True)
    platform, _, rest = scope.partition(":")
    if not platform or not rest:
        raise SettingError(f"--scope {scope[:40]!r} is not allowed: discord:GUILD_ID, "
                           "slack:TEAM_ID or discord:user:USER_ID.")
    if rest.startswith("user:"):  # a DM scope: the user is in the scope itself
        if workspace:
            raise SettingError("A direct-message scope has no workspace defaults.")
        return Actor(platform, user_id=rest[5:], is_admin=True)
    return Actor(platform, user_id=user, workspace_id=rest, is_admin=True)


async def run_settings_cli(settings: Settings, args: argparse.Namespace) -> int:
    """Run one settings command; prints the answer, or the sentence and exits 1."""
    from bot.app import run_command  # only when it runs, so `--help` stays fast
    from bot.chat.settings import SettingsCommand, run_settings

    async def work(service: ImagineService) -> int:
        actor = actor_for(args.scope, args.user, args.workspace)
        values = {name: getattr(args, dest) for dest, name in OPTIONS.items()
                  if getattr(args, dest) is not None}
        if args.action != "set" and values:
            raise SettingError(f"Options such as --{next(iter(_dests(values)))} go with set.")
        if args.action != "reset" and args.names:
            raise SettingError(f"Unexpected {args.names[0][:20]!r}: name settings with reset.")
        command = SettingsCommand(args.action, args.workspace, values,
                                  tuple(setting_name(n) for n in args.names))
        print(await run_settings(service, actor, command))
        return 0

    return await run_command(settings, work)


def _dests(values: dict[str, object]) -> list[str]:
    names = {name: dest for dest, name in OPTIONS.items()}
    return [names[name] for name in values]
