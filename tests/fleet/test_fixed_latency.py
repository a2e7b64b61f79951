"""The benchmark's fixed-latency pipeline runs through the real Engine, L per image."""

from __future__ import annotations

import time

from bot.worker.params import parse_body
from bot.worker.synthetic import FixedLatencyLoader


def test_the_fixed_latency_engine_sleeps_l_per_image_and_answers_the_asked_size() -> None:
    engine = FixedLatencyLoader(0.05)("flux-schnell")
    params = parse_body(engine.catalog.get("flux-schnell"),
                        {"prompt": "a fox", "width": 768, "height": 512, "steps": 1},
                        engine.tables["flux-schnell"])

    started = time.perf_counter()
    made = engine.generate_batch([params, params, params])

    assert time.perf_counter() - started >= 3 * 0.05
    assert [[image.size for image in images] for images in made] == [[(768, 512)]] * 3
