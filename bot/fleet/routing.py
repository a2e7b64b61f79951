"""Which replica of a model takes a request: the least busy of all of them.

Serve's default router compares two replicas drawn at random. With three or more, that
sometimes queues a request behind another while a replica is idle: in bench/fleet.py, at 4
replicas, the overhead p99 was about L (one image's time) with it and 126 ms with this router.
A replica here is one GPU making one batch at a time, so the fleet wants every request on the
replica with the fewest requests in it, of all of them. Serve's router keeps that count per
replica (it adds a request when it sends one and takes it off when the answer comes), so this
router orders every replica by that count and Serve sends the request to the first that accepts.
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
    """A Serve request router: the replicas in order of the requests Serve knows they hold."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """One replica per rank, least busy first; Serve takes the first that accepts.

        A replica whose count Serve does not know (new, or its entry expired) comes first, as
        if idle: Serve asks it for its queue before sending. (Offered together in one rank,
        Serve would prefer any replica it knows over one it must ask.) Ties are shuffled so
        that equally busy replicas share the work.
        """
        replicas = list(candidate_replicas)
        random.shuffle(replicas)
        known = self.replica_queue_len_cache
        replicas.sort(key=lambda replica: known.get(replica.replica_id) or 0)
        return [[replica] for replica in replicas]
