"""The buttons every platform shows, from one table: which, in which rows, with which labels."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bot.chat.actions import Action, history_rows, progress_rows, result_rows
from bot.core.catalog import Catalog
from bot.core.jobs import Job, JobState
from bot.core.request import build_request
from tests.helpers import actor, target


def _job(state: JobState = JobState.DONE, images: int = 1, **changes: object) -> Job:
    request = build_request(f"a fox --n {images}", None, Catalog())
    job = Job(id="j1", actor=actor(), request=request, cost=1, state=state, target=target(),
              created_at=time.time(),
              images=tuple(Path(f"{i}.png") for i in range(images)) if state is JobState.DONE
              else ())
    return dataclasses.replace(job, **changes)


def _names(rows) -> list[list[str]]:
    return [[button.text for button in row] for row in rows]


def test_a_single_image_has_one_row_with_vary_beside_the_others():
    assert _names(result_rows(_job())) == [["Reroll", "Vary", "Edit", "Info", "Delete"]]


def test_several_images_get_one_vary_button_each_in_rows_of_five():
    rows = result_rows(_job(images=4))

    assert _names(rows) == [["Reroll", "Edit", "Info", "Delete"], ["V1", "V2", "V3", "V4"]]
    assert [button.index for button in rows[1]] == [0, 1, 2, 3]


def test_variation_buttons_stop_at_ten():
    job = _job(images=4)
    job = dataclasses.replace(job, images=tuple(Path(f"{i}.png") for i in range(12)))

    assert _names(result_rows(job))[1:] == [["V1", "V2", "V3", "V4", "V5"],
                                            ["V6", "V7", "V8", "V9", "V10"]]


def test_a_waiting_job_offers_cancel_and_a_running_one_nothing():
    assert [[b.action for b in row] for row in progress_rows(_job(JobState.QUEUED))] == [
        [Action.CANCEL]]
    assert progress_rows(_job(JobState.RUNNING)) == ()


def test_history_offers_run_again_and_reroll_except_for_deleted_results():
    kept, deleted = _job(id="a1"), _job(id="b2", deleted=True)

    rows = history_rows([kept, deleted])

    assert [(b.action, b.job_id, b.text) for row in rows for b in row] == [
        (Action.AGAIN, "a1", "Again 1"), (Action.REROLL, "a1", "Reroll 1")]
