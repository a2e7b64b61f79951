"""The command line: imagine-bot run | imagine | worker | quota | doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from pathlib import Path

from bot.config import ConfigError, Settings
from bot.core.errors import ImagineError

log = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `imagine-bot`; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "worker":
        from bot.worker.main import run_worker  # needs the worker extra

        return run_worker(args)
    try:
        settings = Settings.load(args.config)
    except ConfigError as error:
        print(f"imagine-bot: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagine-bot", description=__doc__)
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $IMAGINE_CONFIG or ./config.toml)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start every chat adapter that has credentials "
                                     "(the console chat when none has)")
    run.add_argument("--console", action="store_true", help="force the console chat")
    run.set_defaults(handler=_run)

    imagine = sub.add_parser("imagine", help="generate once from the shell")
    imagine.add_argument("prompt", help='the prompt, flags allowed: "a fox --ar 16:9"')
    imagine.add_argument("--model")
    imagine.add_argument("--seed")
    imagine.add_argument("--steps")
    imagine.add_argument("--cfg")
    imagine.add_argument("--negative", dest="negative_prompt")
    imagine.add_argument("--samples")
    imagine.add_argument("--out", type=Path, help="copy the images into this folder")
    imagine.add_argument("--user", default="local", help="whose quota pays (default: local)")
    imagine.set_defaults(handler=_imagine)

    quota = sub.add_parser("quota", help="admin quota commands at the shell")
    quota.add_argument("--scope", help="workspace scope, e.g. discord:GUILD_ID or slack:TEAM_ID "
                                       "(default: the user's own command-line scope)")
    quota.add_argument("action", choices=("show", "set", "set-workspace", "grant", "reset",
                                          "block", "unblock", "top"))
    quota.add_argument("words", nargs="*", help="USER [CREDITS|unlimited|default] [day|week|month]")
    quota.set_defaults(handler=_quota)

    doctor = sub.add_parser("doctor", help="check config, database, backends and tokens")
    doctor.set_defaults(handler=_doctor)

    worker = sub.add_parser("worker", help="serve chroma / flux-schnell / kolors on this GPU")
    try:
        from bot.worker.main import add_worker_arguments
    except ImportError:  # the worker extra is not installed
        worker.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        add_worker_arguments(worker)
    return parser


async def _imagine(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_service
    from bot.chat.render import fields_text, progress_text, result_fields
    from bot.core.jobs import Actor, JobDone, JobFailed, ReplyTarget

    service = await build_service(settings)
    await service.start()
    try:
        options = {k: getattr(args, k) for k in
                   ("model", "seed", "steps", "cfg", "negative_prompt", "samples")}
        actor = Actor("cli", user_id=args.user, display_name=args.user)
        try:
            job = await service.imagine(actor, args.prompt, options,
                                        ReplyTarget(platform="cli"), nsfw_allowed=True)
        except ImagineError as error:
            print(error.sentence(), file=sys.stderr)
            return 1
        events = service.subscribe(job.id)
        print(f"job {job.id}: {job.request.summary()}, {job.cost} credits", file=sys.stderr)
        while True:
            event = await events.get()
            if isinstance(event, JobFailed):
                print(event.message, file=sys.stderr)
                await service.mark_delivered(job.id)
                return 1
            if isinstance(event, JobDone):
                break
            print(progress_text(event), file=sys.stderr)
        paths = list(event.images)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            paths = [Path(shutil.copy2(p, args.out / f"{job.id}-{p.name}")) for p in paths]
        for path in paths:
            print(path)
        print(fields_text(result_fields(event.job, event.balance)), file=sys.stderr)
        await service.mark_delivered(job.id)
        return 0
    finally:
        await service.stop()


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_service

    service = await build_service(settings)
    await service.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        if not args.console and settings.secret("discord_token"):
            from bot.chat.discord import run_discord

            tasks.append(asyncio.create_task(run_discord(service, settings)))
        if not args.console and settings.secret("slack_bot_token"):
            from bot.chat.slack import run_slack

            tasks.append(asyncio.create_task(run_slack(service, settings)))
        if not service.router.backends:
            log.warning("no image service configured: set SEGMIND_API_KEY or [worker] url")
        if not tasks:
            from bot.chat.console import run_console

            log.info("no chat credentials (DISCORD_TOKEN, SLACK_BOT_TOKEN): console chat")
            await run_console(service)
            return 0
        await asyncio.gather(*tasks)
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await service.stop()


async def _quota(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_service
    from bot.core.admin import parse_admin, run_admin

    service = await build_service(settings)
    try:
        command = parse_admin([args.action, *args.words])
        scope = args.scope or f"cli:user:{command.user_id or 'local'}"
        print(await run_admin(service.quota, scope, command))
        return 0
    except ImagineError as error:
        print(error.sentence(), file=sys.stderr)
        return 1
    finally:
        await service.stop()


async def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    return await run_doctor(settings)
