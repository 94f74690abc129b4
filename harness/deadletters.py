"""Dead letters of a worker: read, filter, decode, replay onto the input (atomically) and purge.

A dead letter keeps the first 4 KiB of the rejected message with its full size and SHA-256; one
whose message was longer (capped) cannot be rebuilt from the stream and is never replayed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
import redis

from harness import audit
from harness.errors import ConfigurationError, HarnessError
from harness.transport import keys
from harness.transport.roles import read_roles

PAGE = 500  # dead letters read per XRANGE, and replayed or deleted per script call
REPLAY_FIELD = "replay_of"  # on a replayed input entry: the input entry that was dead-lettered
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MAX_SEQ = 2**64 - 1
_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

# KEYS: 1 dead letters, 2 input stream, 3 produced counter. ARGV: 1 payload field, 2 replay field, then
# dead-letter ids. Each letter goes onto the input and off the dead letters in the same script, so a crash
# or a concurrent replay can neither lose it nor put it on the input twice. A capped payload (stored
# prefix shorter than the size) is checked again here and left alone.
REPLAY_SCRIPT = """
local out = {}
for i = 3, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found == 1 then
    local fields, data, size, entry = found[1][2], nil, nil, ''
    for j = 1, #fields, 2 do
      if fields[j] == ARGV[1] then data = fields[j + 1]
      elseif fields[j] == 'size' then size = tonumber(fields[j + 1])
      elseif fields[j] == 'entry' then entry = fields[j + 1] end
    end
    if data and size == #data then
      local new_id = redis.call('XADD', KEYS[2], '*', ARGV[1], data, ARGV[2], entry)
      redis.call('INCR', KEYS[3])
      redis.call('XDEL', KEYS[1], ARGV[i])
      out[#out + 1] = ARGV[i]
      out[#out + 1] = new_id
    end
  end
end
return out
"""


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a command acts on: any of `reasons` (all when empty), dead-lettered in [since, until]."""

    reasons: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: StoredDeadLetter) -> bool:
        return not self.reasons or letter.reason in self.reasons


@dataclass(frozen=True)
class StoredDeadLetter:
    id: str  # the dead letter's own entry id: when the worker rejected the message
    entry: str  # the input entry that was rejected
    reason: str
    detail: str
    signal_id: str | None
    payload: bytes  # the stored prefix of the message
    size: int  # the whole message's size in bytes
    sha256: str  # of the whole message

    @property
    def at_ms(self) -> int:
        return int(self.id.split("-", 1)[0])

    @property
    def capped(self) -> bool:
        return self.size > len(self.payload)

    @property
    def replayable(self) -> bool:
        return not self.capped and hashlib.sha256(self.payload).hexdigest() == self.sha256

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "entry": self.entry, "time": iso_time(self.at_ms), "reason": self.reason,
                "signal_id": self.signal_id, "size": self.size, "stored": len(self.payload),
                "capped": self.capped, "sha256": self.sha256, "detail": self.detail}


@dataclass(frozen=True)
class DecodedPayload:
    format: str  # "msgpack", "json", or "raw" when it is neither (or a capped prefix that does not parse)
    value: Any  # JSON-ready: binary values are shown as their size and a hex prefix


@dataclass(frozen=True)
class ReplayOutcome:
    chosen: list[StoredDeadLetter]  # what the filters selected
    replayed: dict[str, str]  # dead-letter id -> the new input entry id ('' with --dry-run: what would go)
    not_replayable: list[StoredDeadLetter]  # capped (or corrupt) payloads, left in the dead letters
    gone: int  # selected, but replayed or purged by someone else meanwhile
    dry_run: bool


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def parse_time(text: str, now_ms: int) -> int:
    """Milliseconds since the epoch of an ISO time (UTC unless it has an offset) or an age such as 30m, 1h, 2d."""
    age = _AGE.match(text)
    if age:
        return now_ms - int(float(age.group(1)) * _UNIT_S[age.group(2)] * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(f"{text!r} is not a time: give an ISO time such as 2026-12-01T10:00 (UTC unless "
                                 "it has an offset) or an age such as 30m, 1h, 2d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def make_filter(client: redis.Redis, reasons: Sequence[str], since: str | None, until: str | None
                ) -> DeadLetterFilter:
    """A filter from the command line's words; ages count back from the Redis server's clock (entry ids' clock)."""
    now_ms = server_ms(client) if any(t is not None for t in (since, until)) else 0
    since_ms = None if since is None else parse_time(since, now_ms)
    until_ms = None if until is None else parse_time(until, now_ms)
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise ConfigurationError(f"--since {since} is after --until {until}: nothing can match")
    return DeadLetterFilter(frozenset(reasons), since_ms, until_ms)


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def iter_dead_letters(client: redis.Redis, worker: str, selection: DeadLetterFilter) -> Iterator[StoredDeadLetter]:
    """Oldest first, read a page at a time; the time bounds are the XRANGE bounds, the reasons are checked here."""
    stream = _stream(worker)
    start = "-" if selection.since_ms is None else f"{selection.since_ms}-0"
    end = "+" if selection.until_ms is None else f"{selection.until_ms}-{_MAX_SEQ}"
    while True:
        page = client.xrange(stream, start, end, count=PAGE)
        for entry_id, fields in page:
            letter = _letter(entry_id, fields)
            if selection.matches(letter):
                yield letter
        if len(page) < PAGE:
            return
        start = "(" + _text(page[-1][0])


def list_dead_letters(client: redis.Redis, worker: str, selection: DeadLetterFilter,
                      limit: int | None = None) -> list[StoredDeadLetter]:
    letters: list[StoredDeadLetter] = []
    for letter in iter_dead_letters(client, worker, selection):
        if limit is not None and len(letters) >= limit:
            break
        letters.append(letter)
    return letters


def dropped_count(client: redis.Redis, worker: str) -> int:
    """Dead letters trimmed off the bounded stream: they are gone, only counted."""
    return int(client.get(keys.dead_letters_dropped_key(_checked(worker))) or 0)


def find_dead_letter(client: redis.Redis, worker: str, wanted: str) -> StoredDeadLetter:
    """The dead letter with this id, or else the one of this input entry (a dead letter is never older)."""
    if not _ENTRY_ID.match(wanted):
        raise ConfigurationError(f"{wanted!r} is not an entry id: give one from the id or entry column of "
                                 "`harness deadletter list`")
    exact = client.xrange(_stream(worker), wanted, wanted)
    if exact:
        return _letter(*exact[0])
    for letter in iter_dead_letters(client, worker, DeadLetterFilter(since_ms=int(wanted.split("-", 1)[0]))):
        if letter.entry == wanted:
            return letter
    raise HarnessError(f"no dead letter {wanted} for worker {worker} (ids and entries: `harness deadletter list "
                       f"--worker {worker}`)")


def decode_payload(letter: StoredDeadLetter) -> DecodedPayload:
    """The payload as JSON or msgpack when it parses; a capped msgpack prefix shows the fields that fit."""
    payload = letter.payload
    if payload.lstrip()[:1] in (b"{", b"["):
        try:
            return DecodedPayload("json", json.loads(payload))
        except (ValueError, RecursionError):  # a capped or broken document: its text still reads
            return DecodedPayload("json text", payload.decode("utf-8", "backslashreplace"))
    try:
        return DecodedPayload("msgpack", _readable(msgpack.unpackb(payload, raw=False, strict_map_key=False)))
    except Exception:  # msgpack raises many unrelated types on garbage
        prefix = _msgpack_prefix(payload) if letter.capped else None
    return DecodedPayload("raw", _bytes_text(payload)) if prefix is None else DecodedPayload("msgpack prefix", prefix)


def replay(client: redis.Redis, worker: str, selection: DeadLetterFilter, input_stream: str,
           *, dry_run: bool = False) -> ReplayOutcome:
    """Put the selected dead letters back onto the input, each removed from the dead letters in the same script."""
    chosen = list(iter_dead_letters(client, worker, selection))
    ready = [letter for letter in chosen if letter.replayable]
    skipped = [letter for letter in chosen if not letter.replayable]
    if dry_run:
        return ReplayOutcome(chosen, {letter.id: "" for letter in ready}, skipped, 0, dry_run=True)
    script = client.register_script(REPLAY_SCRIPT)
    replayed: dict[str, str] = {}
    for first in range(0, len(ready), PAGE):
        ids = [letter.id for letter in ready[first:first + PAGE]]
        done = script(keys=[_stream(worker), input_stream, keys.PRODUCED_KEY],
                      args=[keys.PAYLOAD_FIELD, REPLAY_FIELD, *ids])
        replayed.update(zip(map(_text, done[::2]), map(_text, done[1::2]), strict=True))
    _audited(client, "replay", worker, selection, len(replayed), input_stream=input_stream,
             not_replayable=str(len(skipped)))
    return ReplayOutcome(chosen, replayed, skipped, len(ready) - len(replayed), dry_run=False)


def purge(client: redis.Redis, worker: str, selection: DeadLetterFilter) -> int:
    """Delete the selected dead letters; returns how many were deleted."""
    stream = _stream(worker)
    ids = [letter.id for letter in iter_dead_letters(client, worker, selection)]
    deleted = 0
    for first in range(0, len(ids), PAGE):
        deleted += int(client.xdel(stream, *ids[first:first + PAGE]))
    _audited(client, "purge", worker, selection, deleted)
    return deleted


def _audited(client: redis.Redis, step: str, worker: str, selection: DeadLetterFilter, count: int,
             **details: str) -> None:
    # Replaying writes to the production input and purging destroys evidence: both leave a trace.
    reasons = ",".join(sorted(selection.reasons)) or "any"
    window = f"{_shown_time(selection.since_ms)}..{_shown_time(selection.until_ms)}"
    audit.record(client, "deadletters", step, read_roles(client).epoch, worker=worker, count=str(count),
                 reasons=reasons, window=window, **details)


def _shown_time(ms: int | None) -> str:
    return "" if ms is None else iso_time(ms)


def payload_base64(letter: StoredDeadLetter) -> str:
    return base64.b64encode(letter.payload).decode("ascii")


def _stream(worker: str) -> str:
    return keys.dead_letter_stream(_checked(worker))


def _checked(worker: str) -> str:
    try:
        return keys.check_worker_name(worker)
    except ValueError as exc:
        raise ConfigurationError(f"--worker: {exc}") from None


def _letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> StoredDeadLetter:
    def field(name: str) -> str:
        return _text(fields.get(name.encode(), b""))

    return StoredDeadLetter(
        id=_text(entry_id), entry=field("entry"), reason=field("reason"), detail=field("detail"),
        signal_id=field("signal_id") or None, payload=bytes(fields.get(keys.PAYLOAD_FIELD, b"")),
        size=int(field("size") or 0), sha256=field("sha256"),
    )


def _msgpack_prefix(payload: bytes) -> dict[str, Any] | None:
    """The fields of a msgpack map that fit in a capped prefix, the first cut-off one marked; None if not a map."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(payload)
    shown: dict[str, Any] = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = str(unpacker.unpack())
            try:
                shown[key] = _readable(unpacker.unpack())
            except msgpack.OutOfData:
                shown[key] = "<cut off: the dead letter keeps only a prefix>"
                break
    except Exception:  # not a map, or garbage inside it
        return None
    return shown


def _readable(value: Any) -> Any:
    """A decoded msgpack value made JSON-ready: samples and other binary values shown by size and prefix."""
    if isinstance(value, dict):
        return {str(k): _readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return _bytes_text(bytes(value))
    return value


def _bytes_text(data: bytes, shown: int = 64) -> str:
    return f"<{len(data):,} bytes: {data[:shown].hex()}{'...' if len(data) > shown else ''}>"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
