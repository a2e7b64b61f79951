"""SlackAdapter: slack-bolt's AsyncApp over Socket Mode (SLACK_APP_TOKEN) or HTTP (signing secret)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import admin_alerts
from bot.chat.slack import _alerts
from bot.chat.slack._delivery import Delivery
from bot.chat.slack._direct import DirectMessages
from bot.chat.slack._handlers import Handlers
from bot.chat.slack._people import People
from bot.chat.slack._stats import StatsCommand
from bot.config import ConfigError, Settings
from bot.core.service import ImagineService
from bot.ops.health import HealthBoard

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class SlackAdapter:
    """Connects one Slack workspace to the ImagineService; start() it, close() it."""

    def __init__(
        self,
        service: ImagineService,
        settings: Settings,
        *,
        http_host: str = "0.0.0.0",  # Slack must reach the HTTP endpoint
        http_port: int | None = None,
        update_interval_s: float = 2.0,
        rate_limit_retries: int = 3,
        ping_interval_s: float = 10.0,
    ) -> None:
        self.service = service
        self.settings = settings
        self._bot_token = settings.secret("slack_bot_token")
        self._app_token = settings.secret("slack_app_token")
        self._signing_secret = settings.secret("slack_signing_secret")
        if not self._bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set: the Slack bot needs its xoxb- token.")
        if not self._app_token and not self._signing_secret:
            raise ConfigError("Set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET "
                              "(HTTP mode) for the Slack bot.")
        self.mode = "socket" if self._app_token else "http"
        self.http_host = http_host
        self.http_port = settings.slack.http_port if http_port is None else http_port
        self.update_interval_s = update_interval_s
        self.rate_limit_retries = rate_limit_retries
        self.ping_interval_s = ping_interval_s
        self.client: AsyncWebClient | None = None
        self.app: AsyncApp | None = None
        self._session: aiohttp.ClientSession | None = None
        self._delivery: Delivery | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Connect (Socket Mode) or listen (HTTP), and start showing job events in Slack."""
        self._session = aiohttp.ClientSession()
        self.client = AsyncWebClient(
            token=self._bot_token, base_url=self.settings.slack.api_base_url,
            session=self._session,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=2),
                            AsyncRateLimitErrorRetryHandler(max_retry_count=self.rate_limit_retries)],
        )
        self.app = AsyncApp(
            client=self.client, signing_secret=self._signing_secret or "",
            logger=logging.getLogger("bot.chat.slack.bolt"), name="imagine-bot",
        )
        self._delivery = Delivery(self.client, self.service, interval_s=self.update_interval_s)
        people = People(self.client, self.settings.slack.admin_user_ids)
        handlers = Handlers(self.service, self.client, people, self._delivery)
        DirectMessages(handlers, self.client).register(self.app)  # first: bolt runs the first match
        handlers.register(self.app)
        StatsCommand(self.service, self.client, people, self.settings.slack.admin_channel
                     ).register(self.app)
        self.service.listen("slack", self._delivery.on_event)
        self.admin_alerts = _alerts.attach(self.service, self.client,
                                           self.settings.slack.admin_channel)
        if self.mode == "socket":
            self._socket = AsyncSocketModeHandler(
                self.app, app_token=self._app_token, web_client=self.client,
                ping_interval=self.ping_interval_s)
            await self._socket.connect_async()
            log.info("Slack connected over Socket Mode")
        else:
            web_app = web.Application()
            web_app.router.add_post(EVENTS_PATH, self._handle_http)
            self._runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.http_host, self.http_port)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or []
            if sockets:
                self.http_port = sockets[0].getsockname()[1]
            log.info("Slack HTTP endpoint on %s:%d%s", self.http_host, self.http_port,
                     EVENTS_PATH)

    async def problem(self) -> str | None:
        """None while Slack can reach the bot, else why not (for /healthz)."""
        if self.mode == "http":
            return None if self._runner is not None else "the Slack HTTP endpoint is closed"
        if self._socket is None or not await self._socket.client.is_connected():
            return "the Slack Socket Mode connection is down (reconnecting)"
        return None

    @property
    def events_url(self) -> str:
        """The local URL of the HTTP mode endpoint (Request URL in the app's settings)."""
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "") else self.http_host
        return f"http://{host}:{self.http_port}{EVENTS_PATH}"

    async def _handle_http(self, request: web.Request) -> web.Response:
        if self.app is None:
            return web.Response(status=503)
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def close(self) -> None:
        """Disconnect and stop; unfinished jobs are delivered by the next start()."""
        admin_alerts.detach(self.service, getattr(self, "admin_alerts", None))
        if self._delivery is not None:
            await self._delivery.close()
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None


async def run_slack(service: ImagineService, settings: Settings,
                    health: HealthBoard | None = None) -> None:
    """Run the Slack bot until cancelled."""
    adapter = SlackAdapter(service, settings)
    await adapter.start()
    if health is not None:
        health.report("slack", adapter.problem)
    try:
        await asyncio.Event().wait()
    finally:
        await adapter.close()
