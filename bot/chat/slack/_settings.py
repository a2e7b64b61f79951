"""/imagine-settings: a modal of your defaults (views.open) whose Save stores them.

`/imagine-settings` opens your defaults; `/imagine-settings workspace` opens the workspace's
(admins only). Typed forms work too, as in the console: `show`, `reset [NAME ...]`,
`set --steps 30`, each optionally after `workspace`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.chat.guard import UNEXPECTED, guarded
from bot.chat.settings import SettingsCommand, parse_settings, run_settings, saved_text
from bot.chat.slack._format import escape, to_plain
from bot.chat.slack._handlers import Where
from bot.core.defaults import LABELS, NAMES, Defaults, shown_value
from bot.core.errors import ImagineError, NotAllowed, RequestError

if TYPE_CHECKING:
    from bot.chat.slack._handlers import Handlers

log = logging.getLogger(__name__)

COMMAND = "/imagine-settings"
CALLBACK = "imagine_settings"
UNSET = "default"  # the select option that means "no default of mine"
TEXT_FIELDS = ("steps", "cfg", "negative_prompt")
SELECT_FIELDS = ("model", "aspect_ratio", "image_format")


def register(app: AsyncApp, handlers: Handlers) -> None:
    """Attach /imagine-settings and its modal's submission to `app`."""
    SettingsModal(handlers).register(app)


class SettingsModal:
    """The command opens the modal pre-filled with the stored defaults; Save stores them."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self.service = handlers.service

    def register(self, app: AsyncApp) -> None:
        """Attach the listeners."""
        app.command(COMMAND)(self.command)
        app.view(CALLBACK)(self.submitted)

    async def command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """Open the modal (no text, or `workspace`), or run a typed settings command."""
        await ack()
        where = Where(user=str(command.get("user_id", "")), team=command.get("team_id"),
                      channel=str(command.get("channel_id", "")),
                      response_url=command.get("response_url"),
                      name=str(command.get("user_name", "")))
        text = to_plain(str(command.get("text", "")))

        async def work() -> None:
            actor = await self.handlers.people.actor(where.user, where.team, where.name)
            if text.lower() in ("", "workspace", "server"):
                workspace = bool(text)
                if workspace and not actor.is_admin:
                    raise NotAllowed("Only Slack workspace admins can change the workspace "
                                     "defaults; /imagine-settings alone changes yours.")
                layers = await self.service.user_settings.layers(actor)
                stored = layers.workspace if workspace else layers.user
                await self.handlers.client.views_open(
                    trigger_id=command["trigger_id"],
                    view=self.modal(stored, where, workspace=workspace))
                return
            answer = await run_settings(self.service, actor, parse_settings(text))
            await self.handlers.whisper(where, escape(answer))

        await guarded(f"slack {COMMAND}", work,
                      lambda sentence: self.handlers.whisper(where, escape(sentence)))

    def modal(self, stored: Defaults, where: Where, *, workspace: bool) -> dict[str, Any]:
        """The Block Kit modal: selects for model, aspect and format; text for the rest."""
        catalog = self.service.catalog
        spec = catalog.get(catalog.default_model) or catalog.models[0]
        choices = {
            "model": [(name, name) for name in catalog.names],
            "aspect_ratio": [(p.label, p.ratio) for p in spec.presets()],
            "image_format": [(f, f) for f in ("png", "jpeg", "webp")],
        }
        whose = "The workspace's" if workspace else "Your"
        below = "the model's" if workspace else "the workspace's, then the model's"
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {
            "type": "plain_text", "text": f"{whose} defaults for /imagine. A flag you type "
            f"wins over them; left at default, {below} applies."}}]
        for field in ("model", "aspect_ratio", "steps", "cfg", "negative_prompt",
                      "image_format"):
            value = getattr(stored, field)
            if field in SELECT_FIELDS:
                listed = choices[field]
                if value is not None and value not in {key for _, key in listed}:
                    listed = [*listed, (str(value), str(value))]  # a custom ratio set elsewhere
                options = [_option("default (not set)", UNSET)] + [
                    _option(label, key) for label, key in listed]
                element: dict[str, Any] = {"type": "static_select", "action_id": field,
                                           "options": options}
                chosen = next((o for o in options if o["value"] == value), options[0])
                element["initial_option"] = chosen
            else:
                element = {"type": "plain_text_input", "action_id": field,
                           "multiline": field == "negative_prompt"}
                if value is not None:
                    element["initial_value"] = shown_value(field, value)
            blocks.append({"type": "input", "block_id": field, "optional": True,
                           "label": _plain(LABELS[field].capitalize()), "element": element})
        return {
            "type": "modal", "callback_id": CALLBACK,
            "title": _plain("Workspace defaults" if workspace else "Your defaults"),
            "submit": _plain("Save"), "close": _plain("Cancel"),
            "private_metadata": json.dumps({"channel": where.channel, "workspace": workspace}),
            "blocks": blocks,
        }

    async def submitted(self, ack: AsyncAck, body: dict[str, Any],
                        view: dict[str, Any]) -> None:
        """Save: store what is filled in, forget what is empty; errors show in the modal."""
        meta = json.loads(view.get("private_metadata") or "{}")
        user = body.get("user") or {}
        where = Where(user=str(user.get("id", "")),
                      team=(body.get("team") or {}).get("id") or user.get("team_id"),
                      channel=str(meta.get("channel", "")), name=str(user.get("name", "")))
        values, cleared = _values(view)
        workspace = bool(meta.get("workspace"))
        try:
            actor = await self.handlers.people.actor(where.user, where.team, where.name)
            stored = await self.service.user_settings.change(
                actor, values, clear=cleared, workspace=workspace)
        except ImagineError as error:
            await ack(response_action="errors", errors={_block_of(error): error.sentence()})
            return
        except Exception:
            log.exception("slack: the settings modal failed")
            await ack(response_action="errors", errors={"model": UNEXPECTED})
            return
        await ack()
        whose = "The workspace defaults are" if workspace else "Your defaults are"
        answer = (saved_text(SettingsCommand("set", workspace, values), stored, "slack")
                  if values else f"{whose} all back to default.")
        await self.handlers.whisper(where, escape(answer))


def _values(view: dict[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The modal's state: filled-in fields, and fields left empty or at default."""
    state = (view.get("state") or {}).get("values") or {}
    values: dict[str, str] = {}
    cleared: list[str] = []
    for field in (*SELECT_FIELDS, *TEXT_FIELDS):
        entry = (state.get(field) or {}).get(field) or {}
        if field in SELECT_FIELDS:  # Slack sends a select's choice as selected_option
            raw = (entry.get("selected_option") or {}).get("value")
        else:
            raw = entry.get("value")
        text = str(raw or "").strip()
        if not text or text == UNSET:
            cleared.append(field)
        else:
            values[field] = text
    return values, tuple(cleared)


def _block_of(error: ImagineError) -> str:
    """The input an error belongs under (the model's, when it is about no one field)."""
    if isinstance(error, RequestError):
        field = NAMES.get(error.field, "")
        if field in (*SELECT_FIELDS, *TEXT_FIELDS):
            return field
    return "model"


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _plain(label[:75]), "value": value}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}
