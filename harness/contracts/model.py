"""The contracts' types and limits: SignalReceived (input), SignalClustered (output), ContractError."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.errors import HarnessError
from harness.wire_text import safe_text

SCHEMA_VERSION = 1  # bumped on any incompatible change to either contract
DEFAULT_MAX_SAMPLES = 100_000  # HARNESS_MAX_SAMPLES overrides it
DEFAULT_LABEL = "normal"  # label of the default cluster, the same for every worker
MAX_TAGS = 64
PAYLOAD_BYTES_PER_SAMPLE = 32  # the widest JSON float ("-2.2250738585072014e-308, ") and an indent
PAYLOAD_OVERHEAD_BYTES = 256 * 1024  # everything but the samples, even with every character \u-escaped
PEEK_MAX_PAYLOAD_BYTES = PAYLOAD_OVERHEAD_BYTES + DEFAULT_MAX_SAMPLES * PAYLOAD_BYTES_PER_SAMPLE
MAX_DETAIL_CHARS = 300  # an error message stays one short log line
DECODE_REASONS = ("empty_message", "oversize", "undecodable", "wrong_schema", "wrong_schema_version", "missing_id",
                  "invalid_id", "invalid_text", "empty_samples", "non_finite")  # every ContractError.reason of decode

Samples = npt.NDArray[np.float32]
Outcome = Literal["clustered", "unclustered", "error"]
OUTCOMES: tuple[Outcome, ...] = ("clustered", "unclustered", "error")


class ContractError(ValueError, HarnessError):
    """An input message that breaks the contract; `reason` is a stable machine-readable code.
    The message is short and always encodable, so it can be logged and stored as it is."""

    def __init__(self, reason: str, message: str) -> None:
        shown = safe_text(message[:MAX_DETAIL_CHARS])  # an escape is longer than its character: cut again
        cut = len(message) > MAX_DETAIL_CHARS or len(shown) > MAX_DETAIL_CHARS
        message = shown[:MAX_DETAIL_CHARS] + "…" if cut else shown
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SignalMeta:
    device_id: str
    channel: str = "v"
    tags: dict[str, str] = field(default_factory=dict)
    true_kind: str | None = None  # ground truth, for synthetic or labelled data only


@dataclass(frozen=True)
class SignalReceived:
    signal_id: str
    meta: SignalMeta
    sample_rate_hz: float
    start_time: float  # epoch seconds of the first sample
    samples: Samples

    def __post_init__(self) -> None:
        if self.samples.dtype != np.float32:
            object.__setattr__(self, "samples", self.samples.astype(np.float32))


@dataclass(frozen=True)
class SignalClustered:
    signal_id: str
    worker: str
    model_version: str
    outcome: Outcome
    label: str | None
    is_new_cluster: bool
    entered_at_ms: float  # input stream entry time, on the Redis server's clock
    published_at_ms: float  # on the Redis server's clock (the worker corrects its own by TIME)
    processing_ms: float
    device_id: str | None = None
    true_kind: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    redelivered: bool = False
    input_entry_id: str | None = None
    epoch: int | None = None  # fencing token, set only on production results

    @property
    def end_to_end_ms(self) -> float:
        return self.published_at_ms - self.entered_at_ms
