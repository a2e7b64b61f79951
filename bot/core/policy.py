"""The content policy: blocked terms everywhere, NSFW terms only where the channel allows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.errors import PolicyError


@dataclass(frozen=True)
class ContentPolicy:
    blocked_terms: tuple[str, ...] = ()
    nsfw_terms: tuple[str, ...] = ()

    def check(self, prompt: str, *, nsfw_allowed: bool) -> None:
        """Raise PolicyError when the prompt uses a term this channel does not allow."""
        if _find(self.blocked_terms, prompt):
            raise PolicyError(
                "That prompt uses a term this server does not allow. Nothing was charged."
            )
        if not nsfw_allowed and _find(self.nsfw_terms, prompt):
            raise PolicyError(
                "That prompt is only allowed in age-restricted (NSFW) channels. "
                "Nothing was charged."
            )


def _find(terms: tuple[str, ...], text: str) -> str | None:
    lowered = text.casefold()
    for term in terms:
        if re.search(rf"(?<!\w){re.escape(term.casefold())}(?!\w)", lowered):
            return term
    return None
