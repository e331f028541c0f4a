"""Ahead-of-time compilation with an explicit cache, so compile time is seen, not hidden.

``jax.jit`` compiles lazily inside the first call, which mixes compile time into
the first step's time. Here a function is lowered and compiled once per
(static arguments, argument shapes and dtypes); later calls with the same
signature reuse the executable; the cache keeps the ``MAX_EXECUTABLES`` most recently
used ones, so a session that tries many shapes does not grow without bound (a dropped
one compiles again when needed, or loads from the persistent cache). ``stats`` counts compilations, which is how the
tests prove that a learning-rate change compiles nothing.

The first compile here also turns on JAX's persistent compilation cache (see
:func:`enable_persistent_cache`), so a new kernel skips the training programs it
has compiled before. Importing mlkit changes no JAX setting;
``MLKIT_COMPILATION_CACHE=0`` keeps this one off too.
"""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

MAX_EXECUTABLES = 32  # a training program of a small MLP holds ~10 MB; the least recently used is dropped
_EXECUTABLES: OrderedDict[tuple, Any] = OrderedDict()
stats = {"compiles": 0, "seconds": 0.0}


def signature(args: tuple) -> tuple:
    """Hashable description of a pytree of arrays: its structure and each leaf's shape, dtype and
    sharding (an executable compiled for one device cannot run on arrays spread over several)."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple(
        (leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False), getattr(leaf, "sharding", None)) for leaf in leaves
    )


def compiled(fn: Callable, static: tuple, *args) -> tuple[Callable, float]:
    """The executable of ``fn(*static, *args)`` for these argument shapes, and seconds spent compiling it now."""
    # The mesh set with jax.set_mesh changes the program (mlkit.parallel.shard_batch reads it).
    key = (fn, static, signature(args), jax.sharding.get_abstract_mesh())
    if key in _EXECUTABLES:
        _EXECUTABLES.move_to_end(key)
        return _EXECUTABLES[key], 0.0
    if not stats["compiles"]:
        enable_persistent_cache()
    start = time.perf_counter()
    executable = jax.jit(functools.partial(fn, *static)).lower(*args).compile()
    seconds = time.perf_counter() - start
    _EXECUTABLES[key] = executable
    if len(_EXECUTABLES) > MAX_EXECUTABLES:
        _evict()
    stats["compiles"] += 1
    stats["seconds"] += seconds
    return executable, seconds


def _evict() -> None:
    """Drop the least recently used half of the executables, and JAX's own tracing caches with them.

    JAX keeps the traced programs of every function it lowered in caches that still hold them after
    our executable is gone (measured: ~13 MB per fit of a new MLP width, flat only after
    ``jax.clear_caches()``). Clearing those costs the next eager operations a retrace, so it is done
    once per half-cache, not once per entry.
    """
    while len(_EXECUTABLES) > MAX_EXECUTABLES // 2:
        _EXECUTABLES.popitem(last=False)
    jax.clear_caches()


def enable_persistent_cache(path: str | os.PathLike | None = None) -> None:
    """Keep compiled programs on disk, so a new kernel or process skips compiles it has seen before.

    Called by the first training compile. Leaves an existing JAX cache setting alone;
    ``MLKIT_COMPILATION_CACHE=0`` turns it off. The default place is ``$XDG_CACHE_HOME/mlkit/jax``.
    """
    if os.environ.get("MLKIT_COMPILATION_CACHE", "1") == "0" or jax.config.values["jax_compilation_cache_dir"]:
        return
    path = path or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlkit" / "jax"
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)  # training epochs, not tiny ops
