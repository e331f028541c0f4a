"""Synchronous CPU dispatch for processes that mostly answer requests.

JAX hands each CPU computation to a worker thread and returns at once
(asynchronous dispatch), so a Python loop can queue the next step while the
last one runs. A predictor cannot use that: it needs the answer now, and
waking the worker costs more than the arithmetic. Measured here for the digits
MLP at batch 1: ``predict_proba`` 81 µs with asynchronous dispatch, 14 µs
without. ``mlkit.fit`` is not affected either way (one call per epoch), but a
hand-written per-batch ``jax.jit`` loop is 16-29% slower without it.

The mode is read once, when JAX starts its CPU backend, so it can only be
chosen before the first JAX computation of the process. ``python -m mlkit
predict``, :func:`mlkit.load_predictor` and the "Python (mlkit)" Jupyter kernel
choose it; ``MLKIT_SYNC_DISPATCH=0`` keeps JAX's default everywhere.
"""

from __future__ import annotations

import os

import jax


def prefer_sync_dispatch() -> bool:
    """Switch JAX to synchronous CPU dispatch if its backend has not started yet; True if synchronous is set.

    Safe to call at any time: once JAX has started, the mode cannot change and this changes nothing.
    """
    if os.environ.get("MLKIT_SYNC_DISPATCH", "1") != "0" and not _backend_started():
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    return not jax.config.values["jax_cpu_enable_async_dispatch"]


def _backend_started() -> bool:
    """Whether JAX has created its backends (after which the dispatch mode is fixed)."""
    from jax._src import xla_bridge  # private, so read defensively: unknown means "started", and nothing changes

    started = getattr(xla_bridge, "backends_are_initialized", None)
    return True if started is None else bool(started())
