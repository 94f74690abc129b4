"""Resolves a worker spec (`legacy`, `candidate` or `MODULE:FACTORY`) to an algorithm."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from harness.clustering import ClusteringAlgorithm, FunctionAlgorithm, WorkerContext
from harness.errors import ConfigurationError
from harness.hyperparameters import HyperparameterSet

BUILTIN_WORKERS = {"legacy": "workers.legacy:create", "candidate": "workers.candidate:create"}


class WorkerSpecError(ValueError, ConfigurationError):
    pass


def resolve_factory(spec: str) -> Callable[..., Any]:
    target = BUILTIN_WORKERS.get(spec, spec)
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise WorkerSpecError(f"worker {spec!r} is not 'legacy', 'candidate' or MODULE:FACTORY")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerSpecError(f"cannot import {module_name!r} for worker {spec!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise WorkerSpecError(f"{module_name!r} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


def declared_hyperparameters(spec: str) -> HyperparameterSet | None:
    """The HyperparameterSet a factory's module declares as `hyperparameters`, if any."""
    factory = resolve_factory(spec)
    declared = getattr(importlib.import_module(factory.__module__), "hyperparameters", None)
    if declared is None:
        declared = getattr(importlib.import_module(BUILTIN_WORKERS.get(spec, spec).partition(":")[0]),
                           "hyperparameters", None)
    return declared if isinstance(declared, HyperparameterSet) else None


def load_algorithm(spec: str, context: WorkerContext) -> ClusteringAlgorithm:
    """Call the factory with the context (or with nothing if it takes no argument).

    A factory may return a ClusteringAlgorithm, or a plain `fn(signal) -> label | None`,
    which is hosted unchanged.
    """
    factory = resolve_factory(spec)
    takes_context = bool(inspect.signature(factory).parameters)
    made = factory(context) if takes_context else factory()
    if isinstance(made, ClusteringAlgorithm):
        return made
    if callable(made):
        return FunctionAlgorithm(made, model_version=f"{spec}")
    raise WorkerSpecError(f"factory {spec!r} returned {type(made).__name__}, not an algorithm or a function")
