"""What an ``.onnx`` file may hold before ONNX Runtime is given it: mlkit's own kind of graph, nothing more.

An ONNX model is a program, as a jax.export payload is, and a file from elsewhere may
be hostile. :func:`graph_problem` reads the parsed protobuf (nothing runs) and refuses:

- **external data**: a tensor whose bytes live in another file (``data_location``
  EXTERNAL, or an ``external_data`` entry). ONNX Runtime would read that file, any
  file the loading process can read (a signing key, say), into a weight, and its bytes
  would come back in the answers. mlkit's exports hold every weight inline.
- **operators mlkit's exports do not use** (``OPERATORS``, checked in every graph,
  nested ones too): no control flow (``Loop``, ``If``, ``Scan``), no operator that makes
  a tensor of a size it computes (``ConstantOfShape``, ``Range``), no custom domain and
  no model-local functions.
- **sizes past a bound**: a declared dimension above ``MAX_DIM``, an initializer of
  more than ``MAX_ELEMENTS`` numbers, an integer initializer (a shape, an axis) with a
  value above ``MAX_DIM``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

# Every operator jax2onnx writes for mlkit's models (MLP with each activation, batch norm and dropout,
# LogisticRegression, ConvNet, EmbeddingBag, with_resize, the compressed variants), all in ONNX's own domain.
OPERATORS = frozenset(
    {
        *("Add", "Sub", "Mul", "Div", "Pow", "Max", "Clip", "Not", "Equal", "Cast"),
        *("Relu", "Tanh", "Sigmoid", "Softmax", "Gemm", "Einsum", "Conv", "AveragePool"),
        *("BatchNormalization", "Dropout", "ReduceSum", "Gather"),
        *("Shape", "Reshape", "Expand", "Concat", "Squeeze", "Unsqueeze", "Transpose"),
    }
)
MAX_DIM = 1 << 24  # the largest dimension (or integer constant) a graph may declare: mlkit's MAX_FEATURES
MAX_ELEMENTS = 1 << 28  # numbers in one initializer (1 GiB of float32, the largest .onnx file read)


def graph_problem(model: Any) -> str | None:
    """What in the parsed ``onnx.ModelProto`` mlkit does not load, or None."""
    from onnx import TensorProto

    if model.functions:
        return f"it defines its own functions ({model.functions[0].name!r}); mlkit's exports define none"
    graphs = list(_graphs(model.graph))
    for tensor in (tensor for graph in graphs for tensor in _tensors(graph)):
        if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
            where = next((e.value for e in tensor.external_data if e.key == "location"), "another file")
            return (
                f"its tensor {tensor.name!r} takes its data from {where!r} (external data); "
                f"mlkit loads only files that hold every tensor inline"
            )
        if any(not 0 <= d <= MAX_DIM for d in tensor.dims) or math.prod(tensor.dims) > MAX_ELEMENTS:
            return f"its tensor {tensor.name!r} has shape {list(tensor.dims)}, more than mlkit's bound"
        if tensor.data_type in (TensorProto.INT64, TensorProto.INT32) and _too_large(tensor):
            return f"its integer tensor {tensor.name!r} holds a value above {MAX_DIM:,}"
    for node in (node for graph in graphs for node in graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPERATORS:
            domain = f" (domain {node.domain!r})" if node.domain not in ("", "ai.onnx") else ""
            return (
                f"it uses the operator {node.op_type!r}{domain}, which mlkit's exports never write; "
                f"mlkit loads graphs of {', '.join(sorted(OPERATORS))}"
            )
    for value in (value for graph in graphs for value in (*graph.input, *graph.output, *graph.value_info)):
        if any(d.HasField("dim_value") and not 0 <= d.dim_value <= MAX_DIM for d in value.type.tensor_type.shape.dim):
            return f"its value {value.name!r} declares a dimension above {MAX_DIM:,}"
    return None


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every graph nested in its nodes' attributes (the bodies of Loop, If, Scan)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for inner in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                yield from _graphs(inner)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor ``graph`` holds itself: initializers (dense, and sparse ones' values and indices) and attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            sparse = [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []
            for each in (*sparse, *attribute.sparse_tensors):
                yield from (each.values, each.indices)


def _too_large(tensor: Any) -> bool:
    """Whether an integer tensor holds a value beyond ``MAX_DIM`` either way (or cannot be read as numbers)."""
    from onnx import numpy_helper

    try:
        values = numpy_helper.to_array(tensor)
    except Exception:  # data that does not fit its declared shape and type
        return True
    return values.size > 0 and bool(values.max() > MAX_DIM or values.min() < -MAX_DIM)
