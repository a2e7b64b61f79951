"""Buttons that carry the job id (so they survive restarts), the Edit modal, and embeds."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from bot.chat.actions import Action, Button, Rows, Style
from bot.chat.render import result_fields
from bot.core.catalog import MAX_PROMPT_CHARS
from bot.core.jobs import Job

if TYPE_CHECKING:
    from bot.chat.discord._adapter import ImagineClient

BUTTON_TEMPLATE = (
    r"imagine:(?P<action>" + "|".join(Action) + r"):(?P<job_id>[0-9a-zA-Z]{1,32})"
    r"(?::(?P<index>[0-9]{1,2}))?"
)
MODAL_PREFIX = "imagine:edit-modal:"
MODAL_PATTERN = re.compile(r"imagine:edit-modal:(?P<job_id>[0-9a-zA-Z]{1,32})")
_STYLES = {Style.PLAIN: discord.ButtonStyle.secondary, Style.DANGER: discord.ButtonStyle.danger}
_COLOUR = discord.Colour.blurple()


def button_id(action: str, job_id: str, index: int | None = None) -> str:
    """'imagine:reroll:<job>' or 'imagine:vary:<job>:<index>'."""
    return f"imagine:{action}:{job_id}" + (f":{index}" if index is not None else "")


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=BUTTON_TEMPLATE):
    """A job's button; its custom id names the action and the job, nothing else."""

    def __init__(self, spec: Button, *, row: int | None = None) -> None:
        look = spec.look
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=spec.text, emoji=None if spec.label else look.emoji, style=_STYLES[look.style],
            custom_id=button_id(spec.action, spec.job_id, spec.index))
        super().__init__(button, row=row)
        self.spec = spec

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction,  # type: ignore[override]
                             item: discord.ui.Button[Any], match: re.Match[str]) -> JobButton:
        """Rebuild the button from its custom id (works for messages sent before a restart)."""
        index = match["index"]
        return cls(Button(Action(match["action"]), match["job_id"],
                          int(index) if index else None))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the press to the adapter's handlers."""
        client: ImagineClient = interaction.client  # type: ignore[assignment]
        await client.adapter.jobs.on_button(interaction, self.spec)


def view_of(rows: Rows) -> discord.ui.View | None:
    """A view that never times out holding these rows of buttons (None for no buttons)."""
    if not rows:
        return None
    view = discord.ui.View(timeout=None)
    for number, row in enumerate(rows):
        for spec in row:
            view.add_item(JobButton(spec, row=number))
    return view


def edit_modal(job: Job) -> discord.ui.Modal:
    """The Edit modal, prefilled; its submit is handled by custom id (see _jobs.py)."""
    modal = discord.ui.Modal(title="Edit the prompt", custom_id=f"{MODAL_PREFIX}{job.id}",
                             timeout=15 * 60)
    modal.add_item(discord.ui.TextInput(
        label="Prompt", custom_id="prompt", style=discord.TextStyle.paragraph,
        default=job.request.prompt[:MAX_PROMPT_CHARS], max_length=MAX_PROMPT_CHARS))
    modal.add_item(discord.ui.TextInput(
        label="Negative prompt", custom_id="negative_prompt", required=False,
        style=discord.TextStyle.paragraph, default=(job.request.negative_prompt or "")[:1000],
        max_length=MAX_PROMPT_CHARS))
    return modal


def modal_values(data: Any) -> dict[str, str]:
    """custom_id -> value of every text input in a modal submit payload (any nesting)."""
    values: dict[str, str] = {}
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "custom_id" in node and isinstance(node.get("value"), str):
                values[node["custom_id"]] = node["value"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return values


def result_embed(job: Job, balance: int | None) -> discord.Embed:
    """Prompt, model, seed, size, steps, cfg, cost and the requester's balance."""
    embed = discord.Embed(description=_clip(job.request.prompt, 4000), colour=_COLOUR)
    if job.request.negative_prompt:
        embed.add_field(name="Negative prompt", value=_clip(job.request.negative_prompt, 1024),
                        inline=False)
    for name, value in result_fields(job, balance):
        embed.add_field(name=name, value=value, inline=True)
    embed.set_footer(text=f"job {job.id}")
    return embed


def info_embed(fields: list[tuple[str, str]]) -> discord.Embed:
    """Every parameter, the backend, timings and cost (for the Info button)."""
    embed = discord.Embed(title="Image details", colour=_COLOUR)
    for name, value in fields:
        long = name in ("Prompt", "Negative prompt", "Variation", "From")
        embed.add_field(name=name, value=_clip(value, 1024), inline=not long)
    return embed


def _clip(text: str, limit: int) -> str:
    """The user's text as plain text (no markdown, no masked links), cut to `limit`."""
    text = discord.utils.escape_markdown(text, ignore_links=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
