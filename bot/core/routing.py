"""Which backend serves a model: segmind, the worker, or auto (the worker while it is healthy)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from bot.core.backend import BackendHealth, ImageBackend
from bot.core.errors import NoBackendConfigured
from bot.core.request import ImagineRequest

log = logging.getLogger(__name__)


class Router:
    """Picks a backend per model from the [routing] table and the worker's last health check."""

    def __init__(
        self,
        backends: Mapping[str, ImageBackend],
        routes: Mapping[str, str],
        *,
        health_ttl_s: float = 30.0,
        overflow_after_s: float | None = None,
    ) -> None:
        self.backends = dict(backends)
        self.routes = dict(routes)
        self.health_ttl_s = health_ttl_s
        self._health: dict[str, tuple[float, bool]] = {}
        # [routing] overflow_after_s: an auto job whose wait on the worker is estimated longer
        # goes to Segmind. The estimate comes from the dispatcher, built after the router
        # (bot/app.py sets it), as it knows each backend's queue and measured speed.
        self.overflow_after_s = overflow_after_s
        self.wait_estimate: Callable[[str], float] | None = None

    def pick(self, request: ImagineRequest) -> ImageBackend:
        """The backend for this request now, or NoBackendConfigured saying what to set.

        auto: the worker while its health check passes and it offers the request's sampler and
        scheduler; Segmind otherwise (or the worker still, when Segmind is not configured, so
        the user hears the worker's own refusal)."""
        model = request.model
        route = self.routes.get(model, "auto")
        if route == "auto":
            worker = self.backends.get("worker")
            segmind = self.backends.get("segmind")
            if (worker is not None and worker.serves(model) and self._healthy("worker")
                    and (worker.accepts(request) or segmind is None)
                    and not self._overflows(request, segmind)):
                return worker
            route = "segmind"
        backend = self.backends.get(route)
        if backend is None or not backend.serves(model):
            raise NoBackendConfigured(
                f"No image service is configured for {model}: an admin must set SEGMIND_API_KEY"
                f" or a worker URL ([worker] url) serving it. Nothing was charged."
            )
        return backend

    def get(self, name: str) -> ImageBackend | None:
        """The backend called `name`, if configured."""
        return self.backends.get(name)

    def _overflows(self, request: ImagineRequest, segmind: ImageBackend | None) -> bool:
        """Whether an auto job should go to Segmind because the worker's queue is too long."""
        if (self.overflow_after_s is None or self.wait_estimate is None or segmind is None
                or not segmind.serves(request.model) or not segmind.accepts(request)):
            return False
        wait_s = self.wait_estimate("worker")
        if wait_s <= self.overflow_after_s:
            return False
        log.info("overflow: %s goes to %s, the worker's estimated wait is %.0f s (over %g s)",
                 request.model, segmind.name, wait_s, self.overflow_after_s)
        return True

    def instead_of_paid(self, request: ImagineRequest) -> ImageBackend | None:
        """For an auto-routed model whose Segmind job the budget refused: the worker, when it
        serves the model and can run the request (even while unhealthy: the job then waits
        or fails with a refund, as any worker job does); None otherwise."""
        worker = self.backends.get("worker")
        if self.routes.get(request.model, "auto") != "auto" or worker is None:
            return None
        return worker if worker.serves(request.model) and worker.accepts(request) else None

    async def check_health(self) -> list[BackendHealth]:
        """Ask every backend how it is; auto routing uses the worker's answer."""
        results = []
        for name, backend in self.backends.items():
            try:
                health = await backend.health()
            except Exception as error:  # a health probe must never take the bot down
                health = BackendHealth(name, False, f"health check failed: {type(error).__name__}")
            self._health[name] = (time.monotonic(), health.ok)
            results.append(health)
        return results

    def _healthy(self, name: str) -> bool:
        seen = self._health.get(name)
        return bool(seen and seen[1] and time.monotonic() - seen[0] < self.health_ttl_s * 3)

    async def aclose(self) -> None:
        """Close every backend's connections."""
        for backend in self.backends.values():
            await backend.aclose()
