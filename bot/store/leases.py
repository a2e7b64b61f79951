"""Which bot processes sharing the database are alive: a row each, and a lock the kernel holds.

Every process that shares the database file runs on one machine (SQLite's WAL needs shared
memory, so it cannot span hosts). So a process proves it is alive the way the kernel can tell
for certain: it holds an exclusive `flock` on a file of its own beside the database, and the
kernel drops that lock the instant the process dies, however it dies. Unlike a pid, the lock
cannot be mistaken for another process: after a container restart the new PID 1 has the dead
one's pid, and on an ordinary host pids are reused, but nobody else ever holds the dead
process's lock. Containers that share the data volume share the lock too (one kernel).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import time
from pathlib import Path

from bot.core.ports import Transaction

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


class ProcessLease:
    """This process's claim on its jobs: a `processes` row plus a held lock file."""

    def __init__(self, db_path: Path, owner: str) -> None:
        self.owner = owner
        self.folder = Path(f"{db_path}-processes")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds its lock."""
        return self._fd is not None

    def acquire(self, conn: Transaction) -> None:
        """Take the lock, then announce this process (the lock first: a row without a held
        lock is taken for a dead process)."""
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path(self.owner), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # our own, fresh name: never held
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
        now = time.time()
        conn.execute(
            "INSERT OR REPLACE INTO processes (id, pid, host, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (self.owner, os.getpid(), socket.gethostname(), now, now),
        )

    def renew(self, conn: Transaction) -> bool:
        """Stamp the heartbeat; False when the row was gone (then it is written again)."""
        renewed = conn.execute("UPDATE processes SET heartbeat_at = ? WHERE id = ?",
                               (time.time(), self.owner)).rowcount == 1
        if not renewed:
            self.acquire(conn)
        return renewed

    def release(self, conn: Transaction) -> None:
        """Give the lease up on a clean stop: remove the row, then the lock and its file."""
        conn.execute("DELETE FROM processes WHERE id = ?", (self.owner,))
        if self._fd is not None:
            self._path(self.owner).unlink(missing_ok=True)
        self.drop()

    def drop(self) -> None:
        """Let go of the lock and nothing else, as the kernel does for a killed process."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def bury_the_dead(self, conn: Transaction) -> list[str]:
        """Delete the rows of processes that are gone (inside the caller's transaction, so
        two claimers never judge the same process); returns their ids."""
        rows = conn.execute("SELECT id FROM processes WHERE id <> ?", (self.owner,)).fetchall()
        gone = [row[0] for row in rows if not self._alive(row[0])]
        for process_id in gone:
            conn.execute("DELETE FROM processes WHERE id = ?", (process_id,))
        return gone

    def _alive(self, process_id: str) -> bool:
        """Whether another process still holds its lock (trying to take it tells)."""
        if not _SAFE_ID.fullmatch(process_id):
            return False  # not a name this code writes: no lock can stand behind it
        path = self._path(process_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False  # a row without a lock file: written by a version before locks
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            path.unlink(missing_ok=True)  # while holding it: nobody else judges it meanwhile
            log.info("bot process %s is gone; its lock was free", process_id)
            return False
        finally:
            os.close(fd)

    def _path(self, process_id: str) -> Path:
        return self.folder / f"{process_id}.lock"
