"""Which replica of a model takes a request: the least busy of all of them.

Serve's default router compares two replicas drawn at random. With three or more, that
sometimes queues a request behind another while a replica is idle. A replica here is one GPU
making one batch at a time, so the fleet wants every request on the replica with the fewest
requests in it, of all of them. Serve's router keeps that count per replica (it adds a request
when it sends one and takes it off when the answer comes), so this router orders every replica
by that count and Serve sends the request to the first that accepts.

Serve's count misses two things, which this router makes up for:

- Requests routed at the same moment: Serve counts a request once it is sent, after every
  routing decision of that moment. So the router also counts its own choices until Serve
  confirms them (`on_request_routed`, once the replica has taken the request and told its count).
- A request that has just finished: Serve takes it off a moment after its answer is out, so a
  replica can count one request more than it holds. Between equal totals, the replica with
  fewer unconfirmed choices comes first: its requests are older, so it frees up sooner, and a
  count that is stale is never preferred to one that is certain.

In bench/fleet.py (4 replicas, 4 clients, 80 requests) Serve's router queued 16 requests
behind another while a replica was idle, and this one none (see bench/README.md).
"""

from __future__ import annotations

import random
import time
from typing import Any

from ray.serve.request_router import (
    FIFOMixin,
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

# A choice Serve has not confirmed within this time (its request was cancelled) stops counting.
CHOICE_TTL_S = 2.0


class LeastBusyRouter(FIFOMixin, RequestRouter):
    """A Serve request router: the replicas in order of the requests they hold or will hold."""

    def initialize_state(self, **kwargs: Any) -> None:
        """Start with no choices awaiting Serve's confirmation."""
        # Request id -> (the replica chosen for it, when).
        self._chosen: dict[str, tuple[ReplicaID, float]] = {}

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """One replica per rank, least busy first; Serve takes the first that accepts.

        A replica whose count Serve does not know (new, or its entry expired) counts as idle
        and so comes early: Serve asks it for its queue before sending. (Offered together in
        one rank, Serve would prefer any replica it knows over one it must ask.) Equal
        replicas are shuffled so that they share the work.
        """
        now = time.monotonic()
        self._chosen = {request: choice for request, choice in self._chosen.items()
                        if now - choice[1] < CHOICE_TTL_S}
        unconfirmed: dict[ReplicaID, int] = {}
        for replica_id, _ in self._chosen.values():
            unconfirmed[replica_id] = unconfirmed.get(replica_id, 0) + 1
        known = self.replica_queue_len_cache

        def busy(replica: RunningReplica) -> tuple[int, int]:
            mine = unconfirmed.get(replica.replica_id, 0)
            return (known.get(replica.replica_id) or 0) + mine, mine

        replicas = list(candidate_replicas)
        random.shuffle(replicas)
        replicas.sort(key=busy)
        if pending_request is not None and replicas:
            self._chosen[pending_request.metadata.internal_request_id] = (
                replicas[0].replica_id, now)
        return [[replica] for replica in replicas]

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any
    ) -> None:
        """The replica took the request and Serve has its count: stop counting the choice."""
        self._chosen.pop(pending_request.metadata.internal_request_id, None)
