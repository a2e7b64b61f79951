"""Which replica of a model takes a request: the least busy of all of them.

Serve's default router compares two replicas drawn at random. With three or more, that
sometimes queues a request behind another while a replica is idle: in bench/fleet.py, at 4
replicas, the overhead p99 was about L (one image's time) with it and 126 ms with this router.
A replica here is one GPU making one batch at a time, so the fleet wants every request on the
replica with the fewest requests in it, of all of them. Serve's router keeps that count per
replica (it adds a request when it sends one and takes it off when the answer comes), so this
router only offers every replica as a candidate and Serve picks the one with the shortest queue.
"""

from __future__ import annotations

import random

from ray.serve.request_router import (
    FIFOMixin,
    PendingRequest,
    RequestRouter,
    RunningReplica,
)


class LeastBusyRouter(FIFOMixin, RequestRouter):
    """A Serve request router: every live replica is a candidate; the least busy one wins."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """One rank holding every replica, shuffled so that equally busy ones share the work."""
        replicas = list(candidate_replicas)
        random.shuffle(replicas)
        return [replicas] if replicas else []
