"""Seeded starting noise, and variation seeds: a spherical blend of two seeds' noise.

The noise is drawn on the CPU in float32 from torch.Generator("cpu").manual_seed(seed), then
moved to the pipeline's device and dtype, so a seed gives the same starting noise on every
machine. A variation (the "variation seed" of the A1111 web UI) starts from
slerp(seed noise, variation_seed noise, strength): strength 0 is the seed's own image,
strength 1 the variation seed's, and values between move along the sphere on which Gaussian
noise of that size lives, so the blend keeps the norm a sampler expects.
"""

from __future__ import annotations

import torch

SEED_MODULUS = 2**32


def seed_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise of `shape` from `seed` (float32, CPU)."""
    generator = torch.Generator(device="cpu").manual_seed(seed % SEED_MODULUS)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def slerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from `start` (t=0) to `end` (t=1), over the whole tensor."""
    if t <= 0.0:
        return start.clone()
    if t >= 1.0:
        return end.clone()
    a, b = start.flatten().double(), end.flatten().double()
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    if cos.abs() > 0.9995:  # nearly parallel: the linear blend is exact enough
        mixed = (1.0 - t) * a + t * b
    else:
        omega = torch.arccos(cos)
        sin = torch.sin(omega)
        mixed = (torch.sin((1.0 - t) * omega) / sin) * a + (torch.sin(t * omega) / sin) * b
    return mixed.to(start.dtype).reshape(start.shape)


def starting_noise(
    seed: int,
    shape: tuple[int, ...],
    variation_seed: int | None = None,
    variation_strength: float = 0.0,
) -> torch.Tensor:
    """The seed's noise, or its slerp toward variation_seed's noise by variation_strength."""
    noise = seed_noise(seed, shape)
    if variation_seed is None or variation_strength <= 0.0:
        return noise
    return slerp(noise, seed_noise(variation_seed, shape), variation_strength)
