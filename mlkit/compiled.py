"""Ahead-of-time compilation with an explicit cache, so compile time is seen, not hidden.

``jax.jit`` compiles lazily inside the first call, which mixes compile time into
the first step's time. Here a function is lowered and compiled once per
(static arguments, argument shapes and dtypes); later calls with the same
signature reuse the executable. ``stats`` counts compilations, which is how the
tests prove that a learning-rate change compiles nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax

_EXECUTABLES: dict[tuple, Any] = {}
stats = {"compiles": 0, "seconds": 0.0}


def signature(args: tuple) -> tuple:
    """Hashable description of a pytree of arrays: its structure and each leaf's shape, dtype and
    sharding (an executable compiled for one device cannot run on arrays spread over several)."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False), getattr(leaf, "sharding", None))
                          for leaf in leaves)


def compiled(fn: Callable, static: tuple, *args) -> tuple[Callable, float]:
    """The executable of ``fn(*static, *args)`` for these argument shapes, and seconds spent compiling it now."""
    key = (fn, static, signature(args))
    if key in _EXECUTABLES:
        return _EXECUTABLES[key], 0.0
    start = time.perf_counter()
    executable = jax.jit(functools.partial(fn, *static)).lower(*args).compile()
    seconds = time.perf_counter() - start
    _EXECUTABLES[key] = executable
    stats["compiles"] += 1
    stats["seconds"] += seconds
    return executable, seconds
