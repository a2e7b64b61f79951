"""The command line: imagine-bot run | imagine | worker | fleet | quota | stats | settings |
cancel | history | doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.chat.settings_cli import add_settings_parser
from bot.config import ConfigError, Settings
from bot.core.errors import ImagineError

if TYPE_CHECKING:  # imported when a command needs them, so `--help` stays fast
    from bot.core.service import ImagineService
    from bot.ops.health import HealthBoard

log = logging.getLogger("bot")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_NAME = "imagine-bot.log"  # in the data folder, when the console chat owns the terminal
STOP_DELIVERY_S = 3.0  # after the drain: time to post the "restarting" notes


def main(argv: list[str] | None = None) -> int:
    """Entry point of `imagine-bot`; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    if args.command == "worker":
        from bot.worker.main import run_worker  # needs the worker extra

        return run_worker(args)
    if args.command == "fleet":
        from bot.fleet.main import run_fleet  # needs the worker and fleet extras

        return run_fleet(args)
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

    stats = sub.add_parser("stats", help="jobs, images, credits, money and speed, with a chart")
    stats.add_argument("--since", default="7d", help="24h, 7d, 30d (any Nh, Nd, Nw) or a date "
                                                      "such as 2025-01-31 (default 7d)")
    stats.add_argument("--chart", type=Path, help="write the chart here (PNG, 1200x800)")
    stats.add_argument("--csv", type=Path, help="write the per-day numbers here (CSV)")
    stats.set_defaults(handler=_stats)

    add_settings_parser(sub)  # imagine-bot settings show|set|reset (bot/chat/settings_cli.py)

    cancel = sub.add_parser("cancel", help="cancel a waiting job (it is refunded)")
    cancel.add_argument("job_id", help="the job id (Info, /history and the log show it)")
    cancel.set_defaults(handler=_cancel)

    history = sub.add_parser("history", help="a user's last jobs")
    history.add_argument("--user", default="local", help="the user id (default: local, the "
                                                          "command line's own user)")
    history.add_argument("--scope", help="workspace scope, e.g. discord:GUILD_ID or "
                                         "slack:TEAM_ID (default: the user's command-line scope)")
    history.add_argument("--limit", type=int, default=10, help="how many jobs (default 10)")
    history.set_defaults(handler=_history)

    doctor = sub.add_parser("doctor", help="check config, database, backends and tokens")
    doctor.set_defaults(handler=_doctor)

    worker = sub.add_parser("worker", help="serve chroma / flux-schnell / kolors on this GPU")
    try:
        from bot.worker.main import add_worker_arguments
    except ImportError:  # the worker extra is not installed
        worker.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        add_worker_arguments(worker)

    fleet = sub.add_parser("fleet", help="serve the worker's models on many GPUs and machines "
                                         "behind one URL (Ray Serve)")
    try:
        from bot.fleet.main import add_fleet_arguments
    except ImportError:  # the worker extra is not installed
        fleet.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        add_fleet_arguments(fleet)
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
    from bot.ops.health import HealthBoard
    from bot.ops.lifecycle import StopSignals
    from bot.ops.metrics import PrometheusTelemetry
    from bot.ops.server import OpsServer

    chats = [] if args.console else [
        name for name, secret in (("discord", "discord_token"), ("slack", "slack_bot_token"))
        if settings.secret(secret)]
    if not chats:  # the terminal is the conversation: log lines go to a file instead
        _log_to_file(settings.storage.path / LOG_NAME)
    signals = StopSignals()
    signals.install()
    service = await build_service(settings, PrometheusTelemetry())
    board = HealthBoard()
    ops = (OpsServer(service, board, host=settings.metrics.host, port=settings.metrics.port)
           if settings.metrics.port else None)
    tasks: list[asyncio.Task[None]] = []
    try:
        await service.start()
        if ops is not None:
            try:
                await ops.start()
            except OSError as error:
                log.error("cannot serve /healthz and /metrics on %s:%d (%s): set [metrics] port "
                          "(IMAGINE_METRICS__PORT) to a free port, or 0 to turn them off",
                          settings.metrics.host, settings.metrics.port, error.strerror)
                return 1
        if not service.router.backends:
            log.warning("no image service configured: set SEGMIND_API_KEY or [worker] url")
        for name in chats:
            board.expect(name)
            tasks.append(asyncio.create_task(_run_chat(name, service, settings, board)))
        if not chats:
            from bot.chat.console import run_console

            log.info("no chat credentials (DISCORD_TOKEN, SLACK_BOT_TOKEN): console chat")
            tasks.append(asyncio.create_task(run_console(service)))
        chatting: asyncio.Future[Any] = asyncio.gather(*tasks)
        stop: asyncio.Future[Any] = asyncio.ensure_future(signals.requested.wait())
        await asyncio.wait([chatting, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if chatting.done():
            chatting.result()  # an adapter that failed ends the run with its error
        return 0
    finally:
        # Chat stays connected while running jobs finish, so their results still arrive.
        await service.stop(settings.dispatch.drain_s, deliver_s=STOP_DELIVERY_S)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if ops is not None:
            await ops.close()
        signals.uninstall()


async def _run_chat(name: str, service: ImagineService, settings: Settings,
                    board: HealthBoard) -> None:
    if name == "discord":
        from bot.chat.discord import run_discord

        await run_discord(service, settings, board)
    else:
        from bot.chat.slack import run_slack

        await run_slack(service, settings, board)


def _log_to_file(path: Path) -> None:
    """Everything to `path`, and only warnings and errors to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(logging.WARNING)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(to_file)


async def _quota(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import run_command
    from bot.core.admin import parse_admin, run_admin

    async def work(service: ImagineService) -> int:
        command = parse_admin([args.action, *args.words])
        scope = args.scope or f"cli:user:{command.user_id or 'local'}"
        print(await run_admin(service.quota, scope, command))
        return 0

    return await run_command(settings, work)


async def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import run_command
    from bot.chat.render import credits_text
    from bot.core.jobs import Actor

    async def work(service: ImagineService) -> int:
        job = await service.cancel(Actor("cli", "local", is_admin=True), args.job_id)
        print(f"Job {job.id} cancelled; its owner got {credits_text(job.cost)} back.")
        return 0

    return await run_command(settings, work)


async def _history(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import run_command
    from bot.chat.render import history_lines
    from bot.chat.settings_cli import actor_for

    if not 1 <= args.limit <= 1000:
        print("--limit must be between 1 and 1000.", file=sys.stderr)
        return 2

    async def work(service: ImagineService) -> int:
        actor = actor_for(args.scope, args.user, workspace=False)
        print("\n".join(history_lines(await service.history(actor, args.limit))))
        return 0

    return await run_command(settings, work)


async def _stats(settings: Settings, args: argparse.Namespace) -> int:
    from bot.chat.stats_cli import run_stats

    return await run_stats(settings, args.since, args.chart, args.csv)


async def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    return await run_doctor(settings)
