"""A real `python -m bot run` serves /healthz and /metrics on [metrics] port."""

from __future__ import annotations

import socket

import httpx

from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FakeSegmind
from tests.reliability.botproc import BotProcess, bot_env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_running_bot_answers_healthz_and_metrics_on_its_metrics_port(tmp_path):
    port = free_port()
    async with FakeSegmind() as segmind, FakeDiscord() as discord_:
        env = bot_env(tmp_path / "data", segmind_url=segmind.base_url, discord=discord_,
                      settings={"IMAGINE_METRICS__PORT": str(port)})
        bot = BotProcess(env, tmp_path / "bot.log")
        await bot.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                health = await client.get("/healthz")
                metrics = await client.get("/metrics")
        finally:
            await bot.stop()

    assert health.status_code == 200, health.text
    assert health.json()["problems"] == {}
    assert 'imagine_chat_connected{platform="discord"} 1.0' in metrics.text
    assert 'imagine_queue_jobs{backend="segmind",state="waiting"} 0.0' in metrics.text
