"""GET /healthz and GET /metrics on [metrics] host:port, for probes and Prometheus."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bot.core.service import ImagineService
from bot.ops.health import HealthBoard
from bot.ops.metrics import CHAT_UP, QUEUE

log = logging.getLogger(__name__)

DB_CHECK_TIMEOUT_S = 2.0


class OpsServer:
    """A small HTTP server beside the chat adapters; `await start()`, `await close()`."""

    def __init__(self, service: ImagineService, board: HealthBoard, *, host: str,
                 port: int) -> None:
        self.service = service
        self.board = board
        self.host = host
        self.port = port  # 0 picks a free port (tests); the bound one is stored by start()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """http://host:port of the running server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        for address in self._runner.addresses:
            self.port = address[1]
            break
        log.info("health and metrics on %s/healthz and /metrics", self.url)

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        problems = dict(await self.board.problems())
        database = await self._database_problem()
        if database:
            problems["database"] = database
        if self.service.stopping:
            problems["bot"] = "stopping"
        body = {"ok": not problems, "problems": problems,
                "queue": self.service.dispatcher.queue_depth(),
                "running": self.service.dispatcher.running()}
        return web.json_response(body, status=503 if problems else 200)

    async def _database_problem(self) -> str | None:
        """None when a write to the database succeeds (the heartbeat), else why not."""
        try:
            await asyncio.wait_for(self.service.jobs.heartbeat(), DB_CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"no write within {DB_CHECK_TIMEOUT_S:g} s (locked by another process?)"
        except Exception as error:
            return f"not writable ({type(error).__name__}: {error})"
        return None

    async def _metrics(self, request: web.Request) -> web.Response:
        dispatcher = self.service.dispatcher
        for backend, waiting in dispatcher.queue_depth().items():
            QUEUE.labels(backend, "waiting").set(waiting)
        for backend, running in dispatcher.running().items():
            QUEUE.labels(backend, "running").set(running)
        for platform, up in (await self.board.connected()).items():
            CHAT_UP.labels(platform).set(1 if up else 0)
        return web.Response(body=generate_latest(REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
