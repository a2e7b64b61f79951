"""A REPL where /imagine, /quota and the button actions work as they do in chat."""

from __future__ import annotations

import asyncio
import getpass
import logging
import shlex
import sys
import threading
from typing import TextIO

from bot.chat.actions import Action, Deleted, ShowInfo, Started, perform
from bot.chat.guard import guarded
from bot.chat.render import fields_text, history_lines, progress_text, queue_lines, result_fields
from bot.chat.settings import console_settings
from bot.core.admin import parse_admin, run_admin
from bot.core.errors import ImagineError
from bot.core.jobs import Actor, JobDone, JobEvent, JobFailed, ReplyTarget
from bot.core.service import ImagineService

log = logging.getLogger(__name__)

HELP = """Commands:
  /imagine PROMPT [--ar 16:9 --seed 5 --no TEXT --steps N --cfg X --model NAME --n N ...]
  /quota                       your balance
  /quota-admin ACTION ...      show|set|grant|reset|block|unblock|top (you are the admin here)
  stats [24h|7d|30d]           jobs, images, money and speed; the chart is saved as a PNG
  reroll N | vary N [IMAGE] | edit N NEW PROMPT | info N | delete N | cancel N | again N
                               N is the number printed with each job (or a job id)
  queue                        your waiting and running jobs, and the queue's length
  history                      your last 10 jobs; again JOB_ID runs one again, same seed
  settings [server] show | set --model M --ar W:H --steps N ... | reset [NAME ...]
                               your defaults (a typed flag still wins)
  help | quit"""


class ConsoleChat:
    """One operator at a terminal; job numbers are short aliases for job ids."""

    def __init__(self, service: ImagineService, out: TextIO = sys.stdout,
                 user: str | None = None) -> None:
        self.service = service
        self.out = out
        # The operator pays like any user; /quota-admin is allowed because they own the terminal.
        self.actor = Actor("console", user_id=user or _user(), display_name=user or _user())
        self.target = ReplyTarget(platform="console", channel_id="console")
        self.numbers: dict[int, str] = {}
        self.pending: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.service.listen("console", self.on_event)

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def on_event(self, event: JobEvent) -> None:
        """Print progress and results as they come."""
        number = self._number(event.job.id)
        if isinstance(event, JobDone):
            self._say(f"[{number}] done: " + fields_text(result_fields(event.job, event.balance)))
            for path in event.images:
                self._say(f"[{number}]   {path}")
        elif isinstance(event, JobFailed):
            self._say(f"[{number}] {event.message}")
        else:
            self._say(f"[{number}] {progress_text(event)}")
        if isinstance(event, JobDone | JobFailed):
            await self.service.mark_delivered(event.job.id)
            self.pending.discard(event.job.id)
            if not self.pending:
                self._idle.set()

    def _track(self, job_id: str) -> None:
        self.pending.add(job_id)
        self._idle.clear()

    async def wait_idle(self, seconds: float = 600) -> None:
        """Wait until every job started here has finished (input ended)."""
        async with asyncio.timeout(seconds):
            await self._idle.wait()

    async def handle(self, line: str) -> bool:
        """Run one line; False means quit. Errors become one sentence, never a traceback."""
        line = line.strip()
        go_on = True

        async def run() -> None:
            nonlocal go_on
            go_on = await self._dispatch(line)

        if line:
            await guarded(f"console command {line[:200]!r}", run, self._tell)
        return go_on

    async def _tell(self, sentence: str) -> None:
        self._say(sentence)

    async def _dispatch(self, line: str) -> bool:
        head, _, rest = line.partition(" ")
        head = head.lower()
        if head in ("quit", "exit", "/quit"):
            return False
        if head in ("help", "/help"):
            self._say(HELP)
        elif head == "/imagine":
            job = await self.service.imagine(self.actor, rest, None, self.target, nsfw_allowed=True)
            self._track(job.id)
            self._say(f"[{self._number(job.id)}] queued {job.request.summary()}, {job.cost} credits")
        elif head in ("settings", "/settings"):
            self._say(await console_settings(self.service, self.actor, rest))
        elif head == "/quota":
            self._say((await self.service.quota_status(self.actor)).sentence())
        elif head == "/quota-admin":
            try:
                words = shlex.split(rest)
            except ValueError:  # an unbalanced quote
                raise ImagineError("A quote is not closed; close it or leave the quotes out.") from None
            command = parse_admin(words)
            self._say(await run_admin(self.service.quota, self.actor.scope, command))
        elif head in ("stats", "/stats"):
            from bot.chat.stats import console_stats

            self._say(await console_stats(self.service, rest.strip() or None))
        elif head in ("queue", "/queue"):
            self._say("\n".join(queue_lines(await self.service.queue(self.actor))))
        elif head in ("history", "/history"):
            jobs = await self.service.history(self.actor)
            self._say("\n".join(history_lines(jobs)))
        elif head in set(Action):
            await self._button(Action(head), rest)
        else:
            self._say(f"Unknown command {head[:30]!r}; type help.")
        return True

    async def _button(self, action: Action, rest: str) -> None:
        words = rest.split(maxsplit=1)
        if not words:
            raise ImagineError(f"{action} needs a job number, as in {action} 1.")
        job_id = self._job_id(words[0])
        extra = words[1] if len(words) > 1 else ""
        index = int(extra) - 1 if action is Action.VARY and extra.strip().isdigit() else 0
        outcome = await perform(self.service, self.actor, action, job_id, self.target,
                                index=index, nsfw_allowed=True,
                                text=extra if action is Action.EDIT else None)
        if isinstance(outcome, Started):
            job = outcome.job
            self._track(job.id)
            self._say(f"[{self._number(job.id)}] queued {job.action} {job.request.summary()}, "
                      f"{job.cost} credits")
        elif isinstance(outcome, ShowInfo):
            self._say("\n".join(f"  {name}: {value}" for name, value in outcome.fields))
        elif isinstance(outcome, Deleted):
            self._say("Deleted.")
        # Cancelled: the job's own event prints it.

    def _number(self, job_id: str) -> int:
        for number, known in self.numbers.items():
            if known == job_id:
                return number
        number = len(self.numbers) + 1
        self.numbers[number] = job_id
        return number

    def _job_id(self, word: str) -> str:
        if word.isdigit() and int(word) in self.numbers:
            return self.numbers[int(word)]
        return word  # a full job id also works


async def run_console(service: ImagineService, stdin: TextIO = sys.stdin,
                      out: TextIO = sys.stdout) -> None:
    """Read commands until quit or end of input."""
    chat = ConsoleChat(service, out)
    print("imagine-bot console. Type help for commands.", file=out, flush=True)
    lines = _read_lines(stdin)
    while True:
        print("> ", end="", file=out, flush=True)
        line = await lines.get()
        if not line:
            break
        if not await chat.handle(line):
            break
    if chat.pending:
        print(f"Waiting for {len(chat.pending)} job(s) to finish…", file=out, flush=True)
        await chat.wait_idle()
    await service.bus.drain()


def _read_lines(stdin: TextIO) -> asyncio.Queue[str]:
    """Lines of `stdin` as they come ("" at the end), read by a daemon thread: a blocked read
    must not keep the process alive once a signal stopped the bot (an executor thread would,
    as asyncio.run waits for it)."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        try:
            for line in iter(stdin.readline, ""):
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "")
        except (RuntimeError, ValueError):  # the loop or the stream closed: nobody listens
            pass

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return lines


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "local"
