"""A fair queue across users: one user's 20 jobs never hold up another user's one.

Start-time fair queuing with equal weights: each job gets a start tag
S = max(V, the user's previous tag + 1), where V is the tag of the job served last, and jobs
are served by (S, arrival). Users with a backlog are served in rotation (round-robin), and a
user who arrives later starts at V, so they go next instead of behind everyone's backlog.
"""

from __future__ import annotations

import bisect
import itertools


class FairQueue:
    """Waiting jobs in the order they will be served."""

    def __init__(self) -> None:
        self._order: list[tuple[int, int, str]] = []  # (start tag, arrival, job id), sorted
        self._keys: dict[str, tuple[int, int, str]] = {}
        self._next_tag: dict[str, int] = {}  # per user: the tag their next job may start at
        self._virtual = 0
        self._arrival = itertools.count()

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._keys

    def push(self, user: str, job_id: str) -> None:
        """Add a job behind the user's own earlier jobs."""
        if job_id in self._keys:
            return
        tag = max(self._virtual, self._next_tag.get(user, 0))
        self._next_tag[user] = tag + 1
        key = (tag, next(self._arrival), job_id)
        self._keys[job_id] = key
        bisect.insort(self._order, key)

    def pop(self) -> str | None:
        """The next job to serve, or None when empty."""
        if not self._order:
            return None
        tag, _, job_id = self._order.pop(0)
        del self._keys[job_id]
        self._virtual = tag
        return job_id

    def remove(self, job_id: str) -> bool:
        """Take a waiting job out (cancel); False if it is not waiting."""
        key = self._keys.pop(job_id, None)
        if key is None:
            return False
        del self._order[bisect.bisect_left(self._order, key)]
        return True

    def position(self, job_id: str) -> int | None:
        """One job's place (1 = next), or None if it is not waiting."""
        key = self._keys.get(job_id)
        return None if key is None else bisect.bisect_left(self._order, key) + 1

    def positions(self) -> dict[str, int]:
        """Every waiting job's place (1 = next)."""
        return {job_id: place for place, (_, _, job_id) in enumerate(self._order, start=1)}
