"""Data parallelism with JAX's own tools: one mesh axis, the batch split across it.

Every device holds a full copy of the parameters, the optimiser state and the
(small) training set. Each mini-batch is split along the mesh axis ``"batch"``:
device *i* runs the forward and backward pass on its slice only, and the
compiler inserts the all-reduce that turns the per-device gradient sums into
the mean gradient of the whole batch. No hand-written ``psum``: the shardings
say what lives where, and XLA's partitioner writes the communication.

    mesh = mlkit.train.parallel.data_mesh()            # every device JAX sees, on every process
    history = mlkit.fit(model, data, config, mesh=mesh)

Across hosts, call :func:`initialize` first in every process (before any other
JAX call); then ``jax.devices()`` lists the devices of all processes and the
same two lines train one model on all of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "batch"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-dimensional mesh named ``"batch"`` over ``devices`` (default: all devices of all processes).

    The axis is ``AxisType.Auto``: the compiler propagates shardings and inserts
    the gradient all-reduce itself. (``jax.make_mesh`` defaults to ``Explicit``
    axes, under which a gradient through a batch-sharded matmul is a sharding
    type error unless every operation is annotated.)
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("Expected at least one device for the mesh, got an empty list; try data_mesh() for all.")
    return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state, data set, keys)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split evenly along the ``"batch"`` axis: device i holds rows [i*b/n, (i+1)*b/n)."""
    return NamedSharding(mesh, P(AXIS))


def per_device_batch(batch_size: int, mesh: Mesh | None) -> int:
    """Examples each device sees per step; a ValueError, before anything compiles, when they do not divide
    (or when ``mesh`` is not a one-axis ``"batch"`` mesh with ``AxisType.Auto``, as ``data_mesh`` makes)."""
    if mesh is not None and (tuple(mesh.axis_names) != (AXIS,) or tuple(mesh.axis_types) != (AxisType.Auto,)):
        raise ValueError(
            f"Expected a one-axis mesh named {AXIS!r} with AxisType.Auto, got axes {mesh.axis_names} "
            f"of types {mesh.axis_types}. Try mlkit.train.parallel.data_mesh(devices)."
        )
    n = 1 if mesh is None else mesh.shape[AXIS]
    if batch_size % n:
        lower, upper = batch_size // n * n, -(-batch_size // n) * n
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        raise ValueError(
            f"batch_size must be a multiple of the {n} devices on the mesh's {AXIS!r} axis so that "
            f"every device gets the same number of examples; got {batch_size}. Try {hint}."
        )
    return batch_size // n


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Copy every array of ``tree`` onto every device of ``mesh`` (unchanged when ``mesh`` is None).

    Across processes each one must pass the same values (JAX checks this).
    """
    if mesh is None:
        return tree

    def put(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # random keys travel as their raw bits
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        return jax.device_put(leaf, replicated(mesh))

    return jax.tree.map(put, tree)


def shard_batch(batch: Any) -> Any:
    """Inside a compiled function: split a mini-batch along ``"batch"`` if a mesh with that axis is set
    (``jax.set_mesh``), else return it unchanged. Without it, replicated inputs give replicated work:
    every device would compute the whole batch."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or AXIS not in mesh.axis_names:
        return batch
    return jax.lax.with_sharding_constraint(batch, P(AXIS))


def initialize(timeout_s: int = 60) -> tuple[int, int]:
    """Join a multi-process run from environment variables; returns (process id, process count).

    Reads ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``. Call it before any other JAX call. Every wait
    (connecting, heartbeats, shutdown) gives up after about ``timeout_s`` seconds.
    On CPU the processes exchange gradients with gloo over TCP.
    """
    names = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"Expected environment variables {', '.join(names)}; missing {', '.join(missing)}. "
            f"Try JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 "
            f"(and 1 in the second process)."
        )
    if getattr(jax.config, "jax_cpu_collectives_implementation", "gloo") is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # older JAX had no CPU default
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
        initialization_timeout=timeout_s,
        heartbeat_timeout_seconds=timeout_s,
        shutdown_timeout_seconds=timeout_s,
    )
    return jax.process_index(), jax.process_count()
