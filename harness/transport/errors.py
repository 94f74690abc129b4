"""Infrastructure errors, in the harness's own words: the runtime never sees a redis-py exception.

An infrastructure error is never a model error: it publishes nothing and acks nothing, and the
runtime backs off and retries the batch in hand until the store recovers.
"""

from __future__ import annotations

from harness.errors import HarnessError


class TransportError(HarnessError):
    """The store could not do what was asked; retrying later may succeed."""


class TransportUnavailable(TransportError):
    """Connection lost or refused, a timeout, a server still loading its data, a busy script."""


class TransportOutOfMemory(TransportError):
    """The store is full (maxmemory with noeviction): writes are refused until memory is freed."""


class TransportReadOnly(TransportError):
    """Connected to a read-only replica, e.g. during a failover."""


class TransportFenced(TransportError):
    """This consumer no longer holds its lease: another copy of the worker owns the input now."""


class LeaseHeld(HarnessError):
    """A second copy of a worker tried to start while the first one holds the lease."""


class StateVersionMismatch(HarnessError):
    """The worker's stored model state belongs to another model version (other hyperparameters)."""
