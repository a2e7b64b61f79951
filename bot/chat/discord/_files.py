"""Result images as Discord attachments, re-encoded when one passes the upload limit."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import discord

log = logging.getLogger("bot.chat.discord")

MAX_ATTACHMENTS = 10
# Smaller encodings tried in turn for a file over the limit.
_SHRINK = (("WEBP", "webp", 90), ("JPEG", "jpg", 90), ("WEBP", "webp", 70), ("JPEG", "jpg", 60))
_NAMES = {"WEBP": "WebP", "JPEG": "JPEG"}


def attachments(job_id: str, images: tuple[Path, ...], limit: int
                ) -> tuple[list[discord.File], list[str]]:
    """discord.File objects for up to 10 images, and a note for each one re-encoded or left out."""
    files: list[discord.File] = []
    notes: list[str] = []
    for number, path in enumerate(images[:MAX_ATTACHMENTS], start=1):
        data = path.read_bytes()
        name = f"{job_id}-{number}{path.suffix or '.png'}"
        if len(data) > limit:
            shrunk = _shrink(data, limit)
            if shrunk is None:
                notes.append(f"Image {number} is too large to upload here and was left out.")
                continue
            data, kind, extension = shrunk
            name = f"{job_id}-{number}.{extension}"
            notes.append(f"Image {number} was sent as {kind} to fit Discord's upload limit.")
        files.append(discord.File(io.BytesIO(data), filename=name))
    if len(images) > MAX_ATTACHMENTS:
        notes.append(f"Only the first {MAX_ATTACHMENTS} images fit in one message.")
    return files, notes


def _shrink(data: bytes, limit: int) -> tuple[bytes, str, str] | None:
    """The first of WebP / JPEG at falling quality that fits, or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except Exception:  # not an image Pillow reads: leave it out rather than fail the result
        log.warning("a result image could not be decoded for re-encoding")
        return None
    for fmt, extension, quality in _SHRINK:
        out = io.BytesIO()
        rgb.save(out, format=fmt, quality=quality)
        if out.tell() <= limit:
            return out.getvalue(), _NAMES[fmt], extension
    return None
