"""The ImageBackend protocol: what the dispatcher needs from Segmind or our worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.core.request import ImagineRequest

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str  # image/png | image/jpeg | image/webp
    seed: int

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
            self.content_type, "bin"
        )


@dataclass(frozen=True)
class GenerationResult:
    images: tuple[GeneratedImage, ...]
    remaining_credits: float | None = None  # Segmind's x-remaining-credits, when sent
    # The drop of x-remaining-credits across this request's own calls, when no other call of
    # this process overlapped them, and since when (unix time of the value it dropped from).
    credits_spent: float | None = None
    spent_since: float | None = None


@dataclass(frozen=True)
class BackendHealth:
    name: str
    ok: bool
    detail: str
    remaining_credits: float | None = None


class ImageBackend(Protocol):
    """Generates images for a validated request, raising BackendError subclasses on failure."""

    name: str

    def serves(self, model: str) -> bool:
        """Whether this backend can serve `model` right now."""
        ...

    def accepts(self, request: ImagineRequest) -> bool:
        """Whether this backend, as last seen, can run the request's model, sampler and
        scheduler (auto routing sends what the worker cannot do to Segmind)."""
        ...

    def supports_variation(self, model: str) -> bool:
        """Whether variation_seed / variation_strength are honoured for `model`."""
        ...

    async def generate(self, request: ImagineRequest) -> GenerationResult:
        """Generate request.samples images (seed, seed+1, ...)."""
        ...

    async def health(self) -> BackendHealth:
        """Reachability and remaining credits, for doctor and auto routing."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
