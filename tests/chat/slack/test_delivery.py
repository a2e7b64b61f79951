"""What the Slack adapter keeps of a posted result, so Delete works after a restart."""

from __future__ import annotations

from bot.chat.slack._delivery import PostedResult
from bot.core.jobs import ReplyTarget


def test_a_posted_result_reads_back_what_it_wrote():
    posted = PostedResult(file_ids=("F1", "F2"), ts="171.2")

    assert PostedResult.of(ReplyTarget("slack", "C1", adapter_state=posted.to_text())) == posted


def test_a_result_stored_by_an_older_version_lists_its_files():
    stored = '{"files": "F1,F2", "result_ts": "171.2"}'

    assert PostedResult.of(ReplyTarget("slack", "C1", adapter_state=stored)) == PostedResult(
        file_ids=("F1", "F2"), ts="171.2")


def test_a_job_not_yet_posted_has_no_files_to_delete():
    assert PostedResult.of(ReplyTarget("slack", "C1")) == PostedResult()
