"""What the image, compose.yaml and the systemd unit rely on, checked against the real code.

No container engine runs here, so nothing is built. Instead the Dockerfile is parsed and each
promise it makes is tested for real: its entry point is a console script of this project, its
environment names are settings that load, its health probe is run against a live server, and
its command is started as PID 1 of a fresh PID namespace (as in a container) and stopped with
the stop signal the image declares.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.app import DB_NAME
from bot.cli import main as cli_main
from bot.config import SECRET_ENV, DispatchSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "imagine-bot.service"
ENV_EXAMPLE = ROOT / "deploy" / "imagine-bot.env.example"


# --- a tiny Dockerfile reader -------------------------------------------------------------------


@dataclass
class Stage:
    """One FROM ... AS name stage: the instructions the checks below look at."""

    name: str
    base: str
    env: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    expose: list[int] = field(default_factory=list)
    entrypoint: list[str] | str | None = None
    cmd: list[str] | str | None = None
    stopsignal: str | None = None
    healthcheck: list[str] | str | None = None
    user: str | None = None


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        yield word.upper(), rest.strip()


def command_form(text: str) -> list[str] | str:
    """A JSON array (exec form) as a list; anything else (shell form) as the string."""
    if text.startswith("["):
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
        return value
    return text


def env_pairs(text: str) -> dict[str, str]:
    """ENV k=v k2="v 2" (or the old ENV k v)."""
    words = shlex.split(text)
    if words and "=" not in words[0]:
        return {words[0]: text.split(None, 1)[1]}
    return dict(w.split("=", 1) for w in words)


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """The stages by name, in file order (a dict keeps it)."""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for word, rest in instructions(text):
        if word == "ARG" and stage is None:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert match, f"every stage is named (FROM image AS name): {rest}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], match.group(1))
            stage = stages[match.group(2)] = Stage(match.group(2), base)
        elif stage is None:
            continue
        elif word == "ENV":
            stage.env.update(env_pairs(rest))
        elif word == "VOLUME":
            stage.volumes += command_form(rest) if rest.startswith("[") else rest.split()
        elif word == "EXPOSE":
            stage.expose += [int(p.split("/")[0]) for p in rest.split()]
        elif word == "ENTRYPOINT":
            stage.entrypoint = command_form(rest)
        elif word == "CMD":
            stage.cmd = command_form(rest)
        elif word == "STOPSIGNAL":
            stage.stopsignal = rest
        elif word == "USER":
            stage.user = rest
        elif word == "HEALTHCHECK":
            probe = re.sub(r"^(--\S+\s+)*", "", rest)  # drop --interval=30s and the like
            assert probe.startswith("CMD "), f"HEALTHCHECK CMD ...: {rest}"
            stage.healthcheck = command_form(probe[len("CMD "):].strip())
    return stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    """The Dockerfile's stages."""
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bot_stage(stages: dict[str, Stage]) -> Stage:
    """The bot's stage, which must be the last one: a plain `docker build` builds it."""
    assert list(stages)[-1] == "bot", f"the last stage is the default target: {list(stages)}"
    return stages["bot"]


def drain_s() -> float:
    """[dispatch] drain_s's default: how long a stop may drain before the bot must exit."""
    fields = DispatchSettings.model_fields
    assert "drain_s" in fields, "bot.config.DispatchSettings has no drain_s yet (graceful stop)"
    return float(fields["drain_s"].default)


def seconds(text: str, units: dict[str, float]) -> float:
    """A duration such as "1m30s" (compose) or "1min 30s" (systemd) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip())
    assert parts and re.fullmatch(r"(\s*\d+(\.\d+)?\s*[a-z]*)+", text.strip()), text
    return sum(float(n) * units[u] for n, u in parts)


COMPOSE_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
SYSTEMD_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                 "hr": 3600.0, "ms": 0.001, "msec": 0.001}


# --- the image ----------------------------------------------------------------------------------


def test_the_bot_image_is_slim_python_311_and_does_not_run_as_root(bot_stage: Stage) -> None:
    assert bot_stage.base == "python:3.11-slim"
    assert bot_stage.user is not None and bot_stage.user.split(":")[0] == "10001"


def test_the_bot_entry_point_is_exec_form_and_a_console_script_of_this_project(
    bot_stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]

    # Exec form: the bot itself is PID 1 and gets SIGTERM; a shell form would put sh there.
    assert isinstance(bot_stage.entrypoint, list) and isinstance(bot_stage.cmd, list)
    assert bot_stage.entrypoint[0] in scripts
    assert scripts[bot_stage.entrypoint[0]] == "bot.cli:main"
    # The command line parses as a real subcommand: --help exits 0 only for one that exists.
    with pytest.raises(SystemExit) as exited:
        cli_main([*bot_stage.entrypoint[1:], *bot_stage.cmd, "--help"])
    assert exited.value.code == 0
    assert "usage: imagine-bot run" in capsys.readouterr().out


def test_the_worker_entry_point_is_exec_form_and_the_worker_subcommand(
    stages: dict[str, Stage], capsys: pytest.CaptureFixture[str]
) -> None:
    worker = stages["worker"]

    assert isinstance(worker.entrypoint, list) and isinstance(worker.cmd, list)
    assert worker.entrypoint == ["imagine-bot"]
    assert worker.cmd[:1] == ["worker"]
    assert worker.user is not None and worker.user.split(":")[0] == "10001"
    assert worker.stopsignal == "SIGTERM"
    with pytest.raises(SystemExit) as exited:
        cli_main([*worker.cmd, "--help"])
    assert exited.value.code == 0
    assert "usage: imagine-bot worker" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["bot", "worker"])
def test_the_settings_an_image_sets_are_real_and_load(
    stages: dict[str, Stage], name: str, tmp_path: Path
) -> None:
    env = dict(stages[name].env)
    assert any(k.startswith("IMAGINE_") for k in env), "the image configures the bot by env"
    config = env.get("IMAGINE_CONFIG")
    assert config is not None and Path(config).is_absolute(), "not ./config.toml of the cwd"
    # The test machine's own /etc must not leak in: the same name, in a folder we own.
    env["IMAGINE_CONFIG"] = str(tmp_path / "absent" / Path(config).name)
    if "IMAGINE_STORAGE__PATH" in env:
        env["IMAGINE_STORAGE__PATH"] = str(tmp_path / "data")

    settings = Settings.load(None, env)  # a name that is no setting raises ConfigError

    for key, value in env.items():
        if not key.startswith("IMAGINE_") or key == "IMAGINE_CONFIG":
            continue
        node: Any = settings
        for part in key[len("IMAGINE_"):].lower().split("__"):
            node = getattr(node, part)
        assert str(node) == value, key
    if "IMAGINE_STORAGE__PATH" in env:
        assert settings.storage.path == tmp_path / "data"


def test_the_data_volume_is_where_the_bot_keeps_its_data(bot_stage: Stage) -> None:
    assert bot_stage.env["IMAGINE_STORAGE__PATH"] in bot_stage.volumes
    assert bot_stage.env["PYTHONUNBUFFERED"] == "1"


def test_the_exposed_port_is_the_bot_s_default_metrics_port(bot_stage: Stage) -> None:
    settings = Settings.load(None, {"IMAGINE_CONFIG": "/nonexistent/config.toml"})

    assert bot_stage.expose == [settings.metrics.port]


def test_the_stop_signal_is_sigterm(bot_stage: Stage) -> None:
    assert bot_stage.stopsignal == "SIGTERM"


def healthcheck_url(stage: Stage) -> str:
    """The URL inside the stage's HEALTHCHECK command."""
    probe = stage.healthcheck
    text = " ".join(probe) if isinstance(probe, list) else str(probe)
    match = re.search(r"http://[^'\"\s]+", text)
    assert match, f"the health probe calls an http:// URL: {text}"
    return match.group(0)


def test_the_healthcheck_targets_healthz_on_the_exposed_port(bot_stage: Stage) -> None:
    url = urlsplit(healthcheck_url(bot_stage))

    assert url.path == "/healthz"
    assert url.hostname == "127.0.0.1"
    assert isinstance(bot_stage.healthcheck, list), "exec form: slim has no curl, python it is"
    assert bot_stage.healthcheck[0] == "python"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012 - one server per test, reset there

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    """A loopback HTTP server that answers GET /healthz; its handler class holds the knobs."""
    handler = type("Health", (_Health,), {"status": 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_probe(stage: Stage, port: int) -> int:
    """Run the stage's HEALTHCHECK command as Docker would, with our python; its exit code."""
    assert isinstance(stage.healthcheck, list)
    env = {"PATH": os.environ.get("PATH", ""), "IMAGINE_METRICS__PORT": str(port)}
    argv = [sys.executable, *stage.healthcheck[1:]]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


def test_the_healthcheck_passes_on_200_and_fails_otherwise(
    bot_stage: Stage, health_server: tuple[int, type[_Health]]
) -> None:
    port, handler = health_server

    assert run_probe(bot_stage, port) == 0
    assert handler.paths == ["/healthz"]
    handler.status = 503
    assert run_probe(bot_stage, port) != 0


def test_the_healthcheck_fails_when_nothing_listens(bot_stage: Stage) -> None:
    with http.server.HTTPServer(("127.0.0.1", 0), _Health) as closed:
        port = closed.server_address[1]  # bound, then closed on exit: nothing listens there

    assert run_probe(bot_stage, port) != 0


# --- compose.yaml -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_gives_the_bot_time_to_drain(compose: dict[str, Any]) -> None:
    grace = seconds(compose["services"]["bot"]["stop_grace_period"], COMPOSE_UNITS)

    assert grace >= drain_s() + 5


def test_compose_runs_the_bot_target_with_its_data_on_a_volume(
    compose: dict[str, Any], bot_stage: Stage
) -> None:
    bot = compose["services"]["bot"]

    assert bot["build"]["target"] == "bot"
    assert bot["env_file"] == ".env"
    assert bot["restart"] == "unless-stopped"
    assert "healthcheck" not in bot, "inherited from the image"
    targets = [v.split(":")[1] for v in bot["volumes"]]
    assert bot_stage.env["IMAGINE_STORAGE__PATH"] in targets
    assert "environment" not in bot or not set(bot["environment"]) & set(SECRET_ENV.values())


def test_compose_publishes_metrics_on_loopback_only(compose: dict[str, Any], bot_stage: Stage) -> None:
    ports = compose["services"]["bot"]["ports"]

    assert ports, "the metrics port is published"
    for mapping in ports:
        host_ip, _host_port, container_port = mapping.split(":")
        assert host_ip == "127.0.0.1"
        assert int(container_port) in bot_stage.expose


def test_compose_runs_the_worker_only_with_the_gpu_profile_on_an_nvidia_gpu(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    worker = compose["services"]["worker"]

    assert worker["profiles"] == ["gpu"]
    assert worker["build"]["target"] == "worker"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert [int(p) for p in worker["expose"]] == stages["worker"].expose == [8188]
    assert "ports" not in worker, "the worker is reached on the project network only"
    assert urlsplit(healthcheck_url(stages["worker"])).path == "/health"


# --- the systemd unit ---------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as lists of (key, value): keys may repeat (Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, line
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    """The unit's [Service] section: key -> its values in order."""
    out: dict[str, list[str]] = {}
    for key, value in parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]:
        out.setdefault(key, []).append(value)
    return out


def test_the_unit_gives_the_bot_time_to_drain(service: dict[str, list[str]]) -> None:
    assert service["KillSignal"] == ["SIGTERM"]
    assert seconds(service["TimeoutStopSec"][-1], SYSTEMD_UNITS) >= drain_s() + 5


def test_the_unit_runs_the_command_the_image_runs(
    service: dict[str, list[str]], bot_stage: Stage
) -> None:
    argv = shlex.split(service["ExecStart"][-1])

    assert Path(argv[0]) == Path(service["WorkingDirectory"][-1]) / ".venv" / "bin" / "imagine-bot"
    assert isinstance(bot_stage.entrypoint, list) and isinstance(bot_stage.cmd, list)
    assert [Path(argv[0]).name, *argv[1:]] == [*bot_stage.entrypoint, *bot_stage.cmd]
    assert argv[1:] == ["run"]
    assert service["User"] == ["imagine-bot"] and service["Restart"] == ["on-failure"]


def test_the_unit_can_write_its_data_folder_and_nothing_else(service: dict[str, list[str]]) -> None:
    env = dict(e.split("=", 1) for e in service["Environment"])

    assert service["ProtectSystem"] == ["strict"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert env["IMAGINE_STORAGE__PATH"] in service["ReadWritePaths"][-1].split()
    assert Path(env["IMAGINE_CONFIG"]).is_absolute()
    assert service["EnvironmentFile"] == ["/etc/imagine-bot/env"]


def test_every_name_in_the_env_example_is_a_secret_or_a_setting() -> None:
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text("utf-8"), re.MULTILINE)

    assert set(SECRET_ENV.values()) <= set(names), "every secret is listed"
    for name in names:
        if name in SECRET_ENV.values():
            continue
        assert name.startswith("IMAGINE_"), name
        model: Any = Settings
        for part in name[len("IMAGINE_"):].lower().split("__"):
            assert part in model.model_fields, f"{name}: no setting {part!r}"
            model = model.model_fields[part].annotation
    assert not re.search(r"^[A-Z_]+=\S", ENV_EXAMPLE.read_text("utf-8"), re.MULTILINE), "no values"


# --- the entry point as PID 1 -------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The child processes of `pid` (its main thread's, which is where unshare forks)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except FileNotFoundError:
        return []


def handles_sigterm(pid: int) -> bool:
    """Whether `pid` has a SIGTERM handler (or blocks it to wait for it): /proc's signal masks."""
    status = Path(f"/proc/{pid}/status").read_text()
    bit = 1 << (signal.SIGTERM - 1)
    masks = dict(re.findall(r"^(SigCgt|SigBlk):\s+([0-9a-f]+)$", status, re.MULTILINE))
    return any(int(masks.get(k, "0"), 16) & bit for k in ("SigCgt", "SigBlk"))


def wait_for(what: str, check: Any, deadline: float, proc: subprocess.Popen[bytes], log: Path,
             *, required: bool = True) -> Any:
    """check()'s first truthy value; fails if proc exits, or at the deadline when required."""
    while True:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the bot exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            if required:
                pytest.fail(f"no {what} in time:\n{log.read_text()[-3000:]}")
            return value
        time.sleep(0.05)


def test_the_entry_point_as_pid_1_stops_cleanly_on_the_stop_signal(
    bot_stage: Stage, tmp_path: Path
) -> None:
    """PID 1 ignores every signal it has no handler for; the bot must handle SIGTERM itself."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.fail("this test needs root and unshare(1) (util-linux) to make a PID namespace")
    assert isinstance(bot_stage.entrypoint, list) and isinstance(bot_stage.cmd, list)
    script = Path(sys.executable).parent / bot_stage.entrypoint[0]  # the venv's console script
    assert script.exists(), script
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IMAGINE_") and k not in SECRET_ENV.values()}
    env.update({k: v for k, v in bot_stage.env.items() if k.startswith("IMAGINE_")})
    env.update({
        "IMAGINE_CONFIG": str(tmp_path / "absent.toml"),  # env only: no config file at all
        "IMAGINE_STORAGE__PATH": str(data),
        "IMAGINE_METRICS__HOST": "127.0.0.1",  # the image's 0.0.0.0 is for a container network
        "IMAGINE_METRICS__PORT": "0",
        "PYTHONUNBUFFERED": "1",
    })
    log = tmp_path / "bot.log"
    argv = [unshare, "--pid", "--fork", "--mount-proc", str(script),
            *bot_stage.entrypoint[1:], *bot_stage.cmd]
    with log.open("wb") as out:
        # stdin stays an open pipe: the console chat waits on it, as a container's would with -i.
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT)
    assert proc.stdin is not None
    bot = 0
    try:
        started = time.monotonic() + 60
        wait_for("database", (data / DB_NAME).exists, started, proc, log)
        bot = wait_for("bot process", lambda: children(proc.pid), started, proc, log)[0]
        status = Path(f"/proc/{bot}/status").read_text()
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.MULTILINE), "the bot is PID 1 inside"
        # PID 1 drops a signal that arrives before its handler exists, so wait for the handler
        # rather than guess with a sleep; without one, SIGTERM is still sent and shown ignored.
        handler = wait_for("SIGTERM handler", lambda: handles_sigterm(bot),
                           time.monotonic() + 15, proc, log, required=False)

        limit = drain_s() + 5
        os.kill(bot, signal.SIGTERM)  # unshare forwards no signal: straight to the bot
        stopping = time.monotonic()
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            why = "" if handler else " (it installed no SIGTERM handler, so PID 1 ignores it)"
            pytest.fail(f"PID 1 did not exit within drain_s + 5 = {limit:g} s of SIGTERM{why}:\n"
                        f"{log.read_text()[-3000:]}")
        took = time.monotonic() - stopping
    finally:
        if proc.poll() is None:
            if bot:
                with contextlib.suppress(ProcessLookupError):  # SIGKILL from outside does land
                    os.kill(bot, signal.SIGKILL)
            proc.kill()
            proc.wait(timeout=30)
        proc.stdin.close()

    # unshare exits with its child's status: 0 is the bot's own clean exit, not a kill.
    assert code == 0, f"exit status {code} after {took:.1f} s:\n{log.read_text()[-3000:]}"
    assert (data / DB_NAME).is_file()
    assert list(cwd.iterdir()) == [], "nothing is written to the working directory"
