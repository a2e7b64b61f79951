"""The guard around every chat handler: a failure becomes one sentence for the user."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.core.errors import ImagineError

log = logging.getLogger("bot.chat")

# True wherever it is said: a job's charge and its row are written in one transaction.
UNEXPECTED = ("Something went wrong on our side; please try again in a moment. "
              "Nothing is charged for a request that did not start.")


async def guarded(what: str, work: Callable[[], Awaitable[object]],
                  tell: Callable[[str], Awaitable[object]]) -> None:
    """Run `work`; an ImagineError tells its sentence, anything else is logged with its
    traceback and tells UNEXPECTED. `tell` must not raise (it is the last word)."""
    try:
        await work()
    except ImagineError as error:
        await tell(error.sentence())
    except Exception:
        log.exception("%s failed", what)
        await tell(UNEXPECTED)
