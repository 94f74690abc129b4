"""The candidate clustering worker, shaped like cosmicpython; `create(context)` builds it."""

from workers.candidate.bootstrap import bootstrap, create

# what `harness worker candidate --hyperparameters` lists
from workers.candidate.config import SCHEMA as hyperparameters

__all__ = ["bootstrap", "create", "hyperparameters"]
