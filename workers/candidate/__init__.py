"""The candidate clustering worker, shaped like cosmicpython; `create(context)` builds it."""

from workers.candidate.bootstrap import bootstrap, create

__all__ = ["bootstrap", "create"]
