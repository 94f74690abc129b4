"""A forced cutover that dies like a killed process (exit 70, no cleanup) right after a given step.

Usage: python -m tests.support.cutover_crash REDIS_URL STEP
"""

from __future__ import annotations

import os
import sys

import redis

from harness.cutover.plan import CutoverRequest, GateOutcome, run_cutover
from harness.cutover.stoppers import ProcessStopper

CRASH_EXIT = 70


def main(redis_url: str, crash_after: str) -> int:
    def crash(step: str) -> None:
        if step == crash_after:
            os._exit(CRASH_EXIT)  # no finally, no atexit: what a SIGKILL or a power cut leaves behind

    def no_gate() -> GateOutcome:
        raise AssertionError("a forced cutover does not judge the gate")

    run_cutover(redis.Redis.from_url(redis_url), CutoverRequest(force_reason="crash test"), ProcessStopper(),
                no_gate, after_step=crash)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
