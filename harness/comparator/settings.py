"""What a comparator compares and how: its feeds (one results stream per side) and its settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.comparator.tap import TapMapping
from harness.experiments import Experiment
from harness.partitions import Partition
from harness.transport import keys

STATE_KEY = keys.COMPARATOR_STATE_KEY  # the msgpack checkpoint of ComparatorState
SUMMARY_KEY = keys.COMPARATOR_SUMMARY_KEY  # a small hash for progress displays and `status`
DEFAULT_GROUP = keys.COMPARATOR_GROUP
DEFAULT_CHECKPOINT_S = 1.0
DEFAULT_READ_COUNT = 2_000
DEFAULT_MAX_SKEW = 10_000  # pending joins past which only the sides behind are read (memory flat in a burst)
DEFAULT_STALL_AFTER_S = 30.0  # a side whose results have not moved this long, with input left, is stalled


@dataclass(frozen=True)
class Feed:
    """One side's input: a results stream, read through the comparator's consumer group."""

    side: str
    stream: str
    tap: TapMapping | None = None  # set when the stream carries a production worker's own JSON
    worker: str | None = None  # its consumer group on the input stream, for its lag (None: a tap)


@dataclass
class ComparatorSettings:
    feeds: list[Feed]
    group: str = DEFAULT_GROUP
    timeout_ms: float = 30_000
    max_pending: int = 200_000
    window: int = 1_000
    checkpoint_s: float = DEFAULT_CHECKPOINT_S
    read_count: int = DEFAULT_READ_COUNT
    block_ms: int = 500
    exit_when_idle_s: float | None = None
    state_key: str = STATE_KEY
    input_stream: str = keys.DEFAULT_INPUT_STREAM
    stall_after_s: float = DEFAULT_STALL_AFTER_S
    max_skew: int = DEFAULT_MAX_SKEW
    extra: dict[str, Any] = field(default_factory=dict)
    summary_key: str = SUMMARY_KEY
    experiment: Experiment | None = None  # None: the default experiment's keys, every result counted
    follow: bool = False  # serve the current experiment, switching when another one starts
    partition: Partition | None = None  # one partition of a partitioned input (a comparator shard's part)

    @property
    def join(self) -> str:
        # A tapped production worker's results carry no input entry id: only time can tell missing.
        return "time" if any(feed.tap is not None for feed in self.feeds) else "progress"


def default_feeds(legacy: str = "legacy", candidate: str = "candidate", replica: str | None = None) -> list[Feed]:
    feeds = [Feed("legacy", keys.results_stream(legacy), worker=legacy),
             Feed("candidate", keys.results_stream(candidate), worker=candidate)]
    if replica:
        feeds.append(Feed("replica", keys.results_stream(replica), worker=replica))
    return feeds


def settings_for(base: ComparatorSettings, experiment: Experiment) -> ComparatorSettings:
    """The settings that serve `experiment`: the implicit default keeps the command line's feeds (a replica,
    a tap); a named one compares its control (the legacy slot) with its candidate from its start."""
    if experiment.implicit:
        return replace(base, experiment=experiment)
    return replace(base, feeds=default_feeds(experiment.control, experiment.candidate), experiment=experiment,
                   state_key=experiment.state_key, summary_key=experiment.summary_key,
                   group=experiment.group(base.group), input_stream=experiment.input_stream)
