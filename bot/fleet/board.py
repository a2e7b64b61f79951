"""The board: where every replica reports what it is and does, for the fleet's /health.

Serve's handles reach one replica per call, never all of them, so the replicas report here
instead: at start, when a request comes or goes, and every `heartbeat_s`. The board is a
plain Ray actor created by the ingress on its machine (it lives and dies with it; a board that
is gone all the same is replaced by the next /health) and found by name; a report older than a
few heartbeats is a replica that is gone (killed, or scaled down).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

BOARD_NAMESPACE = "imagine-fleet"
MISSED_HEARTBEATS = 3  # a replica silent for this many heartbeats is counted out


def board_name(app_name: str) -> str:
    """The board's actor name for a Serve application."""
    return f"imagine-fleet-board:{app_name}"


@dataclass(frozen=True)
class ReplicaReport:
    """One replica as it last described itself."""

    replica: str  # "<model>/<Serve's replica tag>", as sent in x-imagine-replica
    model: str
    pid: int
    node: str
    device: str
    dtype: str
    ongoing: int  # requests inside the replica: waiting for a batch or running in one
    images: int
    at: float  # time.time() of the report

    def public(self) -> dict[str, object]:
        """The report as /health lists it."""
        return {"replica": self.replica, "model": self.model, "node": self.node,
                "pid": self.pid, "device": self.device, "ongoing": self.ongoing,
                "images": self.images}


class FleetBoard:
    """The latest report of every replica (run as a Ray actor; see app.py)."""

    def __init__(self) -> None:
        self._reports: dict[str, ReplicaReport] = {}

    def report(self, report: ReplicaReport) -> None:
        """Keep a replica's newest report."""
        self._reports[report.replica] = report

    def leave(self, replica: str) -> None:
        """Forget a replica that shut down cleanly."""
        self._reports.pop(replica, None)

    def snapshot(self, max_age_s: float) -> list[ReplicaReport]:
        """The replicas heard from within max_age_s, by name; older ones are dropped."""
        now = time.time()
        self._reports = {k: r for k, r in self._reports.items() if now - r.at <= max_age_s}
        return sorted(self._reports.values(), key=lambda r: r.replica)
