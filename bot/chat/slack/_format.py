"""Slack text in and out: escaping, markup to plain text, Block Kit for results and the Edit modal."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.chat.render import fields_text, info_fields, result_fields
from bot.core.jobs import Job

ACTION_PREFIX = "imagine_"
ACTION_PATTERN = re.compile(r"^imagine_(reroll|vary(?:_\d+)?|edit|info|delete)$")
EDIT_CALLBACK = "imagine_edit"
PLAIN_TEXT_LIMIT = 3000  # Slack's limit for a section's or an input's text

_MARKUP = re.compile(r"<([^<>]*)>")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def escape(text: str) -> str:
    """Escape &, < and > as Slack asks, so text can never become a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Undo Slack's escaping of &, < and > in text it sends us."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_plain(text: str, *, drop_user: str | None = None) -> str:
    """Slack markup (<@U1|ann>, <#C1|general>, <!here>, <url|label>) -> plain words."""

    def plain(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            if drop_user and target[1:] == drop_user:
                return ""
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    return " ".join(unescape(_MARKUP.sub(plain, text)).split())


def mentions_to_ids(text: str) -> str:
    """Replace user mentions (<@U1|ann>) by the bare user id, for admin commands."""
    return _MENTION.sub(lambda m: m.group(1), text)


def is_user_id(word: str) -> bool:
    """Whether `word` looks like a Slack user id (U… or W…)."""
    return bool(_USER_ID.match(word))


def user_ref(user_id: str) -> str:
    """<@U1> for a real user id; anything else is shown escaped, never as markup."""
    return f"<@{user_id}>" if is_user_id(user_id) else escape(user_id)


def clip(text: str, limit: int = PLAIN_TEXT_LIMIT) -> str:
    """Cut text to Slack's length limit, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_message(job: Job, status: str) -> str:
    """The progress message: the prompt, then where the job stands."""
    return f"“{escape(clip(job.request.prompt, 300))}”\n{escape(status)}"


def result_summary(job: Job, balance: int | None) -> str:
    """The comment under the uploaded images: who, prompt, model, seed, size, cost, balance."""
    return (f"{user_ref(job.actor.user_id)} “{escape(clip(job.request.prompt, 1000))}”\n"
            f"{escape(fields_text(result_fields(job, balance)))}")


def info_text(job: Job, variation: str) -> str:
    """Every parameter of a job, one per line, for the Info button."""
    return "\n".join(f"*{name}:* {escape(value)}" for name, value in info_fields(job, variation))


def result_blocks(job: Job, balance: int | None) -> list[dict[str, Any]]:
    """The message under a result: its prompt and summary, and the buttons."""
    samples = len(job.images) or job.request.samples
    main = [
        _button("Reroll", "reroll", job.id),
        _button("Vary", "vary", f"{job.id}:0") if samples == 1 else None,
        _button("Edit", "edit", job.id),
        _button("Info", "info", job.id),
        {**_button("Delete", "delete", job.id), "style": "danger", "confirm": {
            "title": _plain("Delete this image?"),
            "text": _plain("Its files and buttons go away for everyone."),
            "confirm": _plain("Delete"), "deny": _plain("Keep")}},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _plain(clip(job.request.prompt))},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(
            f"{user_ref(job.actor.user_id)} · {escape(fields_text(result_fields(job, balance)))}")}]},
        {"type": "actions", "block_id": f"imagine:{job.id}",
         "elements": [b for b in main if b is not None]},
    ]
    if samples > 1:
        blocks.append({"type": "actions", "block_id": f"imagine-vary:{job.id}", "elements": [
            _button(f"V{i + 1}", f"vary_{i + 1}", f"{job.id}:{i}") for i in range(samples)]})
    return blocks


def parse_action(action_id: str, value: str) -> tuple[str, str, int]:
    """A button's (kind, job id, image index) from its action id and value."""
    kind = action_id.removeprefix(ACTION_PREFIX).split("_")[0]
    job_id, _, index = value.partition(":")
    return kind, job_id, int(index) if index.isdigit() else 0


def edit_modal(job: Job, channel: str, thread: str | None, *,
               negative_allowed: bool) -> dict[str, Any]:
    """The Edit modal, prefilled with the job's prompt (and negative prompt)."""
    blocks: list[dict[str, Any]] = [{
        "type": "input", "block_id": "prompt", "label": _plain("Prompt"),
        "element": {"type": "plain_text_input", "action_id": "prompt", "multiline": True,
                    "max_length": PLAIN_TEXT_LIMIT,
                    "initial_value": clip(job.request.prompt)},
    }]
    if negative_allowed:
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": "negative",
                                   "max_length": PLAIN_TEXT_LIMIT}
        if job.request.negative_prompt:
            element["initial_value"] = clip(job.request.negative_prompt)
        blocks.append({"type": "input", "block_id": "negative", "optional": True,
                       "label": _plain("Negative prompt"), "element": element})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(
        f"Keeps {job.request.model}, the size and the seed {job.request.seed}. "
        f"You pay for the new image.")}]})
    return {
        "type": "modal", "callback_id": EDIT_CALLBACK, "title": _plain("Edit the prompt"),
        "submit": _plain("Imagine"), "close": _plain("Cancel"), "blocks": blocks,
        "private_metadata": json.dumps({"job": job.id, "channel": channel, "thread": thread}),
    }


def edit_values(view: dict[str, Any]) -> tuple[dict[str, Any], str, str | None]:
    """(metadata, prompt, negative prompt) from a submitted Edit modal."""
    meta = json.loads(view.get("private_metadata") or "{}")
    values = view.get("state", {}).get("values", {})
    prompt = (values.get("prompt", {}).get("prompt", {}) or {}).get("value") or ""
    negative = (values.get("negative", {}).get("negative", {}) or {}).get("value") or None
    return meta, prompt, negative


def _button(label: str, action: str, value: str) -> dict[str, Any]:
    return {"type": "button", "text": _plain(label), "action_id": ACTION_PREFIX + action,
            "value": value}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}
