"""A whole /imagine from the command line, through the bot, to the worker and back to a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import env_without_settings
from tests.worker.support import Served, image_of

ROOT = Path(__file__).resolve().parents[2]


def bot_env(data: Path, worker_url: str) -> dict[str, str]:
    """The environment of a bot that knows only the worker (no Segmind, no chat tokens)."""
    env = env_without_settings()
    env.update({
        "IMAGINE_STORAGE__PATH": str(data),
        "IMAGINE_CONFIG": str(data / "absent.toml"),
        "IMAGINE_WORKER__URL": worker_url,
        "HF_HUB_OFFLINE": "1",
    })
    return env


def test_imagine_on_the_command_line_gets_its_image_from_the_worker(
    worker: Served, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    before = worker.health().json()["images"]["flux-schnell"]
    done = subprocess.run(
        [sys.executable, "-m", "bot", "imagine", "a red fox in the snow --seed 42",
         "--model", "flux-schnell", "--steps", "2", "--out", str(out)],
        cwd=ROOT, env=bot_env(tmp_path / "data", worker.url), capture_output=True,
        text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    [path] = [Path(line) for line in done.stdout.split()]
    assert path.parent == out
    assert image_of(path.read_bytes()).size == (1024, 1024)
    assert worker.health().json()["images"]["flux-schnell"] == before + 1
