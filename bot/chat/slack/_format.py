"""Slack text in and out: escaping, markup to plain text, Block Kit for results and the Edit modal."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.chat.actions import (
    Action,
    Button,
    Rows,
    Style,
    history_rows,
    progress_rows,
    result_rows,
)
from bot.chat.render import fields_text, result_fields
from bot.core.jobs import Job

ACTION_PREFIX = "imagine_"
ACTION_PATTERN = re.compile(r"^imagine_(" + "|".join(Action) + r")(?:_[0-9a-zA-Z]+)?$")
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


def info_text(fields: list[tuple[str, str]]) -> str:
    """Every parameter of a job, one per line, for the Info button."""
    return "\n".join(f"*{name}:* {escape(value)}" for name, value in fields)


def progress_blocks(job: Job, text: str) -> list[dict[str, Any]]:
    """The progress message: its text, and Cancel while the job waits."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    return blocks + _actions(f"imagine-progress:{job.id}", progress_rows(job))


def result_blocks(job: Job, balance: int | None) -> list[dict[str, Any]]:
    """The message under a result: its prompt and summary, and the buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _plain(clip(job.request.prompt))},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(
            f"{user_ref(job.actor.user_id)} · {escape(fields_text(result_fields(job, balance)))}")}]},
    ]
    return blocks + _actions(f"imagine:{job.id}", result_rows(job))


def history_blocks(jobs: list[Job], text: str) -> list[dict[str, Any]]:
    """/imagine-history: the list, then Run again and Reroll for each job still there."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn",
                                                                  "text": clip(text)}}]
    return blocks + _actions("imagine-history", history_rows(jobs))


def _actions(block_id: str, rows: Rows) -> list[dict[str, Any]]:
    """One actions block per row of buttons."""
    return [{"type": "actions", "block_id": f"{block_id}:{number}",
             "elements": [_button(button) for button in row]}
            for number, row in enumerate(rows)]


def _button(button: Button) -> dict[str, Any]:
    # A button with a label of its own (V1..Vn, Again 3) gets an action id of its own: Slack
    # wants them unique within a block.
    action = str(button.action)
    if button.label:
        action += f"_{button.index + 1}" if button.index is not None else f"_{button.job_id}"
    value = button.job_id if button.index is None else f"{button.job_id}:{button.index}"
    element: dict[str, Any] = {"type": "button", "text": _plain(button.text),
                               "action_id": ACTION_PREFIX + action, "value": value}
    if button.look.style is Style.DANGER:
        element["style"] = "danger"
    if button.look.confirm is not None:
        question, consequence = button.look.confirm
        element["confirm"] = {"title": _plain(question), "text": _plain(consequence),
                              "confirm": _plain(button.text), "deny": _plain("Keep")}
    return element


def parse_action(action_id: str, value: str) -> tuple[Action, str, int]:
    """A button's (action, job id, image index) from its action id and value."""
    action = Action(action_id.removeprefix(ACTION_PREFIX).split("_")[0])
    job_id, _, index = value.partition(":")
    return action, job_id, int(index) if index.isdigit() else 0


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


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}
