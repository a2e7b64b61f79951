"""Attaching a platform's admin channel to the service's alerts, the same for every platform."""

from __future__ import annotations

from typing import TypeVar

from bot.core.alerts import AdminAlerts
from bot.core.service import ImagineService

Sink = TypeVar("Sink", bound=AdminAlerts)


def attach(service: ImagineService, sink: Sink | None) -> Sink | None:
    """Register an admin channel's sink with the service's alerts (None: none configured)."""
    if sink is None or service.alerts is None:
        return None
    service.alerts.add(sink)
    service.alerts.nudge()  # an alert raised while no process posted it goes out now
    return sink


def detach(service: ImagineService, sink: AdminAlerts | None) -> None:
    """Stop posting to the admin channel (the adapter is closing)."""
    if sink is not None and service.alerts is not None:
        service.alerts.remove(sink)
