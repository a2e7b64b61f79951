"""A loopback fake of Discord: the REST API and the gateway, on 127.0.0.1, for discord.py.

The real bot connects to it through [discord] api_base_url and gateway_url. The gateway speaks
HELLO, IDENTIFY -> READY (with the application id) and GUILD_CREATE, answers heartbeats, and
lets a test push INTERACTION_CREATE payloads built from the commands the bot synced. The REST
side keeps the messages it made and captures every request the bot sends (interaction
callbacks, follow-ups with their files, edits, channel messages, command syncs)::

    async with FakeDiscord() as discord_:
        settings.discord.api_base_url = discord_.api_base_url  # and gateway_url
        ...
        interaction = await discord_.slash("imagine", by=FakeUser(1, "ann"), prompt="a fox")
        callback = await discord_.wait_for("callback", token=interaction.token)
        result = await discord_.wait_for("followup", token=interaction.token)
        await discord_.click(result.message, "imagine:reroll:<job>", by=FakeUser(2, "bob"))

Pushing: slash(name, by=, dm=, channel_id=, focused=, **options) (options are typed from the
synced command; a FakeUser becomes a user option with its `resolved` entry), click(message,
custom_id, by=) (the button must be on the message), submit_modal(custom_id, values, by=).
Reading: captured / requests(kind, token=) / wait_for(kind, token=, where=, within_s=), each a
Captured (kind, method, path, payload, files with their bytes, token, message, at), and
messages (id -> the message as it stands now). Knobs: refuse (kinds answered 403),
attachment_size_limit (sent in each interaction), revoked (the token was reset in the Developer
Portal: every authenticated REST call answers 401 and IDENTIFY is closed with 4004). Besides
the routes discord.py uses, it serves GET /applications/@me, GET /users/@me/guilds (GUILD_ID
alone) and GET of the registered commands (/applications/{id}/commands and
/applications/{id}/guilds/{guild}/commands, from `commands`, which a test may change as someone
in the Developer Portal would; a guild other than GUILD_ID answers 403 Missing Access). One
guild (GUILD_ID) with CHANNEL_ID, NSFW_CHANNEL_ID, THREAD_ID and ROLE_ID; DMs use DM_CHANNEL_ID.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 38)  # view, send, ...
DISCORD_EPOCH_MS = 1420070400000


@dataclass(frozen=True)
class FakeFile:
    """One uploaded file, bytes kept."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Captured:
    """One request the bot sent, parsed."""

    kind: str  # callback | followup | edit_original | delete_original | get_original |
    # channel_message | edit_message | delete_message | command_sync | other
    method: str
    path: str
    payload: dict[str, Any]
    files: list[FakeFile] = field(default_factory=list)
    token: str | None = None  # the interaction token, for interaction and webhook routes
    message: dict[str, Any] | None = None  # the message created or edited
    at: float = 0.0  # time.monotonic() on arrival

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        """The allowed_mentions sent (in data for callbacks)."""
        body = self.payload.get("data", self.payload) if self.kind == "callback" else self.payload
        return (body or {}).get("allowed_mentions")


@dataclass(frozen=True)
class FakeUser:
    """A Discord user (a guild member when sent from a guild)."""

    id: int
    name: str
    roles: tuple[int, ...] = ()
    permissions: int = MEMBER_PERMISSIONS

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "username": self.name, "discriminator": "0",
                "global_name": self.name.title(), "avatar": None, "bot": False}


@dataclass(frozen=True)
class SentInteraction:
    """An interaction the fake pushed: its id and token, to match what the bot sends back."""

    id: str
    token: str
    sent_at: float
    payload: dict[str, Any]


class FakeDiscord:
    """REST server plus gateway websocket on one loopback port."""

    APP_ID = 900000000000000001
    BOT_ID = 900000000000000002
    GUILD_ID = 910000000000000001
    OWNER_ID = 920000000000000001
    CHANNEL_ID = 930000000000000001
    NSFW_CHANNEL_ID = 930000000000000002
    THREAD_ID = 930000000000000003
    DM_CHANNEL_ID = 930000000000000009
    ROLE_ID = 940000000000000001  # a plain role with no permissions, "imagine-admins"

    def __init__(self, token: str = "fake-bot-token", *, heartbeat_ms: int = 41250) -> None:
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.captured: list[Captured] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None: global)
        self.refuse: set[str] = set()  # request kinds answered 403 Missing Access
        self.revoked = False  # True: the token no longer works (401 on REST, 4004 on IDENTIFY)
        self.attachment_size_limit = 10 * 1024 * 1024  # sent in every interaction
        self.identified = asyncio.Event()
        self.sessions_at: list[float] = []  # time.monotonic() of each READY sent
        self.heartbeats = 0
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self._interactions: dict[str, dict[str, Any]] = {}  # token -> state
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # --- what the bot sent ------------------------------------------------------------------

    def requests(self, kind: str | None = None, *, token: str | None = None) -> list[Captured]:
        """Captured requests, optionally of one kind and for one interaction token."""
        return [c for c in self.captured
                if (kind is None or c.kind == kind) and (token is None or c.token == token)]

    async def wait_for(self, kind: str, *, token: str | None = None,
                       where: Callable[[Captured], bool] | None = None,
                       within_s: float = 10.0) -> Captured:
        """The first captured request of `kind` (and token, and predicate), waiting for it."""
        def find() -> Captured | None:
            return next((c for c in self.requests(kind, token=token)
                         if where is None or where(c)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: find() is not None), within_s)
        found = find()
        assert found is not None
        return found

    async def _capture(self, captured: Captured) -> None:
        async with self._changed:
            self.captured.append(captured)
            self._changed.notify_all()

    # --- users and interactions -------------------------------------------------------------

    def command(self, name: str, guild_id: int | None = None) -> dict[str, Any]:
        """A command the bot synced (guild commands first, then global)."""
        for key in (str(guild_id) if guild_id else None, None):
            for command in self.commands.get(key, []):
                if command["name"] == name:
                    return command
        raise AssertionError(f"the bot synced no command {name!r}; synced: {self.commands}")

    async def slash(self, name: str, *, by: FakeUser, dm: bool = False,
                    channel_id: int | None = None, focused: str | None = None,
                    **options: Any) -> SentInteraction:
        """Push a slash command (or, with `focused`, its autocomplete) as the bot synced it."""
        guild_id = None if dm else self.GUILD_ID
        command = self.command(name, guild_id)
        types = {o["name"]: o["type"] for o in command.get("options", [])}
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1, "options": []}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        for key, value in options.items():
            if key not in types:
                raise AssertionError(f"/{name} has no option {key!r}; it has {sorted(types)}")
            if isinstance(value, FakeUser):
                data.setdefault("resolved", {}).setdefault("users", {})[str(value.id)] = (
                    value.payload())
                value = str(value.id)
            option = {"name": key, "type": types[key], "value": value}
            if key == focused:
                option["focused"] = True
            data["options"].append(option)
        kind = 4 if focused else 2
        return await self._interact(kind, data, user=by, dm=dm, channel_id=channel_id)

    async def click(self, message: dict[str, Any], custom_id: str, *, by: FakeUser,
                    dm: bool = False) -> SentInteraction:
        """Press the button `custom_id` on a message the bot sent."""
        ids = [c.get("custom_id") for row in message.get("components", [])
               for c in row.get("components", [])]
        if custom_id not in ids:
            raise AssertionError(f"no button {custom_id!r} on that message; it has {ids}")
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(3, data, user=by, dm=dm, message=message,
                                    channel_id=int(message["channel_id"]))

    async def submit_modal(self, custom_id: str, values: dict[str, str], *, by: FakeUser,
                           dm: bool = False, channel_id: int | None = None) -> SentInteraction:
        """Submit a modal with these text input values."""
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in values.items()]
        data = {"custom_id": custom_id, "components": rows}
        return await self._interact(5, data, user=by, dm=dm, channel_id=channel_id)

    async def _interact(self, kind: int, data: dict[str, Any], *, user: FakeUser, dm: bool,
                        channel_id: int | None = None,
                        message: dict[str, Any] | None = None) -> SentInteraction:
        interaction_id, token = self._snowflake(), f"itoken-{next(self._ids)}"
        channel_id = channel_id or (self.DM_CHANNEL_ID if dm else self.CHANNEL_ID)
        payload: dict[str, Any] = {
            "id": interaction_id, "application_id": str(self.APP_ID), "type": kind,
            "data": data, "token": token, "version": 1, "channel_id": str(channel_id),
            "channel": self._channel(channel_id, dm=dm, recipient=user),
            "app_permissions": str(MEMBER_PERMISSIONS), "locale": "en-US",
            "attachment_size_limit": self.attachment_size_limit, "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.GUILD_ID)},
            "context": 1 if dm else 0,
        }
        if dm:
            payload["user"] = user.payload()
        else:
            payload["guild_id"] = str(self.GUILD_ID)
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                "user": user.payload(), "roles": [str(r) for r in user.roles], "nick": None,
                "joined_at": _now(), "deaf": False, "mute": False, "flags": 0,
                "permissions": str(user.permissions),
            }
        if message is not None:
            payload["message"] = message
        self._interactions[token] = {"id": interaction_id, "channel_id": str(channel_id),
                                     "original": None, "dm": dm,
                                     "source": message["id"] if message else None}
        sent = SentInteraction(interaction_id, token, time.monotonic(), payload)
        await self.dispatch("INTERACTION_CREATE", payload)
        return sent

    # --- gateway ----------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH event to every connected bot."""
        await self.identified.wait()
        for ws in list(self._sockets):
            await ws.send_json({"op": 0, "t": event, "s": next(self._seq), "d": data})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}})
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame["op"] == 1:
                self.heartbeats += 1
                await ws.send_json({"op": 11})
            elif frame["op"] in (2, 6):  # IDENTIFY, or RESUME: a fresh session either way
                if frame["d"].get("token") != self.token or self.revoked:
                    await ws.close(code=4004)
                    break
                self._sockets.add(ws)
                self.sessions_at.append(time.monotonic())
                await ws.send_json({"op": 0, "t": "READY", "s": next(self._seq), "d": {
                    "v": 10, "user": self._bot_user(), "session_id": f"s{next(self._ids)}",
                    "resume_gateway_url": self.gateway_url, "guilds": [
                        {"id": str(self.GUILD_ID), "unavailable": True}],
                    "application": {"id": str(self.APP_ID), "flags": 0},
                }})
                await ws.send_json({"op": 0, "t": "GUILD_CREATE", "s": next(self._seq),
                                    "d": self._guild()})
                self.identified.set()
        self._sockets.discard(ws)
        return ws

    # --- REST -------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        parts = path.strip("/").split("/")
        payload, files = await _read_body(request)
        webhook = parts[0] in ("interactions", "webhooks")
        authorized = request.headers.get("Authorization") == f"Bot {self.token}"
        if not webhook and (not authorized or self.revoked):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        captured = Captured("other", request.method, path, payload, files, at=time.monotonic())
        if webhook and len(parts) >= 3:
            captured.token = parts[2]
        answer = self._route(request.method, parts, captured)
        if captured.kind in self.refuse:
            if captured.message is not None and captured.kind in ("followup", "channel_message"):
                self.messages.pop(captured.message["id"], None)
            captured.message = None
            answer = _json({"message": "Missing Access", "code": 50001}, status=403)
        await self._capture(captured)
        if answer is None:
            return web.Response(status=204)
        if isinstance(answer, web.Response):
            return answer
        return _json(answer)

    def _route(self, method: str, parts: list[str], cap: Captured) -> Any:
        head = parts[0]
        if parts == ["users", "@me"]:
            return self._bot_user()
        if parts == ["users", "@me", "channels"] and method == "POST":  # open a DM
            cap.kind = "open_dm"
            return self._channel(self.DM_CHANNEL_ID, dm=True, recipient=FakeUser(
                int(cap.payload.get("recipient_id", self.OWNER_ID)), "user"))
        if parts == ["users", "@me", "guilds"]:  # the servers the bot is in
            return [{"id": str(self.GUILD_ID), "name": "Fake Guild", "icon": None,
                     "owner": False, "permissions": str(MEMBER_PERMISSIONS), "features": []}]
        if parts in (["oauth2", "applications", "@me"], ["applications", "@me"]):
            return {"id": str(self.APP_ID), "name": "imagine", "description": "", "icon": None,
                    "bot_public": True, "bot_require_code_grant": False, "verify_key": "00",
                    "flags": 0, "owner": FakeUser(self.OWNER_ID, "owner").payload()}
        if head == "applications" and parts[-1] == "commands" and method == "GET":
            return self._registered(parts)
        if parts[:2] == ["gateway", "bot"]:
            return {"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}
        if head == "applications" and parts[-1] == "commands" and method == "PUT":
            cap.kind = "command_sync"
            guild = parts[3] if len(parts) == 5 else None
            synced = [dict(c, id=self._snowflake(), application_id=str(self.APP_ID),
                           version="1", **({"guild_id": guild} if guild else {}))
                      for c in cap.payload.get("items", [])]
            self.commands[guild] = synced
            return synced
        if head == "interactions":
            return self._callback(parts[1], parts[2], cap)
        if head == "webhooks":
            return self._webhook(method, parts, cap)
        if head == "channels" and len(parts) >= 3 and parts[2] == "messages":
            return self._channel_message(method, parts, cap)
        if head == "channels" and len(parts) == 2:
            return self._channel(int(parts[1]), dm=int(parts[1]) == self.DM_CHANNEL_ID)
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _registered(self, parts: list[str]) -> Any:
        """GET /applications/{id}[/guilds/{guild}]/commands: what the bot synced there."""
        if parts[1] != str(self.APP_ID):
            return _json({"message": "Unknown Application", "code": 10002}, status=404)
        guild = parts[3] if len(parts) == 5 else None
        if guild is not None and guild != str(self.GUILD_ID):
            # Discord's answer when the bot is not in that server (or lacks the
            # applications.commands scope there).
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        return self.commands.get(guild, [])

    def _callback(self, interaction_id: str, token: str, cap: Captured) -> Any:
        cap.kind = "callback"
        state = self._interactions.get(token)
        if state is None or state["id"] != interaction_id:
            return _json({"message": "Unknown interaction", "code": 10062},
                                     status=404)
        kind, data = cap.payload.get("type"), cap.payload.get("data") or {}
        body: dict[str, Any] = {"interaction": {"id": interaction_id, "type": 2}}
        if kind in (4, 5):
            flags = int(data.get("flags", 0)) | (128 if kind == 5 else 0)
            message = self._message(state["channel_id"], data, cap.files, flags=flags)
            state["original"] = message["id"]
            cap.message = message
            body["interaction"].update(response_message_id=message["id"],
                                       response_message_loading=kind == 5,
                                       response_message_ephemeral=bool(flags & 64))
            body["resource"] = {"type": kind, "message": message}
        elif kind == 7:  # UPDATE_MESSAGE: the message whose button was pressed
            source = self.messages.get(state.get("source") or "")
            if source is not None:
                cap.message = self._edit(source, data, cap.files)
        return body

    def _webhook(self, method: str, parts: list[str], cap: Captured) -> Any:
        token = parts[2]
        state = self._interactions.get(token)
        if parts[1] != str(self.APP_ID) or state is None:
            return _json({"message": "Unknown Webhook", "code": 10015}, status=404)
        if len(parts) == 3 and method == "POST":
            cap.kind = "followup"
            message = self._message(state["channel_id"], cap.payload, cap.files,
                                    flags=int(cap.payload.get("flags", 0)), webhook=True)
            cap.message = message
            return message
        message_id = parts[4] if len(parts) > 4 else ""
        if message_id == "@original":
            message_id = state["original"] or ""
        message = self.messages.get(message_id)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        is_original = message_id == state["original"]
        if method == "GET":
            cap.kind = "get_original" if is_original else "other"
            return message
        if method == "DELETE":
            cap.kind = "delete_original" if is_original else "delete_message"
            self.messages.pop(message_id, None)
            return None
        cap.kind = "edit_original" if is_original else "edit_message"
        cap.message = self._edit(message, cap.payload, cap.files)
        return cap.message

    def _channel_message(self, method: str, parts: list[str], cap: Captured) -> Any:
        channel_id = parts[1]
        if method == "POST" and len(parts) == 3:
            cap.kind = "channel_message"
            cap.message = self._message(channel_id, cap.payload, cap.files, flags=0)
            return cap.message
        message = self.messages.get(parts[3]) if len(parts) > 3 else None
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if method == "DELETE":
            cap.kind = "delete_message"
            self.messages.pop(parts[3], None)
            return None
        if method == "PATCH":
            cap.kind = "edit_message"
            cap.message = self._edit(message, cap.payload, cap.files)
            return cap.message
        return message

    # --- payload builders -------------------------------------------------------------------

    def _snowflake(self) -> str:
        """A snowflake that encodes now, as Discord's do."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    def _bot_user(self) -> dict[str, Any]:
        return {"id": str(self.BOT_ID), "username": "imagine", "discriminator": "0",
                "global_name": None, "avatar": None, "bot": True, "verified": True,
                "mfa_enabled": False, "flags": 0}

    def _message(self, channel_id: str, body: dict[str, Any], files: list[FakeFile], *,
                 flags: int, webhook: bool = False) -> dict[str, Any]:
        message_id = self._snowflake()
        reference = body.get("message_reference")
        message: dict[str, Any] = {
            "id": message_id, "channel_id": str(channel_id), "type": 19 if reference else 0,
            "author": self._bot_user(), "content": "", "timestamp": _now(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": [], "embeds": [], "components": [],
            "pinned": False, "flags": flags, "application_id": str(self.APP_ID),
        }
        if reference:
            message["message_reference"] = reference
        if webhook:
            message["webhook_id"] = str(self.APP_ID)
        if not (self.DM_CHANNEL_ID == int(channel_id)):
            message["guild_id"] = str(self.GUILD_ID)
        self.messages[message_id] = message
        self._edit(message, body, files)
        return message

    def _edit(self, message: dict[str, Any], body: dict[str, Any],
              files: list[FakeFile]) -> dict[str, Any]:
        for key in ("content", "embeds", "components"):
            if key in body and body[key] is not None:
                message[key] = body[key]
        if "attachments" in body:
            kept = {str(a["id"]): a for a in message["attachments"]}
            attachments = []
            for item in body["attachments"] or []:
                if str(item["id"]) in kept:
                    attachments.append(kept[str(item["id"])])
                    continue
                upload = next((f for f in files if f.field == f"files[{item['id']}]"), None)
                if upload is not None:
                    attachments.append({
                        "id": self._snowflake(), "filename": upload.filename,
                        "size": len(upload.data), "content_type": upload.content_type,
                        "url": f"http://127.0.0.1:{self.port}/a/{upload.filename}",
                        "proxy_url": f"http://127.0.0.1:{self.port}/a/{upload.filename}",
                    })
            message["attachments"] = attachments
        if "flags" in body and body["flags"] is not None:
            message["flags"] = int(body["flags"]) & ~128
        elif message["flags"] & 128 and ("content" in body or "embeds" in body):
            message["flags"] &= ~128  # the "thinking" state ends with the first edit
        return message

    def _channel(self, channel_id: int, *, dm: bool = False,
                 recipient: FakeUser | None = None) -> dict[str, Any]:
        if dm:
            who = (recipient or FakeUser(self.OWNER_ID, "owner")).payload()
            return {"id": str(channel_id), "type": 1, "recipients": [who],
                    "last_message_id": None}
        if channel_id == self.THREAD_ID:
            return {"id": str(channel_id), "type": 11, "name": "thread",
                    "guild_id": str(self.GUILD_ID), "parent_id": str(self.CHANNEL_ID),
                    "owner_id": str(self.OWNER_ID), "nsfw": False,
                    "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                        "archive_timestamp": _now(), "locked": False},
                    "message_count": 0, "member_count": 1, "rate_limit_per_user": 0,
                    "permissions": str(MEMBER_PERMISSIONS)}
        return {"id": str(channel_id), "type": 0, "guild_id": str(self.GUILD_ID),
                "name": "nsfw" if channel_id == self.NSFW_CHANNEL_ID else "general",
                "position": 0, "permission_overwrites": [], "topic": None,
                "nsfw": channel_id == self.NSFW_CHANNEL_ID, "rate_limit_per_user": 0,
                "parent_id": None, "last_message_id": None,
                "permissions": str(MEMBER_PERMISSIONS)}

    def _guild(self) -> dict[str, Any]:
        everyone = {"id": str(self.GUILD_ID), "name": "@everyone", "color": 0, "hoist": False,
                    "position": 0, "permissions": str(MEMBER_PERMISSIONS), "managed": False,
                    "mentionable": False, "flags": 0}
        role = dict(everyone, id=str(self.ROLE_ID), name="imagine-admins", position=1,
                    permissions="0")
        channels = [self._channel(self.CHANNEL_ID), self._channel(self.NSFW_CHANNEL_ID)]
        return {
            "id": str(self.GUILD_ID), "name": "Fake Guild", "icon": None,
            "owner_id": str(self.OWNER_ID), "roles": [everyone, role], "emojis": [], "stickers": [],
            "features": [], "member_count": 3, "large": False, "unavailable": False,
            "joined_at": _now(), "channels": channels, "threads": [
                self._channel(self.THREAD_ID)], "members": [], "voice_states": [],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "premium_tier": 0, "verification_level": 0, "nsfw_level": 0, "mfa_level": 0,
            "preferred_locale": "en-US",
        }


async def _read_body(request: web.Request) -> tuple[dict[str, Any], list[FakeFile]]:
    """JSON, or multipart with payload_json and files[n] (bytes kept)."""
    if request.content_type.startswith("multipart/"):
        payload: dict[str, Any] = {}
        files: list[FakeFile] = []
        reader = await request.multipart()
        async for part in reader:
            data = await part.read()  # type: ignore[union-attr]
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(data)
            else:
                files.append(FakeFile(name, part.filename or "",  # type: ignore[union-attr]
                                      part.headers.get("Content-Type", ""), bytes(data)))
        return payload, files
    if request.can_read_body:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        return (body if isinstance(body, dict) else {"items": body}), []
    return {}, []


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON with the bare content type Discord sends (discord.py compares it exactly)."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


def _now() -> str:
    return datetime.now(UTC).isoformat()
