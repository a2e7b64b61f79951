"""`imagine-bot doctor`: config, database, backends and chat tokens, checked without printing secrets."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

import httpx

from bot.app import build_service
from bot.config import SECRET_ENV, Settings
from bot.core.backend import BackendHealth
from bot.core.service import ImagineService


async def run_doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print one line per check; exit status 1 when any check failed."""
    failures = 0

    def line(ok: bool | None, what: str, detail: str) -> None:
        nonlocal failures
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
        failures += ok is False
        print(f"[{mark}] {what}: {detail}", file=out, flush=True)

    line(True, "config", f"models {', '.join(settings.catalog.allowed_models)}; routing "
         + ", ".join(f"{m}->{settings.routing.route(m)}" for m in settings.catalog.allowed_models))
    for field, env in SECRET_ENV.items():
        line(None, env, "set" if settings.secret(field) else "not set")

    service = await build_service(settings)
    try:
        mode = await service.db.journal_mode()
        line(mode == "wal", "database", f"{service.db.path} (journal {mode})")
        if not service.router.backends:
            line(False, "backends", "none configured: set SEGMIND_API_KEY or [worker] url")
        for health in await service.router.check_health():
            line(health.ok, f"backend {health.name}",
                 health.detail + await _credits(service, health))
        async with httpx.AsyncClient(timeout=10) as client:
            await _check_discord(settings, client, line)
            await _check_slack(settings, client, line)
    finally:
        await service.stop()
    return 1 if failures else 0


async def _credits(service: ImagineService, health: BackendHealth) -> str:
    """The service's credits: as just seen, or as last seen by the running bot."""
    if health.remaining_credits is not None:
        return f"; {health.remaining_credits:g} credits left"
    seen = await service.jobs.last_credits(health.name)
    if seen is None:
        return "; credits not known yet (read from the first generated image)"
    when = datetime.fromtimestamp(seen[1], UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"; {seen[0]:g} credits left as of {when}"


async def _check_discord(settings: Settings, client: httpx.AsyncClient, line) -> None:
    token = settings.secret("discord_token")
    if not token:
        line(None, "discord", "DISCORD_TOKEN not set; the Discord adapter will not start")
        return
    url = settings.discord.api_base_url.rstrip("/") + "/users/@me"
    try:
        answer = await client.get(url, headers={"Authorization": f"Bot {token}"})
    except httpx.HTTPError as error:
        line(False, "discord", f"{url} unreachable ({type(error).__name__})")
        return
    if answer.status_code == 200:
        line(True, "discord", f"token valid for {answer.json().get('username', '?')}")
    else:
        line(False, "discord", f"token rejected (HTTP {answer.status_code})")


async def _check_slack(settings: Settings, client: httpx.AsyncClient, line) -> None:
    token = settings.secret("slack_bot_token")
    if not token:
        line(None, "slack", "SLACK_BOT_TOKEN not set; the Slack adapter will not start")
        return
    url = settings.slack.api_base_url.rstrip("/") + "/auth.test"
    try:
        answer = await client.post(url, headers={"Authorization": f"Bearer {token}"})
        body = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        line(False, "slack", f"{url} unreachable ({type(error).__name__})")
        return
    if body.get("ok"):
        line(True, "slack", f"token valid for {body.get('user', '?')} in {body.get('team', '?')}")
    else:
        line(False, "slack", f"token rejected ({body.get('error', answer.status_code)})")
    mode = "Socket Mode" if settings.secret("slack_app_token") else (
        "HTTP mode" if settings.secret("slack_signing_secret") else None)
    line(mode is not None, "slack mode",
         mode or "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
