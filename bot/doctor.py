"""`imagine-bot doctor`: config, database, backends and chat tokens, checked without printing secrets.

Each check asks the real service (or its loopback fake in tests) and prints one line; a failure
is one plain sentence that names the setting to fix. The exit status is 1 when any check failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx

from bot.app import DB_NAME, build_service
from bot.config import SECRET_ENV, Settings
from bot.core.backend import BackendHealth
from bot.core.service import ImagineService
from bot.store.db import Database

# (ok, what, detail): ok is True (passed), False (failed) or None (nothing to check).
Line = Callable[[bool | None, str, str], None]

# The bot scopes the Slack app manifest in docs/slack.md asks for (oauth_config.scopes.bot); a test
# keeps the two equal.
SLACK_BOT_SCOPES = ("commands", "chat:write", "files:write", "app_mentions:read", "users:read",
                    "im:history")

# Slack errors that mean "this token does not work": it was revoked, or it is not a real token.
_DEAD_TOKEN_ERRORS = frozenset({"invalid_auth", "token_revoked", "token_expired", "not_authed",
                                "account_inactive"})

HTTP_TIMEOUT_S = 10.0
MIN_SCRUBBED_LEN = 8


async def run_doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print one line per check; exit status 1 when any check failed."""
    failures = 0
    # Scrubbing a very short "secret" would mangle every line (a 1-letter test token), and no
    # real token is that short.
    secrets = [value for field in SECRET_ENV
               if len(value := settings.secret(field) or "") >= MIN_SCRUBBED_LEN]

    def line(ok: bool | None, what: str, detail: str) -> None:
        nonlocal failures
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
        failures += ok is False
        text = f"[{mark}] {what}: {detail}"
        for secret in secrets:  # belt and braces: a quoted answer must never leak a secret
            text = text.replace(secret, "***")
        print(text, file=out, flush=True)

    line(True, "config", f"models {', '.join(settings.catalog.allowed_models)}; routing "
         + ", ".join(f"{m}->{settings.routing.route(m)}" for m in settings.catalog.allowed_models))
    for field, env in SECRET_ENV.items():
        line(None, env, "set" if settings.secret(field) else "not set")

    service = await build_service(settings)
    try:
        database = await Database(settings.storage.path / DB_NAME).open()
        try:
            mode = await database.journal_mode()
        finally:
            await database.close()
        line(mode == "wal", "database", f"{database.path} (journal {mode})")
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            await _check_backends(settings, service, client, line)
            await _check_budget(service, line)
            await _check_discord(settings, client, line)
            await _check_slack(settings, client, line)
    finally:
        await service.stop()
    return 1 if failures else 0


# --- image backends -------------------------------------------------------------------------


async def _check_backends(settings: Settings, service: ImagineService,
                          client: httpx.AsyncClient, line: Line) -> None:
    """Segmind's key and credits, and the worker's /health, one line each."""
    if not service.router.backends:
        line(False, "backends", "no image service is configured: set SEGMIND_API_KEY or "
             "[worker] url.")
    for health in await service.router.check_health():
        if health.name == "segmind":
            ok, detail = await _check_segmind(settings, client)
        elif health.name == "worker":
            ok, detail = _worker_sentence(settings, health)
        else:
            ok, detail = health.ok, health.detail
        if ok:
            detail += await _credits(service, health)
        line(ok, f"backend {health.name}", detail)


async def _check_segmind(settings: Settings, client: httpx.AsyncClient) -> tuple[bool | None, str]:
    """Whether Segmind accepts SEGMIND_API_KEY, asked with a request that costs nothing.

    Segmind has no endpoint for checking a key, and the backend's own health only repeats what
    earlier calls showed (nothing, in a fresh process). So POST an empty body to a model: the
    key is checked first (401/403 when refused), then the body, which has no prompt and is
    refused (400) before anything runs or is charged.
    """
    models = settings.catalog.allowed_models
    model = next((m for m in models if settings.routing.route(m) != "worker"), models[0])
    url = f"{settings.segmind.base_url.rstrip('/')}/{model}"
    try:
        answer = await client.post(url, json={},
                                   headers={"x-api-key": settings.secret("segmind_api_key") or ""})
    except httpx.HTTPError as error:
        return False, (f"Segmind at {_shown(url)} is unreachable ({type(error).__name__}); "
                       "check the network and [segmind] base_url.")
    status = answer.status_code
    if status in (401, 403):
        return False, (f"SEGMIND_API_KEY was rejected by Segmind (HTTP {status}): it is wrong "
                       "or was revoked; copy a current key from your Segmind account.")
    if status == 406:
        return False, ("Segmind answered 406: the account behind SEGMIND_API_KEY is out of "
                       "credits; add credits to keep generating.")
    if status in (200, 400, 422):
        return True, "SEGMIND_API_KEY accepted"
    if status == 404:
        return False, (f"Segmind has no {model} at {_shown(url)} (HTTP 404); check [segmind] "
                       "base_url.")
    if status == 429:
        return None, "Segmind is rate limiting (HTTP 429), so the key was not checked; try again."
    return False, f"Segmind answered HTTP {status}; it may be having trouble, try again later."


def _worker_sentence(settings: Settings, health: BackendHealth) -> tuple[bool, str]:
    """The worker's /health result as a sentence that names its URL and what to do."""
    where = f"the worker at {_shown(settings.worker.url)}"
    detail = health.detail
    if health.ok:
        return True, f"{where}: {detail}"
    # The backend words its details as "unreachable (ConnectError)" and "answered 401: ...";
    # anything else is quoted as it is.
    if detail.startswith("unreachable"):
        cause = detail.removeprefix("unreachable").strip()
        return False, (f"{where} is unreachable{' ' + cause if cause else ''}: start it with "
                       "`imagine-bot worker` or fix [worker] url.")
    if detail.startswith(("answered 401", "answered 403")):
        status = detail.split()[1].rstrip(":")
        return False, (f"{where} refused IMAGINE_WORKER_API_KEY (HTTP {status}): set the same "
                       "key for the bot and the worker.")
    return False, f"{where} is not healthy: {detail}."


async def _credits(service: ImagineService, health: BackendHealth) -> str:
    """The service's credits: as just seen, or as last seen by the running bot."""
    if health.remaining_credits is not None:
        return f"; {health.remaining_credits:g} credits left"
    seen = await service.jobs.last_credits(health.name)
    if seen is None:
        return "; credits not known yet (read from the first generated image)"
    when = datetime.fromtimestamp(seen[1], UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"; {seen[0]:g} credits left as of {when}"


async def _check_budget(service: ImagineService, line: Line) -> None:
    """The period's spend against [budget] limit, then every admin alert that holds now (the
    ones the bot posts to the admin channels; they do not fail the check)."""
    status = await service.budget_status()
    if status is not None:
        # A used-up budget is the limit working, not a fault: it is shown, it does not fail.
        line(True if status.limit > 0 and not status.used_up else None, "budget",
             status.sentence())
    if service.alerts is not None:
        for alert in await service.alerts.current():
            line(None, "ALERT", alert.text)


# --- Discord --------------------------------------------------------------------------------


async def _check_discord(settings: Settings, client: httpx.AsyncClient, line: Line) -> None:
    """The bot token (GET /users/@me), then the slash commands registered with Discord."""
    token = settings.secret("discord_token")
    if not token:
        line(None, "discord", "DISCORD_TOKEN not set; the Discord adapter will not start")
        return
    api = settings.discord.api_base_url.rstrip("/")
    headers = {"Authorization": f"Bot {token}"}
    try:
        answer = await client.get(f"{api}/users/@me", headers=headers)
    except httpx.HTTPError as error:
        line(False, "discord", f"Discord at {_shown(api)} is unreachable "
             f"({type(error).__name__}); check the network and [discord] api_base_url.")
        return
    if answer.status_code == 401:
        line(False, "discord", "DISCORD_TOKEN was rejected by Discord (HTTP 401): it was reset "
             "or is wrong; copy a new one from the Developer Portal (Bot → Reset Token).")
        return
    user = _json_object(answer)
    if answer.status_code != 200 or user is None:
        line(False, "discord", f"Discord answered HTTP {answer.status_code} to the token "
             "check; try again later.")
        return
    line(True, "discord", f"DISCORD_TOKEN is valid for the bot {user.get('username', '?')}")
    await _check_discord_commands(settings, client, api, headers, user, line)


async def _check_discord_commands(settings: Settings, client: httpx.AsyncClient, api: str,
                                  headers: dict[str, str], user: dict[str, Any],
                                  line: Line) -> None:
    """How many slash commands Discord holds, globally and in each [discord] guild_ids."""
    what = "discord commands"
    try:
        app = await client.get(f"{api}/applications/@me", headers=headers)
        # The bot user's id is the application's id for every app made since 2021.
        app_id = (_json_object(app) or {}).get("id") or user.get("id")
        places = [("global", f"{api}/applications/{app_id}/commands")] + [
            (f"server {gid}", f"{api}/applications/{app_id}/guilds/{gid}/commands")
            for gid in settings.discord.guild_ids
        ]
        counted: list[str] = []
        total = 0
        for place, url in places:
            answer = await client.get(url, headers=headers)
            commands = answer.json() if answer.status_code == 200 else None
            if isinstance(commands, list):
                names = sorted(str(c.get("name", "?")) for c in commands if isinstance(c, dict))
                total += len(names)
                counted.append(f"{place}: {', '.join('/' + n for n in names) or 'none'}")
            elif answer.status_code == 403:
                line(False, what, f"Discord refused to show the commands in {place} (HTTP 403): "
                     "invite the bot there with the bot and applications.commands scopes, or "
                     "remove that id from [discord] guild_ids.")
            else:
                line(False, what, f"Discord answered HTTP {answer.status_code} when asked for "
                     f"the {place} commands; try again later.")
    except (httpx.HTTPError, ValueError) as error:
        line(False, what, f"Discord did not answer the commands check ({type(error).__name__}); "
             "try again later.")
        return
    if not counted:
        return
    if total == 0:
        line(None, what, "none registered yet; the bot registers its slash commands each time "
             "it starts")
    else:
        line(True, what, f"{total} registered ({'; '.join(counted)})")


# --- Slack ----------------------------------------------------------------------------------


async def _check_slack(settings: Settings, client: httpx.AsyncClient, line: Line) -> None:
    """The bot token (auth.test) and its scopes, and the app token (apps.connections.open)."""
    token = settings.secret("slack_bot_token")
    if not token:
        line(None, "slack", "SLACK_BOT_TOKEN not set; the Slack adapter will not start")
        return
    api = settings.slack.api_base_url.rstrip("/")
    answer = await _slack_post(client, f"{api}/auth.test", token)
    if isinstance(answer, str):
        line(False, "slack", answer)
    elif not answer[0].get("ok"):
        error = str(answer[0].get("error", "no error given"))
        line(False, "slack", f"SLACK_BOT_TOKEN was rejected by Slack ({error}): "
             + ("it was revoked or is wrong; reinstall the app and copy the Bot User OAuth "
                "Token (xoxb-…)." if error in _DEAD_TOKEN_ERRORS else "see Slack's auth.test page."))
    else:
        body, response_headers = answer
        line(True, "slack", f"SLACK_BOT_TOKEN is valid for {body.get('user', '?')} in "
             f"{body.get('team', '?')}")
        _check_slack_scopes(response_headers, line)

    app_token = settings.secret("slack_app_token")
    mode = "Socket Mode" if app_token else (
        "HTTP mode" if settings.secret("slack_signing_secret") else None)
    line(mode is not None, "slack mode",
         mode or "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
    if app_token:
        await _check_slack_app_token(client, api, app_token, line)


def _check_slack_scopes(headers: httpx.Headers, line: Line) -> None:
    """Compare the scopes Slack says the bot token has with those the manifest asks for."""
    granted = headers.get("x-oauth-scopes")
    if granted is None:
        line(None, "slack scopes", "Slack did not say which scopes the bot token has; not checked")
        return
    have = {s.strip() for s in granted.split(",") if s.strip()}
    missing = [s for s in SLACK_BOT_SCOPES if s not in have]
    if missing:
        line(False, "slack scopes", f"the bot token lacks {', '.join(missing)}, which the app "
             "manifest asks for: add them under OAuth & Permissions → Bot Token Scopes and "
             "reinstall the app.")
    else:
        line(True, "slack scopes", f"the bot token has {', '.join(SLACK_BOT_SCOPES)}")


async def _check_slack_app_token(client: httpx.AsyncClient, api: str, app_token: str,
                                 line: Line) -> None:
    """Socket Mode: ask for a connection URL with the app token, as the adapter does at start.

    The URL is never opened, so a bot already running keeps its own connections.
    """
    what = "slack app token"
    answer = await _slack_post(client, f"{api}/apps.connections.open", app_token)
    if isinstance(answer, str):
        line(False, what, answer)
        return
    body = answer[0]
    if body.get("ok"):
        line(True, what, "SLACK_APP_TOKEN opens Socket Mode connections")
        return
    error = str(body.get("error", "no error given"))
    if error in _DEAD_TOKEN_ERRORS:
        why = ("it was revoked or is wrong; generate a new app-level token with the "
               "connections:write scope (Basic Information → App-Level Tokens).")
    elif error == "not_allowed_token_type":
        why = "it is not an app-level token; use the xapp-… token, not the bot token."
    elif error == "missing_scope":
        why = "the token lacks the connections:write scope; generate one that has it."
    else:
        why = "see Slack's apps.connections.open page."
    line(False, what, f"SLACK_APP_TOKEN was rejected by Slack ({error}): {why}")


async def _slack_post(client: httpx.AsyncClient, url: str,
                      token: str) -> tuple[dict[str, Any], httpx.Headers] | str:
    """Slack's JSON answer and its headers, or a sentence saying why there is none."""
    try:
        answer = await client.post(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        return (f"Slack at {_shown(url)} is unreachable ({type(error).__name__}); check the "
                "network and [slack] api_base_url.")
    body = _json_object(answer)
    if body is None:
        return (f"Slack answered HTTP {answer.status_code} with something that is not Slack's "
                f"JSON at {_shown(url)}; check [slack] api_base_url.")
    return body, answer.headers


# --- helpers --------------------------------------------------------------------------------


def _json_object(answer: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when the body is not one (an HTML error page)."""
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _shown(url: str) -> str:
    """A URL fit to print: any user:password@ part is dropped."""
    try:
        return str(httpx.URL(url).copy_with(userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(the configured URL)"
