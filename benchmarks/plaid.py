"""PLAID (real appliance current waveforms, 11 labelled kinds) read from the copy sktime ships, as signals.

The UCR edition of PLAID sits in sktime's wheel (sktime/datasets/data/PLAID/PLAID_{TRAIN,TEST}.ts):
1,074 current waveforms of 100 to 1,344 samples, in amperes, from 11 appliance types. It is read
from the installed package's files without importing sktime and without any download.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from harness.contracts import SignalMeta, SignalReceived

KINDS = (
    "air_conditioner", "compact_fluorescent_lamp", "fan", "fridge", "hairdryer", "heater",
    "incandescent_light_bulb", "laptop", "microwave", "vacuum", "washing_machine",
)  # fmt: skip  # class 0 .. 10, as the file's header names them
METERS = 8  # the signals are dealt round-robin to this many meters, as from a few households
SAMPLE_RATE_HZ = 30_000.0  # PLAID's recording rate; the algorithms do not use it


class DatasetMissing(RuntimeError):
    """sktime (which carries the PLAID files) is not installed; the message says how to get it."""


def plaid_file(part: str) -> Path:
    """The path of PLAID_{part}.ts inside the installed sktime package (part: TRAIN or TEST)."""
    spec = importlib.util.find_spec("sktime")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissing("the PLAID data set ships in sktime: pip install -e '.[bench]' (or pip install sktime)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "PLAID" / f"PLAID_{part}.ts"
    if not path.is_file():
        raise DatasetMissing(f"this sktime has no {path.name}; install sktime >= 0.30")
    return path


def read_part(part: str) -> list[tuple[np.ndarray, int]]:
    """(samples, class) per line of a .ts file: comma-separated values, then ':' and the class."""
    rows = []
    for line in plaid_file(part).read_text(encoding="utf-8-sig").splitlines():
        if not line.strip() or line.startswith(("#", "@")):
            continue
        values, label = line.rsplit(":", 1)
        rows.append((np.array(values.split(","), dtype=np.float32), int(label)))
    return rows


def plaid_signals(part: str, seed: int = 0) -> list[SignalReceived]:
    """One half of PLAID as signals: shuffled with `seed` (the file is sorted by class), the true
    kind in meta.kind, dealt round-robin to METERS devices, 1 s apart."""
    rows = read_part(part)
    order = np.random.default_rng(seed).permutation(len(rows))
    signals = []
    for position, index in enumerate(order.tolist()):
        samples, label = rows[index]
        meta = SignalMeta(f"meter-{position % METERS}", "a", {"dataset": "plaid"}, KINDS[label])
        signals.append(SignalReceived(f"plaid-{part.lower()}-{index:04d}", meta, SAMPLE_RATE_HZ,
                                      1.7e9 + position, samples))
    return signals
