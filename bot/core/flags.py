"""Midjourney-style flags inside a prompt: "a knight --ar 3:4 --seed 5 --no blur"."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from bot.core.errors import ImagineError

# flag name -> the request field it sets
FLAGS: dict[str, str] = {
    "ar": "aspect_ratio",
    "aspect": "aspect_ratio",
    "seed": "seed",
    "no": "negative_prompt",
    "steps": "steps",
    "cfg": "cfg",
    "model": "model",
    "n": "samples",
    "samples": "samples",
    "sampler": "sampler",
    "scheduler": "scheduler",
    "format": "image_format",
    "quality": "image_quality",
    "w": "width",
    "h": "height",
}

# "--" or a dash that phones substitute for it ("—", "–"), at the start or after whitespace.
_FLAG = re.compile(r"(?:^|(?<=\s))(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)")


class UnknownFlag(ImagineError):
    """A flag we do not know, with the closest one we do."""

    def __init__(self, name: str) -> None:
        self.name = name
        close = difflib.get_close_matches(name.lower(), FLAGS, n=1, cutoff=0.5)
        hint = f" Did you mean --{close[0]}?" if close else ""
        known = ", ".join(f"--{f}" for f in FLAGS)
        super().__init__(f"Unknown flag --{name[:30]}.{hint} Known flags: {known}.")


@dataclass(frozen=True)
class ParsedPrompt:
    """The prompt text with its flags taken out, as field -> raw text."""

    prompt: str
    options: dict[str, str]


def parse_flags(text: str) -> ParsedPrompt:
    """Split `text` into the prompt and its flags; an unknown or repeated flag is an error."""
    matches = list(_FLAG.finditer(text))
    prompt = text[: matches[0].start()] if matches else text
    options: dict[str, str] = {}
    spelled: dict[str, str] = {}  # field -> the flag name that set it
    for i, match in enumerate(matches):
        name = match.group(1)
        field = FLAGS.get(name.lower())
        if field is None:
            raise UnknownFlag(name)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip()
        if field in options:
            first = spelled[field]
            if first == name.lower():
                raise ImagineError(f"The flag --{first} is given twice; give it once.")
            raise ImagineError(f"--{first} and --{name.lower()} both set {field}; give one.")
        spelled[field] = name.lower()
        if not value:
            raise ImagineError(f"The flag --{name.lower()} needs a value, as in --{name.lower()} 5.")
        options[field] = value
    return ParsedPrompt(prompt=prompt.strip(), options=options)
