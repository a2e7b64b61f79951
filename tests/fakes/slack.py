"""FakeSlack: a loopback Slack Web API, file-upload URLs and Socket Mode websocket (aiohttp).

Point the real slack-sdk / slack-bolt at it with ``api_base_url = fake.base_url``::

    async with FakeSlack(users={"UADMIN": {"is_admin": True}}) as fake:
        settings.slack.api_base_url = fake.base_url      # the bot's AsyncWebClient goes here
        ack = await fake.slash_command("/imagine", "a red fox --ar 3:4", user="U0ANN")
        message = await fake.wait_for("files.completeUploadExternal")

What it serves (``POST /api/<method>``; arguments may come as a query string, a form or JSON):

- ``auth.test``; ``apps.connections.open`` (needs the app token) answering ``ws://.../socket``
- ``chat.postMessage``, ``chat.update``, ``chat.delete``, ``chat.postEphemeral``
- ``files.getUploadURLExternal`` -> ``POST /upload/<file id>`` (the bytes are kept in
  ``uploads``) -> ``files.completeUploadExternal``; ``files.delete``
- ``views.open``; ``users.info`` (from ``users``; unknown ids answer ``user_not_found``)
- ``conversations.history`` and ``conversations.info`` for DMs: ``im_with(user)`` is that
  user's DM with the bot (its App Home Messages tab); any other ``D…`` channel is a DM between
  other people, where every call answers ``channel_not_found``, as Slack does for a bot that is
  not part of it (posting there included)
- ``POST /respond/<id>``: the response_url of commands and clicks (recorded as "response_url")
- any other method answers ``{"ok": false, "error": "unknown_method"}``.

Every Web API call needs ``Authorization: Bearer <bot_token>`` (``apps.connections.open``:
the app token), else ``invalid_auth``. Every call is recorded in ``calls`` (``Call``: method,
args, status, answer, at), posted and edited messages in ``messages`` (ts -> ``Message`` with ``history``,
one entry per text it has shown). ``rate_limit(method, times, retry_after)`` answers the next
``times`` calls of ``method`` with 429 and ``Retry-After``, as Slack does. Posting into a
channel listed in ``absent_from`` answers ``not_in_channel``, as for a bot nobody invited.

Tokens and scopes: a call made with a token in ``revoked_tokens`` answers ``token_revoked``
(as after an uninstall or an app-level token being revoked). Calls made with the bot token carry
the ``x-oauth-scopes`` header, as Slack's do: the scopes in ``scopes`` (by default the bot
scopes of the app manifest in docs/slack.md), comma-separated.

Broken answers: ``html_error(method, status, content_type)`` makes every later call of
``method`` answer an HTML error page with that status and content type, as a proxy or Slack's
edge does; ``html_errors.pop(method)`` ends it.

The websocket (``GET /socket``) greets with ``hello``; ``send_envelope`` pushes an envelope
into it and ``ack(envelope_id)`` waits for the app's acknowledgement. ``slash_command``,
``mention``, ``direct_message`` (a ``message.im`` event), ``click`` and ``submit_view`` build the
payloads Slack sends and return the ack; ``send_envelope(..., retry_attempt=1)`` re-sends one as
Slack retries it.
``signed_post`` sends the same payloads as HTTP Mode requests, signed like Slack signs them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
# The bot scopes the app manifest in docs/slack.md asks for.
MANIFEST_SCOPES = ("commands", "chat:write", "files:write", "app_mentions:read", "users:read",
                   "im:history")
ERROR_PAGE = "<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"


@dataclass
class Call:
    """One Web API call as it reached the fake."""

    method: str
    args: dict[str, Any]
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)  # the JSON the fake answered
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Message:
    """A message the app posted; ``history`` holds every text it showed, oldest first."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    history: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Upload:
    """A file uploaded through files.getUploadURLExternal and its upload URL."""

    id: str
    filename: str
    length: int
    data: bytes = b""
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False


class FakeSlack:
    """A loopback Slack: Web API, upload URLs and a Socket Mode websocket on 127.0.0.1."""

    def __init__(
        self,
        *,
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        users: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_token = bot_token
        self.app_token = app_token
        self.users: dict[str, dict[str, Any]] = {}
        for user_id, info in (users or {}).items():
            self.add_user(user_id, **info)
        self.calls: list[Call] = []
        self.messages: dict[str, Message] = {}
        self.uploads: dict[str, Upload] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.absent_from: set[str] = set()  # channels the bot is not in: posting there fails
        self.ims: dict[str, str] = {}  # user id -> the user's DM with the bot (im_with)
        self.revoked_tokens: set[str] = set()  # calls with these tokens answer token_revoked
        self.scopes: list[str] = list(MANIFEST_SCOPES)  # sent in x-oauth-scopes (bot token)
        self.html_errors: dict[str, tuple[int, str]] = {}  # method -> (status, content type)
        self._limits: dict[str, list[int]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self.connections = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- life cycle ---------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The Web API base URL for AsyncWebClient(base_url=...): http://127.0.0.1:PORT/api/"""
        return f"{self.root_url}/api/"

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        """Close the websocket and stop serving."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- knobs and helpers for tests ----------------------------------------------------

    def add_user(self, user_id: str, *, name: str = "", is_admin: bool = False,
                 is_owner: bool = False, display_name: str = "") -> None:
        """Make users.info know this user."""
        name = name or user_id.lower()
        self.users[user_id] = {
            "id": user_id, "team_id": self.team_id, "name": name, "real_name": name.title(),
            "is_admin": is_admin, "is_owner": is_owner, "is_primary_owner": False,
            "is_bot": False, "profile": {"display_name": display_name or name,
                                         "real_name": name.title()},
        }

    def im_with(self, user: str) -> str:
        """The channel id of `user`'s DM with the bot (its App Home Messages tab)."""
        return self.ims.setdefault(user, f"D{user.removeprefix('U')}BOT")

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 0) -> None:
        """Answer the next `times` calls of `method` with 429 and Retry-After."""
        self._limits[method].extend([retry_after] * times)

    def html_error(self, method: str, status: int = 500, content_type: str = "text/html") -> None:
        """Answer every later call of `method` with an HTML error page (not Slack's JSON)."""
        self.html_errors[method] = (status, content_type)

    def calls_to(self, method: str, *, status: int | None = 200) -> list[dict[str, Any]]:
        """The arguments of every call to `method` (only served ones unless status=None)."""
        return [c.args for c in self.calls
                if c.method == method and (status is None or c.status == status)]

    def posted(self, channel: str | None = None) -> list[Message]:
        """Messages posted with chat.postMessage, oldest first."""
        return [m for m in self.messages.values() if channel in (None, m.channel)]

    async def wait_for(self, method: str, count: int = 1, within: float = 10.0,
                       **match: Any) -> list[dict[str, Any]]:
        """Wait until `count` served calls of `method` (with args equal to `match`) arrived."""
        def found() -> list[dict[str, Any]]:
            return [a for a in self.calls_to(method)
                    if all(a.get(k) == v for k, v in match.items())]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(found()) >= count),
                                   within)
        return found()

    async def wait_until(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until predicate() is true; it is checked after every call the fake serves."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), within)

    # --- Socket Mode ----------------------------------------------------------------------

    async def wait_connected(self, within: float = 10.0) -> None:
        """Wait until an app holds the Socket Mode websocket."""
        await self.wait_until(lambda: self._ws is not None and not self._ws.closed, within)

    async def send_envelope(self, kind: str, payload: dict[str, Any], *,
                            accepts_response_payload: bool = False,
                            retry_attempt: int = 0) -> str:
        """Push one Socket Mode envelope (slash_commands, events_api, interactive); with
        retry_attempt > 0 it is Slack's retry of an event it thinks went unacknowledged."""
        await self.wait_connected()
        envelope_id = f"env-{next(self._ids)}"
        assert self._ws is not None
        await self._ws.send_json({
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else "",
        })
        return envelope_id

    async def ack(self, envelope_id: str, within: float = 3.0) -> dict[str, Any]:
        """The app's acknowledgement of an envelope; Slack wants it within 3 seconds."""
        await self.wait_until(lambda: envelope_id in self.acks, within)
        return self.acks[envelope_id]

    async def slash_command(self, command: str, text: str, **who: Any) -> dict[str, Any]:
        """Send a slash command over Socket Mode; returns the ack (its payload, if any)."""
        envelope = await self.send_envelope("slash_commands", self.command_payload(
            command, text, **who), accepts_response_payload=True)
        return await self.ack(envelope)

    async def mention(self, text: str, **who: Any) -> dict[str, Any]:
        """Send an app_mention event over Socket Mode; returns the ack."""
        envelope = await self.send_envelope("events_api", self.mention_payload(text, **who))
        return await self.ack(envelope)

    async def direct_message(self, text: str, **who: Any) -> dict[str, Any]:
        """Send a message.im event (a message to the bot in its DM) over Socket Mode."""
        envelope = await self.send_envelope("events_api", self.direct_message_payload(
            text, **who))
        return await self.ack(envelope)

    async def click(self, message: Message, action_id: str, **who: Any) -> dict[str, Any]:
        """Click the button `action_id` on a posted message over Socket Mode; returns the ack."""
        envelope = await self.send_envelope("interactive", self.click_payload(
            message, action_id, **who))
        return await self.ack(envelope)

    async def submit_view(self, view: dict[str, Any], values: dict[str, str],
                          **who: Any) -> dict[str, Any]:
        """Submit a modal that views.open showed, with {action_id: text}; returns the ack."""
        envelope = await self.send_envelope("interactive", self.view_payload(
            view, values, **who), accepts_response_payload=True)
        return await self.ack(envelope)

    # --- payloads as Slack sends them -----------------------------------------------------

    def command_payload(self, command: str, text: str, *, user: str = "U0001",
                        channel: str = "C0001", team: str | None = None) -> dict[str, Any]:
        """A slash command payload (what a form-encoded HTTP request carries)."""
        return {
            "token": "verification-token", "team_id": team or self.team_id,
            "team_domain": "fake", "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "general",
            "user_id": user, "user_name": self._name(user), "command": command, "text": text,
            "api_app_id": "A0001", "is_enterprise_install": "false",
            "response_url": f"{self.root_url}/respond/{next(self._ids)}",
            "trigger_id": f"trigger-{next(self._ids)}",
        }

    def mention_payload(self, text: str, *, user: str = "U0001", channel: str = "C0001",
                        team: str | None = None, thread_ts: str | None = None) -> dict[str, Any]:
        """An events_api app_mention callback; `text` is as Slack escapes it."""
        ts = self._ts()
        event: dict[str, Any] = {
            "type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel,
            "event_ts": ts, "team": team or self.team_id,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return {
            "token": "verification-token", "team_id": team or self.team_id,
            "api_app_id": "A0001", "event": event, "type": "event_callback",
            "event_id": f"Ev{next(self._ids)}", "event_time": int(time.time()),
            "authorizations": [{"team_id": team or self.team_id, "user_id": self.bot_user_id,
                                "is_bot": True, "is_enterprise_install": False}],
        }

    def direct_message_payload(self, text: str, *, user: str = "U0001",
                               team: str | None = None,
                               thread_ts: str | None = None) -> dict[str, Any]:
        """An events_api message.im callback: `user` wrote `text` in their DM with the bot."""
        payload = self.mention_payload(text, user=user, channel=self.im_with(user), team=team,
                                       thread_ts=thread_ts)
        payload["event"].update(type="message", channel_type="im",
                                client_msg_id=f"msg-{next(self._ids)}")
        return payload

    def click_payload(self, message: Message, action_id: str, *, user: str = "U0001",
                      team: str | None = None) -> dict[str, Any]:
        """A block_actions payload for the button `action_id` of `message`."""
        button = self.button(message, action_id)
        team = team or self.team_id
        container: dict[str, Any] = {"type": "message", "message_ts": message.ts,
                                     "channel_id": message.channel, "is_ephemeral": False}
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions", "api_app_id": "A0001", "token": "verification-token",
            "team": {"id": team, "domain": "fake"},
            "user": {"id": user, "username": self._name(user), "name": self._name(user),
                     "team_id": team},
            "container": container, "trigger_id": f"trigger-{next(self._ids)}",
            "channel": {"id": message.channel, "name": "general"},
            "message": {"type": "message", "ts": message.ts, "text": message.text,
                        "blocks": message.blocks, "user": self.bot_user_id,
                        **({"thread_ts": message.thread_ts} if message.thread_ts else {})},
            "response_url": f"{self.root_url}/respond/{next(self._ids)}",
            "actions": [{**button, "block_id": button.get("block_id", "b"),
                         "action_ts": self._ts()}],
        }

    def view_payload(self, view: dict[str, Any], values: dict[str, str], *, user: str = "U0001",
                     team: str | None = None) -> dict[str, Any]:
        """A view_submission payload: the modal's inputs filled with {action_id: text} (for a
        static_select, the value of one of its options)."""
        state: dict[str, dict[str, Any]] = {}
        for block in view.get("blocks", []):
            element = block.get("element") or {}
            action_id = element.get("action_id")
            if block.get("type") != "input" or action_id is None:
                continue
            if element["type"] == "static_select":  # Slack sends the chosen option itself
                options = {o["value"]: o for o in element.get("options", [])}
                chosen = (options[values[action_id]] if action_id in values
                          else element.get("initial_option"))
                state[block["block_id"]] = {action_id: {"type": "static_select",
                                                        "selected_option": chosen}}
                continue
            value = values.get(action_id, element.get("initial_value"))
            state[block["block_id"]] = {action_id: {"type": element["type"], "value": value}}
        team = team or self.team_id
        return {
            "type": "view_submission", "team": {"id": team, "domain": "fake"},
            "user": {"id": user, "username": self._name(user), "name": self._name(user),
                     "team_id": team},
            "api_app_id": "A0001", "token": "verification-token",
            "trigger_id": f"trigger-{next(self._ids)}",
            "view": {**view, "id": f"V{next(self._ids)}", "team_id": team,
                     "state": {"values": state}, "hash": "h", "app_id": "A0001"},
            "response_urls": [],
        }

    @staticmethod
    def button(message: Message, action_id: str) -> dict[str, Any]:
        """The button element `action_id` in `message`'s blocks (with its block_id)."""
        for block in message.blocks:
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return {**element, "block_id": block.get("block_id", "b")}
        raise AssertionError(f"no button {action_id!r} in message {message.ts}")

    # --- HTTP Mode ------------------------------------------------------------------------

    @staticmethod
    def sign(body: str, *, secret: str = SIGNING_SECRET,
             timestamp: int | None = None) -> dict[str, str]:
        """The headers Slack adds to an HTTP Mode request: timestamp and v0 signature."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}

    @classmethod
    async def signed_post(cls, url: str, payload: dict[str, Any], *, kind: str = "command",
                          secret: str = SIGNING_SECRET,
                          timestamp: int | None = None) -> tuple[int, str]:
        """POST a payload to an HTTP Mode app as Slack would; returns (status, body).

        kind: "command" (form fields), "interactive" (payload=<json>) or "event" (JSON).
        """
        if kind == "event":
            body, ctype = json.dumps(payload), "application/json"
        elif kind == "interactive":
            body = urllib.parse.urlencode({"payload": json.dumps(payload)})
            ctype = "application/x-www-form-urlencoded"
        else:
            body = urllib.parse.urlencode(payload)
            ctype = "application/x-www-form-urlencoded"
        headers = {"Content-Type": ctype, **cls.sign(body, secret=secret, timestamp=timestamp)}
        async with aiohttp.ClientSession() as session, session.post(
            url, data=body.encode(), headers=headers
        ) as response:
            return response.status, await response.text()

    # --- the server -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        retry = self._limits.get(method)
        if retry:
            await self._record(Call(method, args, 429))
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(retry.pop(0))})
        broken = self.html_errors.get(method)
        if broken is not None:
            await self._record(Call(method, args, broken[0]))
            return web.Response(text=ERROR_PAGE.format(status=broken[0]), status=broken[0],
                                content_type=broken[1])
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = token or str(args.pop("token", ""))
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token in self.revoked_tokens:
            await self._record(Call(method, args, 401))
            return web.json_response({"ok": False, "error": "token_revoked"})
        if token != expected:
            await self._record(Call(method, args, 401))
            return web.json_response({"ok": False, "error": "invalid_auth"})
        headers = {"x-oauth-scopes": ",".join(self.scopes)} if token == self.bot_token else {}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        channel = args.get("channel") or args.get("channel_id")
        if channel in self.absent_from and method in _POSTING:
            body = {"ok": False, "error": "not_in_channel"}
        elif (isinstance(channel, str) and channel.startswith("D")
              and channel not in self.ims.values()):
            body = {"ok": False, "error": "channel_not_found"}  # a DM between other people
        elif handler is None:
            body = {"ok": False, "error": "unknown_method"}
        else:
            body = handler(args)
        await self._record(Call(method, args, 200 if body.get("ok") else 400, body))
        return web.json_response(body, headers=headers)

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake.slack.test/", "team": "Fake",
                "user": "imagine", "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": "B0001", "is_enterprise_install": False}

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = self._ts()
        text = str(args.get("text") or "")
        message = Message(str(args.get("channel")), ts, text, _blocks(args),
                          args.get("thread_ts") or None, [text])
        self.messages[ts] = message
        return {"ok": True, "channel": message.channel, "ts": ts,
                "message": {"text": text, "ts": ts, "user": self.bot_user_id}}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(str(args.get("ts")))
        if message is None or message.deleted or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        message.text = str(args.get("text") or "")
        message.blocks = _blocks(args)
        message.history.append(message.text)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(str(args.get("ts")))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._ts()}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):06d}"
        self.uploads[file_id] = Upload(file_id, str(args.get("filename")),
                                       int(args.get("length") or 0))
        return {"ok": True, "upload_url": f"{self.root_url}/upload/{file_id}",
                "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(args.get("files") or "[]")
        out = []
        for item in files:
            upload = self.uploads.get(item.get("id"))
            if upload is None or len(upload.data) != upload.length:
                return {"ok": False, "error": "file_not_found"}
            upload.completed, upload.title = True, item.get("title")
            upload.channel = args.get("channel_id") or None
            upload.thread_ts = args.get("thread_ts") or None
            upload.initial_comment = args.get("initial_comment") or None
            out.append({"id": upload.id, "name": upload.filename, "title": upload.title,
                        "size": upload.length})
        return {"ok": True, "files": out}

    def _m_files_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        upload = self.uploads.pop(str(args.get("file")), None)
        return {"ok": True} if upload else {"ok": False, "error": "file_not_found"}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not args.get("trigger_id") or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {**view, "id": f"V{next(self._ids)}"}}

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        limit = int(args.get("limit") or 100)
        newest_first = sorted((m for m in self.messages.values()
                               if m.channel == channel and not m.deleted),
                              key=lambda m: m.ts, reverse=True)[:limit]
        return {"ok": True, "has_more": False, "messages": [
            {"type": "message", "user": self.bot_user_id, "text": m.text, "ts": m.ts}
            for m in newest_first]}

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        user = next((u for u, c in self.ims.items() if c == channel), None)
        if user is not None:
            return {"ok": True, "channel": {"id": channel, "is_im": True, "user": user,
                                            "is_open": True}}
        return {"ok": True, "channel": {"id": channel, "is_channel": True,
                                        "is_member": channel not in self.absent_from}}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found")
        upload.data = await request.read()
        await self._record(Call("upload", {"file_id": upload.id, "length": len(upload.data)}))
        return web.Response(text=f"OK - {len(upload.data)}")

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        await self._record(Call("response_url", {"url_id": request.match_info["id"], **body}))
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws = ws
        self.connections += 1
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "fake"}, "connection_info": {"app_id": "A0001"}})
        await self._notify()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "envelope_id" in data:
                self.acks[data["envelope_id"]] = data
                await self._notify()
        return ws

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._ids):06d}"

    def _name(self, user_id: str) -> str:
        return str(self.users.get(user_id, {}).get("name") or user_id.lower())


_POSTING = frozenset({"chat.postMessage", "chat.update", "chat.delete", "chat.postEphemeral",
                      "files.completeUploadExternal"})


async def _arguments(request: web.Request) -> dict[str, Any]:
    """Query string, form fields and JSON body, merged as Slack's API reads them."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else {}
        args.update(body or {})
    elif request.can_read_body:
        args.update(dict(await request.post()))
    return args


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)
