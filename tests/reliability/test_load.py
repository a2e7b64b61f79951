"""Load through the Discord adapter: 200 /imagine from 50 users, every one ends in images or in a
sentence, and the books balance. bench/load.py runs 2,000 from 500 users and prints the figures."""

from __future__ import annotations

from collections import Counter

from bot.app import DB_NAME
from tests.fakes.discord import FakeUser
from tests.reliability.books import check_books
from tests.reliability.support import discord_endings, until

USERS = [FakeUser(5_000_000 + i, f"user{i}") for i in range(50)]
REQUESTS = 200


async def push(fake_discord, requests: int = REQUESTS) -> list[str]:
    """Every tenth request asks for 99 steps (a sentence); the rest are good."""
    tokens = []
    for i in range(requests):
        prompt = f"a lighthouse number {i}" + (" --steps 99" if i % 10 == 9 else "")
        sent = await fake_discord.slash("imagine", by=USERS[i % len(USERS)], prompt=prompt)
        tokens.append(sent.token)
    return tokens


async def test_two_hundred_requests_from_fifty_users_each_end_in_images_or_a_sentence(
        discord_bot, fake_discord, fake_segmind):
    await discord_bot(segmind={"concurrency": 8})
    fake_segmind.latency_s = 0.02

    tokens = await push(fake_discord)
    await until(lambda: len(set(tokens) & set(discord_endings(fake_discord))) == REQUESTS,
                within_s=90, what="every request answered")

    endings = discord_endings(fake_discord)
    outcomes = Counter(endings[token][0] for token in tokens)
    assert outcomes == {"images": 180, "sentence": 20}
    sentences = {endings[t][1]["content"] for t in tokens if endings[t][0] == "sentence"}
    assert sentences == {"steps '99' is not allowed: a whole number from 1 to 8."}


async def test_after_the_load_no_job_is_left_and_the_ledger_balances(
        discord_bot, fake_discord, fake_segmind, tmp_path):
    bot = await discord_bot(segmind={"concurrency": 8})
    fake_segmind.latency_s = 0.02
    fake_segmind.failure_rate = 0.1  # some retried, a few refunded: the books still balance

    tokens = await push(fake_discord)
    await until(lambda: len(set(tokens) & set(discord_endings(fake_discord))) == REQUESTS,
                within_s=90, what="every request answered")
    await bot.service.bus.drain()

    books = check_books(tmp_path / "data" / DB_NAME)
    assert books.jobs == 180
    assert books.balanced, books
    assert books.undelivered == []
