"""Helpers shared by the reliability tests: polling, and how each Discord request ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.discord import FakeDiscord


async def until(condition: Callable[[], bool], within_s: float = 30.0, what: str = "") -> None:
    """Poll `condition` every 50 ms until it holds; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within_s:g} s: {what}")
        await asyncio.sleep(0.05)


def discord_endings(fake: FakeDiscord) -> dict[str, tuple[str, dict[str, Any]]]:
    """interaction token -> ("images" | "sentence", the payload) of its first final answer: a
    follow-up carrying files, or a plain sentence (a follow-up or the response itself)."""
    ended: dict[str, tuple[str, dict[str, Any]]] = {}
    for captured in fake.captured:
        token = captured.token
        if token is None or token in ended:
            continue
        if captured.kind == "followup":
            kind = "images" if captured.files else "sentence"
            ended[token] = (kind, captured.payload)
        elif captured.kind == "callback" and captured.payload.get("type") == 4:
            ended[token] = ("sentence", captured.payload.get("data") or {})
        elif captured.kind == "callback" and captured.payload.get("type") == 9:
            ended[token] = ("modal", captured.payload.get("data") or {})
    return ended
