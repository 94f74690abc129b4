"""Versioned wire contracts: `SignalReceived` (input) and `SignalClustered` (output).

The shapes are documented in docs/contracts.md; this package is the only place that encodes or decodes
them, so every worker and the comparator agree byte for byte. model.py holds the types and limits,
signals.py and checks.py the input's codec and its checks, results.py the output's codec.
"""

from harness.contracts.model import (
    DECODE_REASONS,
    DEFAULT_LABEL,
    DEFAULT_MAX_SAMPLES,
    MAX_DETAIL_CHARS,
    OUTCOMES,
    PEEK_MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    ContractError,
    Outcome,
    Samples,
    SignalClustered,
    SignalMeta,
    SignalReceived,
)
from harness.contracts.results import (
    RESULT_KEYS,
    clustered_from_dict,
    clustered_to_dict,
    decode_clustered,
    encode_clustered,
    entry_id_ms,
    pack_result,
    result_record,
)
from harness.contracts.signals import (
    decode_signal,
    encode_signal,
    max_payload_bytes,
    peek_signal_id,
    signal_to_json,
)

__all__ = [
    "DECODE_REASONS", "DEFAULT_LABEL", "DEFAULT_MAX_SAMPLES", "MAX_DETAIL_CHARS", "OUTCOMES", "PEEK_MAX_PAYLOAD_BYTES",
    "RESULT_KEYS", "SCHEMA_VERSION", "ContractError", "Outcome", "Samples", "SignalClustered", "SignalMeta",
    "SignalReceived", "clustered_from_dict", "clustered_to_dict", "decode_clustered", "decode_signal",
    "encode_clustered", "encode_signal", "entry_id_ms", "max_payload_bytes", "pack_result", "peek_signal_id",
    "result_record", "signal_to_json",
]
