"""Hostile inputs and the checks every adapter's answer to them must pass."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.chat.guard import UNEXPECTED
from tests.reliability.books import rows

# Prompts a user may send that are allowed, but must be stored clean and shown without harm.
LONG_PROMPT = "foxes " * 1666 + "fox!"  # 10,000 characters
INVISIBLE = "a\u200b red\u200c fox\u200e \u202eevil\u202c \u2066iso\u2069 \ufeff\u2060 \u061cend"
CONTROLS = "a red\x07\x08 fox \x1b[31mred\x1b[0m\r\n\tend\x7f\x85"
DISCORD_MENTIONS = ("@everyone @here <@&940000000000000001> <@1002> <@!1002> "
                    "<#930000000000000001> a fox")
SLACK_MENTIONS = "<!channel> <!here> <!everyone> <@U0VICTIM> <!subteam^S0TEAM|@team> a fox"
MARKDOWN = ("**bold** __under__ ~~strike~~ ||spoiler|| `code` ```py\nunclosed "
            "[free nitro](https://evil.example) # heading\n> quote * _ \\")
SQL = "'; DROP TABLE jobs; --"
SQL_QUOTES = 'Robert"); DROP TABLE ledger;-- a fox'

HOSTILE_PROMPTS = {
    "zero-width and right-to-left": INVISIBLE,
    "control characters": CONTROLS,
    "markdown": MARKDOWN,
    "sql": SQL,
    "sql with quotes": SQL_QUOTES,
}
# Words of each prompt that must survive cleaning (the visible text).
SURVIVING = {
    "zero-width and right-to-left": ["red", "fox", "evil", "iso", "end"],
    "control characters": ["red", "fox", "end"],
    "markdown": ["**bold**", "[free nitro](https://evil.example)"],
    "sql": [SQL],
    "sql with quotes": [SQL_QUOTES],
}

# Inline flags at and past every bound of the default model (flux-schnell) and the others.
AT_BOUNDS = [
    "--steps 1", "--steps 8", "--seed 0", "--seed 4294967295", "--n 1", "--n 4",
    "--w 512 --h 512", "--w 2048 --h 2048", "--ar 21:9", "--model chroma --cfg 1 --steps 10",
    "--model chroma --cfg 20 --steps 75", "--model kolors --cfg 0 --quality 0",
    "--model kolors --quality 100 --n 10",
]
PAST_BOUNDS = {  # flags -> the word the sentence must name
    "--steps 0": "steps", "--steps 9": "steps", "--steps 151": "steps",
    "--steps 99999999999999999999999": "steps", "--steps 1e400": "steps",
    "--seed -1": "seed", "--seed 4294967296": "seed", "--seed 1180591620717411303424": "seed",
    "--n 0": "samples", "--n 5": "samples", "--model kolors --n 11": "samples",
    "--w 504": "width", "--w 2056": "width", "--w 1001": "width", "--h 0": "height",
    "--model chroma --w 760": "width", "--model chroma --cfg 0.5": "cfg",
    "--model chroma --cfg 20.5": "cfg", "--model chroma --steps 9": "steps",
    "--model chroma --cfg inf": "cfg", "--model chroma --cfg nan": "cfg",
    "--model kolors --quality 101": "image_quality", "--quality -1": "image_quality",
    "--ar 0:1": "aspect_ratio", "--ar 999:1": "aspect_ratio", "--cfg 5": "cfg",
}
WRONG_TYPES = {  # flags -> the word the sentence must name
    "--steps ten": "steps", "--seed 1.5": "seed", "--seed 0x10": "seed", "--n two": "samples",
    "--model 42": "model", "--ar wide": "aspect_ratio", "--model chroma --cfg high": "cfg",
    "--w 1024px": "width", "--format gif": "image_format", "--quality best": "image_quality",
    "--sampler 3": "sampler", "--scheduler ''": "scheduler", "--no": "--no",
    "--stesp 4": "--stesp",
}

# Characters that must never reach the database inside a prompt.
FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
GENERIC = (UNEXPECTED, "Something went wrong")


def assert_clear_sentence(text: str, names: str | None = None) -> None:
    """One plain sentence: not the generic apology, no traceback, bounded, naming the field."""
    assert text, "no answer"
    assert not any(g in text for g in GENERIC), text
    assert "Traceback" not in text and "Error:" not in text, text
    assert len(text) < 600, text
    if names is not None:
        assert names in text, f"{names!r} not named in {text!r}"


def stored_prompts(db: Path) -> list[str]:
    """Every prompt and negative prompt the jobs table holds."""
    out = []
    for row in rows(db, "SELECT request FROM jobs"):
        request: dict[str, Any] = json.loads(row["request"])
        out.append(request["prompt"])
        if request.get("negative_prompt"):
            out.append(request["negative_prompt"])
    return out


def assert_stored_clean(db: Path) -> None:
    """No control, bidi or zero-width character in any stored prompt; at most 2,000 characters."""
    for prompt in stored_prompts(db):
        assert not FORBIDDEN.search(prompt), repr(prompt)
        assert 0 < len(prompt) <= 2000


def assert_tables_intact(db: Path) -> None:
    """The schema is whole and SQLite finds nothing wrong."""
    tables = {r["name"] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"jobs", "ledger", "quota_accounts", "workspace_quota"} <= tables
    assert rows(db, "PRAGMA integrity_check")[0]["integrity_check"] == "ok"


def discord_embed_fits(embed: dict[str, Any]) -> None:
    """Discord's embed limits: description 4,096, 25 fields of 256/1,024, 6,000 in all."""
    fields = embed.get("fields") or []
    assert len(embed.get("description") or "") <= 4096
    assert len(embed.get("title") or "") <= 256
    assert len(fields) <= 25
    for item in fields:
        assert 0 < len(item["name"]) <= 256 and 0 < len(item["value"]) <= 1024, item
    total = (len(embed.get("title") or "") + len(embed.get("description") or "")
             + sum(len(f["name"]) + len(f["value"]) for f in fields)
             + len((embed.get("footer") or {}).get("text") or ""))
    assert total <= 6000


SLACK_MARKUP = re.compile(r"<[^<>]*>")


def slack_pings(text: str, allowed_user: str) -> list[str]:
    """Markup in a Slack text that could notify someone other than `allowed_user`."""
    return [m for m in SLACK_MARKUP.findall(text) if m != f"<@{allowed_user}>"]


def slack_texts(args: dict[str, Any]) -> list[str]:
    """The texts of one Web API call that Slack parses for mentions (plain_text never is)."""
    out = [str(args[k]) for k in ("text", "initial_comment") if args.get(k)]
    blocks = args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    stack: list[Any] = [blocks]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("text"), str) and node.get("type") != "plain_text":
                out.append(node["text"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out
