"""The command line, run as a real process against the fake Segmind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import SEGMIND_KEY
from tests.helpers import env_without_settings


async def run_cli(*args: str, env: dict[str, str], stdin: bytes | None = None,
                  seconds: float = 60) -> tuple[int, str, str]:
    """Run `python -m bot ARGS` and return (status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), seconds)
    return process.returncode or 0, out.decode(), err.decode()


def cli_env(data: Path, segmind_url: str | None) -> dict[str, str]:
    env = env_without_settings()
    env["IMAGINE_STORAGE__PATH"] = str(data)
    env["IMAGINE_CONFIG"] = str(data / "absent.toml")
    env["IMAGINE_METRICS__PORT"] = "0"  # tests run side by side; the ops tests pick a port
    if segmind_url:
        env["IMAGINE_SEGMIND__BASE_URL"] = segmind_url
        env["SEGMIND_API_KEY"] = SEGMIND_KEY
    return env


async def test_imagine_writes_the_images_and_prints_their_paths_seed_and_cost(
    tmp_path, fake_segmind
):
    status, out, err = await run_cli(
        "imagine", "a lighthouse --ar 16:9 --seed 42", "--samples", "2",
        "--out", str(tmp_path / "out"), env=cli_env(tmp_path / "data", fake_segmind.base_url),
    )
    assert status == 0, err
    paths = [Path(line) for line in out.split()]
    assert len(paths) == 2 and all(p.parent == tmp_path / "out" for p in paths)
    assert all(Image.open(p).format for p in paths)
    assert "Seed: 42…43" in err and "Cost: 2 credits" in err and "Balance: 48" in err


async def test_imagine_fails_with_the_users_sentence_and_a_non_zero_status(tmp_path, fake_segmind):
    status, out, err = await run_cli(
        "imagine", "a lighthouse --steps 99", env=cli_env(tmp_path, fake_segmind.base_url)
    )
    assert status == 1 and out == ""
    assert "steps '99' is not allowed: a whole number from 1 to 8." in err
    assert "Traceback" not in err


async def test_imagine_without_any_backend_says_what_to_set(tmp_path):
    status, _, err = await run_cli("imagine", "a lighthouse", env=cli_env(tmp_path, None))
    assert status == 1 and "SEGMIND_API_KEY" in err


async def test_a_bad_config_value_stops_start_up_naming_the_key(tmp_path):
    env = cli_env(tmp_path, None) | {"IMAGINE_SEGMIND__CONCURRENCY": "lots"}
    status, _, err = await run_cli("imagine", "x", env=env)
    assert status == 2 and "segmind.concurrency" in err and "Traceback" not in err


async def test_quota_admin_at_the_shell_grants_and_shows(tmp_path):
    env = cli_env(tmp_path, None)
    status, out, _ = await run_cli("quota", "--scope", "discord:42", "grant", "u1", "7", env=env)
    assert status == 0 and "Granted 7" in out
    status, out, _ = await run_cli("quota", "--scope", "discord:42", "show", "u1", env=env)
    assert status == 0 and "57 credits left" in out


async def test_the_console_chat_runs_imagine_info_and_quota(tmp_path, fake_segmind):
    script = b"/imagine a red fox --seed 3\n/quota\n"
    env = cli_env(tmp_path, fake_segmind.base_url)
    status, out, err = await run_cli("run", "--console", env=env,
                                     stdin=script + b"help\n")
    assert status == 0, err
    assert "[1] queued flux-schnell 1024x1024 4 steps" in out
    assert "credits left" in out
    assert "[1] done: Model: flux-schnell · Seed: 3" in out
    assert Path(out.split("[1]   ")[1].split()[0]).exists()


async def test_the_console_chat_keeps_log_lines_out_of_the_conversation(tmp_path, fake_segmind):
    env = cli_env(tmp_path, fake_segmind.base_url)
    status, out, err = await run_cli("run", "--console", env=env,
                                     stdin=b"/imagine a red fox --seed 3\n")

    assert status == 0, err
    assert " INFO " not in out + err
    log_file = (tmp_path / "imagine-bot.log").read_text()
    assert "queued: flux-schnell" in log_file and "done in" in log_file


async def test_doctor_shows_the_segmind_credits_the_bot_last_read(tmp_path, fake_segmind):
    env = cli_env(tmp_path, fake_segmind.base_url)
    fake_segmind.credits = 321.0
    status, _, err = await run_cli("imagine", "a lighthouse", env=env)
    assert status == 0, err
    _, out, _ = await run_cli("doctor", env=env)
    assert "320 credits left as of" in out


async def test_doctor_reports_each_check_without_printing_secrets(tmp_path, fake_segmind):
    env = cli_env(tmp_path, fake_segmind.base_url) | {"DISCORD_TOKEN": "discord-secret-123"}
    env["IMAGINE_DISCORD__API_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens there
    status, out, err = await run_cli("doctor", env=env)
    assert "database" in out and "journal wal" in out
    assert "backend segmind" in out
    assert "discord" in out and "unreachable" in out
    assert status == 1  # discord unreachable is a failure
    assert SEGMIND_KEY not in out + err and "discord-secret-123" not in out + err
