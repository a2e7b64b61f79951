"""Reading a bot's SQLite file from outside the bot: jobs, the ledger and the quota accounts."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DB_NAME = "imagine.db"


def rows(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """The rows of one query, as dicts (a short-lived connection, so a live bot is not held up)."""
    with closing(sqlite3.connect(db_path, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params).fetchall()]


def scalar(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of a query."""
    found = rows(db_path, sql, params)
    return next(iter(found[0].values())) if found else None


@dataclass
class Books:
    """What the database says about every job and every credit."""

    jobs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)  # still queued or running
    undelivered: list[str] = field(default_factory=list)  # finished, never posted
    unbalanced: list[str] = field(default_factory=list)  # reserved != committed + refunded
    failed_not_refunded: list[str] = field(default_factory=list)
    double_settled: list[str] = field(default_factory=list)  # committed or refunded twice
    used_mismatch: list[str] = field(default_factory=list)  # quota 'used' != committed spend

    @property
    def balanced(self) -> bool:
        """Every job settled exactly once, nothing stuck, every account equals its spend."""
        return not (self.unfinished or self.unbalanced or self.failed_not_refunded
                    or self.double_settled or self.used_mismatch)


def check_books(db_path: Path) -> Books:
    """Count states and check the ledger job by job: reserve = commit + refund, each at most once."""
    books = Books()
    jobs = rows(db_path, "SELECT id, state, cost, refunded, delivered, scope, user_id FROM jobs")
    books.jobs = len(jobs)
    for job in jobs:
        books.states[job["state"]] = books.states.get(job["state"], 0) + 1
    books.unfinished = [j["id"] for j in jobs if j["state"] in ("queued", "running")]
    books.undelivered = [j["id"] for j in jobs
                         if j["state"] not in ("queued", "running") and not j["delivered"]]
    books.failed_not_refunded = [j["id"] for j in jobs
                                 if j["state"] in ("failed", "cancelled") and not j["refunded"]]
    ledger = rows(db_path, "SELECT job_id, kind, credits FROM ledger WHERE job_id IS NOT NULL")
    per_job: dict[str, dict[str, list[int]]] = {}
    for entry in ledger:
        per_job.setdefault(entry["job_id"], {}).setdefault(entry["kind"], []).append(
            entry["credits"])
    for job in jobs:
        kinds = per_job.get(job["id"], {})
        reserved = sum(kinds.get("reserve", []))
        settled = sum(kinds.get("commit", [])) + sum(kinds.get("refund", []))
        if job["state"] not in ("queued", "running") and reserved != settled:
            books.unbalanced.append(job["id"])
        if len(kinds.get("reserve", [])) != 1 or (
                len(kinds.get("commit", [])) + len(kinds.get("refund", [])) > 1):
            books.double_settled.append(job["id"])
    spent: dict[tuple[str, str], int] = {}
    for job in jobs:
        if job["state"] == "done":
            key = (job["scope"], job["user_id"])
            spent[key] = spent.get(key, 0) + job["cost"]
    for account in rows(db_path, "SELECT scope, user_id, used, granted FROM quota_accounts"):
        key = (account["scope"], account["user_id"])
        held = sum(j["cost"] for j in jobs
                   if (j["scope"], j["user_id"]) == key and j["state"] in ("queued", "running"))
        if account["used"] + 0 != spent.get(key, 0) + held:
            books.used_mismatch.append(f"{key}: used {account['used']}, spent {spent.get(key, 0)}")
    return books


def job_targets(db_path: Path) -> dict[str, dict[str, Any]]:
    """job id -> its row, with the reply target decoded (interaction token, channel, user)."""
    out = {}
    for row in rows(db_path, "SELECT * FROM jobs"):
        row["target"] = json.loads(row["target"])
        state = row["target"].get("adapter_state")  # the adapter's own JSON, e.g. Discord's token
        row["target"]["adapter_state"] = json.loads(state) if state else {}
        row["request"] = json.loads(row["request"])
        out[row["id"]] = row
    return out
