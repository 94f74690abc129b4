"""Maps a production worker's own JSON messages onto result records, so it can be shadowed as is."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from harness.contracts import SCHEMA_VERSION
from harness.errors import ConfigurationError


class TapError(ValueError, ConfigurationError):
    pass


def _lookup(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


@dataclass(frozen=True)
class TapMapping:
    """Dotted paths into the tapped JSON: where the signal id and the cluster label are."""

    id_path: str
    label_path: str
    device_path: str | None = None

    @staticmethod
    def parse(spec: str) -> TapMapping:
        """From 'id=signal.id,label=result.cluster[,device=meta.device]'."""
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, path = part.partition("=")
            if not sep or not path or name not in ("id", "label", "device"):
                raise TapError(f"tap mapping item {part!r} is not id=PATH, label=PATH or device=PATH")
            fields[name] = path
        if "id" not in fields or "label" not in fields:
            raise TapError(f"tap mapping {spec!r} needs at least id=PATH and label=PATH")
        return TapMapping(fields["id"], fields["label"], fields.get("device"))

    def to_record(self, payload: bytes) -> dict[str, Any]:
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"v": SCHEMA_VERSION, "id": None}
        signal_id = _lookup(document, self.id_path)
        label = _lookup(document, self.label_path)
        return {
            "v": SCHEMA_VERSION,
            "id": str(signal_id) if signal_id is not None else None,
            "outcome": "clustered" if label is not None else "unclustered",
            "label": str(label) if label is not None else None,
            "device": _lookup(document, self.device_path) if self.device_path else None,
            # The tapped worker does not report timings: NaN keeps it out of the latency figures.
            "entered_ms": math.nan, "published_ms": math.nan, "proc_ms": math.nan,
        }


def bridge_channel(client: Any, channel: str, stream: str) -> None:
    """Copy every message of a pub/sub channel into a stream until interrupted.

    Pub/sub delivers only while subscribed: messages published while the bridge is down are lost.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    try:
        for message in pubsub.listen():
            if message.get("type") == "message":
                client.xadd(stream, {b"data": message["data"]})
    finally:
        pubsub.close()
