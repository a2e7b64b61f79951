"""A replica killed mid-request: 503 with a sentence, which the bot's retry sends again.

These run after every other fleet test (conftest orders them): each kills one of the two
replicas for real (SIGKILL to its process, found through /health), and Ray only replaces it
after a while.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.conftest import KILLS_A_REPLICA
from tests.fleet.support import API_KEY, SLOW, SMALL, Fleet, poll
from tests.helpers import env_without_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kills_a_replica
assert KILLS_A_REPLICA == "kills_a_replica"


def bot_env(data: Path, fleet: Fleet) -> dict[str, str]:
    """A bot process pointed at the fleet alone, with quick retries."""
    env = env_without_settings()
    env.update({
        "IMAGINE_CONFIG": str(data / "absent.toml"),
        "IMAGINE_STORAGE__PATH": str(data),
        "IMAGINE_METRICS__PORT": "0",
        "IMAGINE_WORKER__URL": fleet.url,
        "IMAGINE_WORKER_API_KEY": API_KEY,
        "IMAGINE_ROUTING__FLUX_SCHNELL": "worker",
        "IMAGINE_DISPATCH__BACKOFF_BASE_S": "0.2",
        "IMAGINE_DISPATCH__MAX_RETRIES": "5",
    })
    return env


def ledger(database: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT job_id, kind, credits FROM ledger ORDER BY id").fetchall()


def test_the_bots_retry_resends_a_job_whose_replica_died_and_charges_it_once(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.wait_for_replicas(2)
    out = tmp_path / "out"
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "imagine", "a lighthouse --w 2048 --h 2048 --steps 8",
         "--model", "flux-schnell", "--seed", "5", "--out", str(out)],
        cwd=ROOT, env=bot_env(tmp_path / "data", fleet), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        os.kill(fleet.busy_replica()["pid"], signal.SIGKILL)
        stdout, stderr = bot.communicate(timeout=120)
    finally:
        bot.kill()

    assert bot.returncode == 0, stderr
    assert "ServerError (status 503), retry 1" in stderr
    assert [p.name.endswith("-5.jpg") for p in out.iterdir()] == [True]
    rows = ledger(tmp_path / "data" / "imagine.db")
    assert [(kind, credits) for _, kind, credits in rows] == [("reserve", 8), ("commit", 8)]
    assert stdout.strip() == str(next(out.iterdir()))


def test_a_replica_killed_mid_request_answers_503_with_a_sentence(fleet: Fleet) -> None:
    answer: dict[str, Any] = {}
    request = threading.Thread(
        target=lambda: answer.setdefault("r", fleet.post("flux-schnell", {**SLOW, "seed": 8})))
    request.start()
    try:
        os.kill(fleet.busy_replica()["pid"], signal.SIGKILL)
    finally:
        request.join(timeout=120)

    assert answer["r"].status_code == 503
    assert answer["r"].json() == {"error": "A replica of the fleet stopped while making this "
                                           "image; send it again (another replica takes it)."}
    poll(lambda: fleet.health().status_code in (200, 503) or None, 10, "an answer to /health")


def test_ray_replaces_a_killed_replica_with_a_new_process(fleet: Fleet) -> None:
    # Not waiting for both replicas: the tests before killed some, and their replacements may
    # still be starting (and a dead one stays in /health for a few seconds). The replica to
    # kill is one that has just answered.
    poll(lambda: fleet.live_replicas() or None, 120, "a live replica")
    answer = fleet.post("flux-schnell", {**SMALL, "seed": 1})
    assert answer.status_code == 200, answer.text
    killed = next(r["pid"] for r in fleet.live_replicas()
                  if r["replica"] == answer.headers["x-imagine-replica"])

    os.kill(killed, signal.SIGKILL)

    after = poll(lambda: found if len(found := fleet.live_replicas()) == 2 and killed not in {
        r["pid"] for r in found} else None, 120, "two live replicas without the killed one")
    assert killed not in {r["pid"] for r in after}
