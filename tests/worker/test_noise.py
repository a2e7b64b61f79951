"""Starting noise: seeded, and blended along the sphere for variation seeds."""

from __future__ import annotations

import torch

from bot.worker.noise import seed_noise, slerp, starting_noise

SHAPE = (1, 4, 32, 32)


def test_a_seed_always_draws_the_same_noise() -> None:
    assert torch.equal(seed_noise(7, SHAPE), seed_noise(7, SHAPE))


def test_different_seeds_draw_different_noise() -> None:
    assert not torch.equal(seed_noise(7, SHAPE), seed_noise(8, SHAPE))


def test_slerp_ends_at_its_two_inputs() -> None:
    a, b = seed_noise(1, SHAPE), seed_noise(2, SHAPE)

    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.equal(slerp(a, b, 1.0), b)


def test_slerp_keeps_the_norm_that_a_linear_blend_loses() -> None:
    a, b = seed_noise(1, SHAPE), seed_noise(2, SHAPE)

    halfway = slerp(a, b, 0.5)
    linear = 0.5 * a + 0.5 * b

    assert abs(halfway.norm() / a.norm() - 1) < 0.02
    assert linear.norm() / a.norm() < 0.75


def test_starting_noise_without_a_variation_is_the_seeds_noise() -> None:
    assert torch.equal(starting_noise(3, SHAPE), seed_noise(3, SHAPE))
    assert torch.equal(starting_noise(3, SHAPE, 4, 0.0), seed_noise(3, SHAPE))


def test_a_variation_lies_between_the_two_seeds_noise() -> None:
    a, b = seed_noise(3, SHAPE), seed_noise(4, SHAPE)

    varied = starting_noise(3, SHAPE, variation_seed=4, variation_strength=0.3)

    assert (varied - a).norm() < (varied - b).norm()
    assert (varied - a).norm() > 0
