"""The worker command: starts from a model folder and serves; start-up problems are one line."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.worker.main import add_worker_arguments, run_worker

ROOT = Path(__file__).resolve().parents[2]


def worker_command(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m bot.worker.main ARGS` as a child process, stderr captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot.worker.main", *args], cwd=ROOT, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "IMAGINE_CONFIG": "/nonexistent.toml",
             **(env or {})},
    )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_worker_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_options_parse_leaving_host_and_port_to_the_config() -> None:
    args = parse("--model", "flux-schnell=/m", "--model", "chroma")

    assert args.model == ["flux-schnell=/m", "chroma"]
    assert (args.host, args.port) == (None, None)
    assert not (args.cpu_offload or args.attention_slicing or args.vae_tiling or args.compile)


def config_file(tmp_path: Path, worker_section: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[worker]\n{worker_section}\n", encoding="utf-8")
    return path


def test_models_come_from_the_configs_worker_section_when_not_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = parse()
    args.config = config_file(tmp_path, f'models = {{ kolors = "{tmp_path / "gone"}" }}')

    assert run_worker(args) == 2
    assert capsys.readouterr().err == (
        f"imagine-bot worker: kolors: folder {tmp_path / 'gone'} does not exist\n"
    )


def test_the_host_comes_from_the_config_when_not_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dirs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAGINE_WORKER_API_KEY", raising=False)
    args = parse("--model", f"kolors={model_dirs['kolors']}")
    args.config = config_file(tmp_path, 'host = "0.0.0.0"')

    assert run_worker(args) == 2
    assert "listening on 0.0.0.0 without IMAGINE_WORKER_API_KEY" in capsys.readouterr().err


def test_a_bad_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = parse()
    args.config = config_file(tmp_path, "port = 0")

    assert run_worker(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("imagine-bot worker: config: ") and err.count("\n") == 1


def test_the_options_load_without_torch() -> None:
    code = (
        "import argparse, sys\n"
        "from bot.worker.main import add_worker_arguments\n"
        "add_worker_arguments(argparse.ArgumentParser())\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'uvicorn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)

    assert out.stdout.strip() == "[]"


def test_a_missing_model_folder_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    process = worker_command("--model", f"chroma={tmp_path / 'missing'}")
    _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert err == f"imagine-bot worker: chroma: folder {tmp_path / 'missing'} does not exist\n"


def test_an_uncached_hub_model_offline_is_one_line_naming_the_cache(tmp_path: Path) -> None:
    process = worker_command("--model", "kolors", env={"HF_HOME": str(tmp_path)})
    _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"not in the Hugging Face cache ({tmp_path / 'hub'})" in err
    assert "Kwai-Kolors/Kolors-diffusers" in err


def test_listening_beyond_loopback_without_a_key_is_refused(
    capsys: pytest.CaptureFixture[str], model_dirs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAGINE_WORKER_API_KEY", raising=False)

    code = run_worker(parse("--model", f"kolors={model_dirs['kolors']}", "--host", "0.0.0.0"))

    assert code == 2
    assert "without IMAGINE_WORKER_API_KEY" in capsys.readouterr().err


@pytest.fixture
def running_worker(model_dirs: dict[str, Path]) -> Iterator[str]:
    """The worker command serving the tiny flux-schnell folder on a free port."""
    process = worker_command(
        "--model", f"flux-schnell={model_dirs['flux-schnell']}", "--port", "0",
        env={"IMAGINE_WORKER_API_KEY": "cli-key", "OMP_NUM_THREADS": "1"},
    )
    assert process.stderr is not None
    url, seen = None, []
    deadline = time.monotonic() + 90
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
        url = found.group(1) if found else None
    # Keep reading its log so that a full pipe never blocks it.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    try:
        assert url, "the worker did not start:\n" + "".join(seen[-20:])
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_command_serves_a_model_from_a_local_folder(running_worker: str) -> None:
    headers = {"x-api-key": "cli-key"}
    with httpx.Client(base_url=running_worker, headers=headers, timeout=60) as client:
        health = client.get("/health").json()
        image = client.post("/v1/flux-schnell", json={"prompt": "a fox", "width": 512,
                                                      "height": 512, "steps": 1})

    assert health["models"] == ["flux-schnell"]
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
