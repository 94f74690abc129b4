"""The comparator killed again and again counts every pair once; a pub/sub worker's absence is counted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.comparator.service import SUMMARY_KEY
from tests.faults.stack import FaultStack, all_results_in, count_figures
from tests.support.processes import result_count, wait_for

pytestmark = pytest.mark.fault

BY_DEVICE = "tests.support.algorithms:by_device"


def checkpointed_at(stack: FaultStack) -> float:
    return float(stack.client.hget(SUMMARY_KEY, "updated_ms") or 0)


def test_comparator_sigkilled_five_times(stack: FaultStack, figure: Callable[[str], None]) -> None:
    n, kills = 1500, 5
    stack.worker("legacy", BY_DEVICE, "--init-primary", "--batch-size", "20")
    stack.worker("candidate", BY_DEVICE, "--batch-size", "20")
    stack.harness("producer", "produce", "--count", str(n), "--samples", "32", "--rate", "150")
    for kill in range(kills):
        since, matched = checkpointed_at(stack), stack.summary_counts().get("matched", 0)
        stack.comparator()
        # Killed once it has checkpointed new pairs since its restart (or has matched them all).
        wait_for(lambda since=since, matched=matched: checkpointed_at(stack) > since
                 and stack.summary_counts()["matched"] > min(matched, n - 1), 60,
                 f"a checkpoint before kill {kill + 1}", stack.alive("comparator", "legacy", "candidate"))
        stack.kill("comparator")
    killed_at = stack.summary_counts()["matched"]
    stack.comparator()
    wait_for(lambda: all_results_in(stack.client, ["legacy", "candidate"], n), 120, "every result",
             stack.alive("legacy", "candidate", "comparator"))
    wait_for(lambda: stack.summary_counts()["matched"] >= n, 60, "every pair matched", stack.alive("comparator"))
    counts = stack.summary_counts()
    figures = count_figures(stack.client, ["legacy", "candidate"])
    figures.extra.update(matched=counts["matched"], duplicates=counts["duplicates"], matched_at_last_kill=killed_at)
    figure(figures.line(f"comparator-sigkill-x{kills}"))
    assert killed_at < n, "every pair was matched before the last kill"
    assert figures.produced == n and figures.lost == 0 and figures.doubled == 0
    assert counts["matched"] == n and counts["duplicates"] == 0
    assert counts["legacy_outputs"] == n and counts["candidate_outputs"] == n
    assert counts["missing_legacy"] == 0 and counts["missing_candidate"] == 0


def test_pubsub_worker_away_five_seconds_is_counted_missing(stack: FaultStack,
                                                            figure: Callable[[str], None]) -> None:
    channel, rate, n = "harness:faults:live", 200, 2400
    pubsub = ("--transport", "pubsub", "--channel", channel)
    stack.worker("legacy", BY_DEVICE, *pubsub)
    stack.worker("candidate", BY_DEVICE, *pubsub)
    stack.comparator("--timeout", "1")
    subscribers = lambda: int(stack.client.pubsub_numsub(channel)[0][1])  # noqa: E731
    wait_for(lambda: subscribers() == 2, 60, "both workers subscribed", stack.alive("legacy", "candidate"))
    stack.harness("producer", "produce", "--count", str(n), "--samples", "32", "--rate", str(rate),
                  "--publish-channel", channel)
    wait_for(lambda: result_count(stack.client, "candidate") >= 200, 60, "the candidate's first results",
             stack.alive("candidate"))
    stack.kill("candidate")
    away_from, candidate_before = result_count(stack.client, "legacy"), result_count(stack.client, "candidate")
    # Away for 5 s of input: legacy, still there, has taken 5 s worth of signals meanwhile.
    wait_for(lambda: result_count(stack.client, "legacy") >= away_from + 5 * rate, 60, "5 s of input",
             stack.alive("legacy"))
    stack.worker("candidate", BY_DEVICE, *pubsub)
    wait_for(lambda: subscribers() == 2, 60, "the candidate back", stack.alive("candidate", "producer"))
    assert stack.processes["producer"].wait(timeout=60) == 0
    wait_for(lambda: result_count(stack.client, "legacy") >= n, 60, "legacy's results", stack.alive("legacy"))
    candidate = result_count(stack.client, "candidate")
    wait_for(lambda: (lambda c: c.get("matched", 0) + c.get("missing_candidate", 0) >= n)(stack.summary_counts()),
             60, "every signal matched or counted missing", stack.alive("comparator"))
    counts = stack.summary_counts()
    silent = n - counts["matched"] - counts["missing_candidate"] - counts["missing_legacy"]
    figure(f"FAULT pubsub-away-5s: produced={n} legacy={result_count(stack.client, 'legacy')} "
           f"candidate={candidate} matched={counts['matched']} missing_candidate={counts['missing_candidate']} "
           f"missing_legacy={counts['missing_legacy']} uncounted={silent} doubled={counts['duplicates']}")
    assert result_count(stack.client, "legacy") == n
    assert 0 < n - candidate == counts["missing_candidate"]
    assert candidate > candidate_before, "the candidate, back, took no more input: the run ended too early"
    assert counts["matched"] == candidate and counts["missing_legacy"] == 0
    assert silent == 0 and counts["duplicates"] == 0
