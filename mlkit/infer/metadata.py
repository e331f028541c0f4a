"""What a saved predictor says about itself: described once as data, checked in one place.

Both saved formats describe their program in JSON: ``metadata.json`` beside a
jax.export payload (:mod:`mlkit.infer.artifact`) and the ``"mlkit"`` entry in an
``.onnx`` file's metadata (:mod:`mlkit.infer.onnx_format`). That JSON comes from a
file, so a loader uses nothing in it before :func:`parse` has checked it, in three steps:

1. the keys: exactly those of its format (``KEYS``, ``ONNX_KEYS``), and a text
   predictor's ``"tokenizer"`` besides;
2. each key by type and range, as the table ``FIELDS`` (``ONNX_FIELDS``) says, in the
   words a refusal uses: ``"buckets" should be up to 32 increasing batch sizes ...; got ...``;
3. the rules that tie keys together: one distinct label per output, a regression has
   one output and no labels, the largest batch fits in memory, the tokenizer writes
   rows as wide as the input.

Both loaders and :func:`mlkit.save_predictor` call :func:`parse`, so what one refuses,
the others refuse. It returns a :class:`Metadata`: the typed values a ``Predictor`` is
built from, and the checked JSON object itself.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mlkit.data import Preprocessor
from mlkit.data.text import Tokenizer

FORMAT = "mlkit.predictor"  # metadata.json of a jax.export directory
ONNX_FORMAT = "mlkit.predictor.onnx"  # the "mlkit" entry of an .onnx file's metadata
FORMAT_VERSION = 2  # 2: manifest.json covers every file; 1 (mlkit 0.1): only the payload's sha256, in metadata
PAYLOAD = "function.jaxexport"  # the one file format 1 names in its metadata
TASKS = ("classification", "regression")
KNOWN_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # jax.export's names
MAX_FEATURES = 1 << 24
MAX_LABELS = 100_000
MAX_LABEL_CHARS = 1_000
MAX_BUCKETS = 32
MAX_BUCKET = 65_536  # rows in one compiled batch
MAX_BATCH_BYTES = 1 << 30  # of float32 input in the largest bucket
CHECK_ROWS = 4  # rows whose answers are recorded at save time and compared when the program is checked
ONNX_CHECK_ROWS = 32  # an .onnx file records more: a changed weight that only some rows use shows up in one of them
OPTIONAL = {"tokenizer"}  # a text predictor's vocabulary (see mlkit.infer.text)
COMMON = ("format_version", "task", "labels", "input", "output", "preprocessor", "versions")
KEYS = {  # metadata.json, by format version
    1: {"format", *COMMON, "buckets", "param_bytes", "platforms", "payload"},
    2: {"format", *COMMON, "buckets", "param_bytes", "platforms", "check"},
}
ONNX_KEYS = {"format", "task", "labels", "num_features", "output", "preprocessor", "versions"}
ONNX_OPTIONAL = {*OPTIONAL, "check"}  # the answers to the check rows: files saved before mlkit recorded them lack it
RE_EXPORT = (
    "Re-export it with the versions installed here: `python -m mlkit train ... --out DIR`, "
    "or `mlkit.save_predictor(predictor, DIR)` from the trained model."
)


class MetadataError(ValueError):
    """Metadata that is not what its format describes; ``problem`` says what, without the file's name."""

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message


@dataclasses.dataclass(frozen=True)
class Metadata:
    """A saved predictor's description, as :func:`parse` checked it."""

    task: str  # "classification" or "regression"
    labels: tuple  # one per output for a classifier, none for a regression
    features: int  # the input's columns
    outputs: int  # the output's columns
    buckets: tuple[int, ...]  # the batch sizes compiled for; () for an .onnx file, which takes any batch
    preprocessor: Preprocessor | None  # the training statistics applied before the model
    json: dict  # the whole checked object (platforms, versions, check answers, tokenizer)


@dataclasses.dataclass(frozen=True)
class Field:
    """One key: ``ok(value, n, k)`` says whether it holds what ``should`` says (``{n}`` inputs, ``{k}`` outputs)."""

    should: str
    ok: Callable[[Any, int, int], bool]


def _int(value: Any, low: int, high: int) -> bool:
    """Whether ``value`` is an integer (not a boolean) from ``low`` to ``high``."""
    return type(value) is int and low <= value <= high


def _number(x: Any) -> bool:
    """Whether ``x`` is a finite JSON number (not a boolean, not an integer too large for a float)."""
    return (type(x) is int and abs(x) <= 1e308) or (type(x) is float and math.isfinite(x))


def _numbers(values: Any, count: int) -> bool:
    return isinstance(values, list) and len(values) == count and all(_number(x) for x in values)


def _spec(v: Any, high: int) -> bool:
    return (
        isinstance(v, dict)
        and v.keys() == {"shape", "dtype"}
        and v["dtype"] == "float32"
        and isinstance(v["shape"], list)
        and len(v["shape"]) == 2
        and v["shape"][0] == "b"
        and _int(v["shape"][1], 1, high)
    )


def _label_kind(label: Any) -> str | None:
    if isinstance(label, str):
        return "text" if len(label) <= MAX_LABEL_CHARS else None
    if isinstance(label, bool):
        return "bool"
    return "number" if _number(label) else None


def _labels(v: Any) -> bool:
    kinds = {_label_kind(label) for label in v} if isinstance(v, list) and len(v) <= MAX_LABELS else {None}
    return len(kinds) <= 1 and None not in kinds


def _preprocessor(v: Any, n: int) -> bool:
    return v is None or (
        isinstance(v, dict)
        and v.keys() == {"mean", "scale", "kind", "floor"}
        and v["kind"] in ("standardize", "none")
        and _number(v["floor"])
        and v["floor"] >= 0
        and _numbers(v["mean"], n)
        and _numbers(v["scale"], n)
    )


def _versions(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and v.keys() == {"mlkit", "jax", "serialization", "calling_convention"}
        and all(isinstance(v[name], str) and 0 < len(v[name]) <= 64 for name in ("mlkit", "jax"))
        and (v["serialization"] is None or _int(v["serialization"], 0, 1 << 20))
        and _int(v["calling_convention"], 0, 1 << 20)
    )


def _platforms(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(p, str) and p in KNOWN_PLATFORMS for p in v)
        and len(set(v)) == len(v)
    )


def _check(v: Any, k: int) -> bool:
    return (
        isinstance(v, dict)
        and v.keys() == {"platform", "outputs"}
        and v["platform"] in KNOWN_PLATFORMS
        and isinstance(v["outputs"], list)
        and len(v["outputs"]) == CHECK_ROWS
        and all(_numbers(row, k) for row in v["outputs"])
    )


def is_entry(v: Any, **extra: Any) -> bool:
    """Whether ``v`` gives a file's ``"bytes"`` and ``"sha256"`` (and exactly the ``extra`` keys and values)."""
    return (
        isinstance(v, dict)
        and v.keys() == {"bytes", "sha256", *extra}
        and _int(v["bytes"], 0, 1 << 62)
        and isinstance(v["sha256"], str)
        and len(v["sha256"]) == 64
        and all(c in "0123456789abcdef" for c in v["sha256"])
        and all(v[name] == value for name, value in extra.items())
    )


FIELDS: dict[str, Field] = {  # metadata.json: every key but "format" and "format_version", in the order checked
    "input": Field(
        f'be {{"shape": ["b", size], "dtype": "float32"}}, size 1 to {MAX_FEATURES}',
        lambda v, n, k: _spec(v, MAX_FEATURES),
    ),
    "output": Field(
        f'be {{"shape": ["b", size], "dtype": "float32"}}, size 1 to {MAX_LABELS}', lambda v, n, k: _spec(v, MAX_LABELS)
    ),
    "task": Field('be "classification" or "regression"', lambda v, n, k: v in TASKS),
    "labels": Field(
        f"be all strings (up to {MAX_LABEL_CHARS} characters) or all numbers, in a list of at most {MAX_LABELS}",
        lambda v, n, k: _labels(v),
    ),
    "buckets": Field(
        f"be up to {MAX_BUCKETS} increasing batch sizes, 1 to {MAX_BUCKET}",
        lambda v, n, k: (
            isinstance(v, list)
            and 1 <= len(v) <= MAX_BUCKETS
            and all(_int(b, 1, MAX_BUCKET) for b in v)
            and v == sorted(set(v))
        ),
    ),
    "preprocessor": Field(
        'be null or hold "kind", "floor", and "mean" and "scale" lists of {n} numbers',
        lambda v, n, k: _preprocessor(v, n),
    ),
    "param_bytes": Field("be null or a byte count", lambda v, n, k: v is None or _int(v, 0, 1 << 62)),
    "platforms": Field(f"be a list of distinct names from {list(KNOWN_PLATFORMS)}", lambda v, n, k: _platforms(v)),
    "versions": Field(
        'give "mlkit" and "jax" strings, "serialization", "calling_convention"', lambda v, n, k: _versions(v)
    ),
    "payload": Field(
        f'be {{"file": "{PAYLOAD}", "bytes": size, "sha256": 64 hex digits}}',
        lambda v, n, k: is_entry(v, file=PAYLOAD),
    ),
    "check": Field(
        f'hold a "platform" and the "outputs" of {CHECK_ROWS} rows of {{k}} finite numbers',
        lambda v, n, k: _check(v, k),
    ),
    "tokenizer": Field('be {"kind": "words", "vocab": [words], "max_len": n}', lambda v, n, k: isinstance(v, dict)),
}
ONNX_FIELDS: dict[str, Field] = {  # an .onnx file's "mlkit" entry: its own input, output and versions
    "num_features": Field(
        f"be the number of input columns, 1 to {MAX_FEATURES}", lambda v, n, k: _int(v, 1, MAX_FEATURES)
    ),
    "output": Field(
        'be the name of the model\'s output, "probabilities" or "values"',
        lambda v, n, k: v in ("probabilities", "values"),
    ),
    **{key: FIELDS[key] for key in ("task", "labels", "preprocessor", "tokenizer")},
    "check": Field(
        f'hold the "outputs" of {ONNX_CHECK_ROWS} rows of {{k}} finite numbers',
        lambda v, n, k: (
            isinstance(v, dict)
            and v.keys() == {"outputs"}
            and isinstance(v["outputs"], list)
            and len(v["outputs"]) == ONNX_CHECK_ROWS
            and all(_numbers(row, k) for row in v["outputs"])
        ),
    ),
    "versions": Field(
        'give the "mlkit" and "jax2onnx" versions (strings or null)',
        lambda v, n, k: (
            isinstance(v, dict)
            and v.keys() == {"mlkit", "jax2onnx"}
            and all(x is None or (isinstance(x, str) and 0 < len(x) <= 64) for x in v.values())
        ),
    ),
}


def parse(raw: Any, where: str, *, outputs: int | None = None) -> Metadata:
    """``raw`` (the JSON object read from ``where``) checked against its format, as a :class:`Metadata`.

    ``raw["format"]`` says which format: ``FORMAT`` (metadata.json) or ``ONNX_FORMAT``, whose
    output width ``outputs`` comes from the model itself. Raises :class:`MetadataError`
    naming ``where`` for foreign or incomplete metadata, a format newer than this mlkit
    reads, and any key that is not what its ``Field`` says.
    """
    onnx = isinstance(raw, dict) and raw.get("format") == ONNX_FORMAT
    if not onnx and (not isinstance(raw, dict) or raw.get("format") != FORMAT):
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise MetadataError(f'{where} is not mlkit predictor metadata: expected "format": "{FORMAT}", got {got!r}.')
    keys = ONNX_KEYS if onnx else _keys(raw, where)
    try:
        if raw.keys() - (ONNX_OPTIONAL if onnx else OPTIONAL) != keys:
            named = "an .onnx file's mlkit entry has" if onnx else f"format {raw['format_version']} has"
            raise MetadataError(f"{named} exactly the keys {sorted(keys)} (a text predictor also {sorted(OPTIONAL)})")
        return _checked(raw, onnx, outputs)
    except MetadataError as e:
        raise MetadataError(f"{where} is malformed: {e.problem}. Re-save the artifact.", e.problem) from None


def _keys(raw: dict, where: str) -> set[str]:
    """The keys of metadata.json's format version; refused if it lacks the common ones or is too new."""
    missing = [key for key in COMMON if key not in raw]
    if missing:
        raise MetadataError(
            f"{where} lacks the keys {missing}: the artifact is incomplete or from another tool. Re-save it."
        )
    version = raw["format_version"]
    if not _int(version, 1, 1 << 30):
        raise MetadataError(
            f'{where} is malformed: "format_version" should be a positive integer. Re-save the artifact.'
        )
    if version > FORMAT_VERSION:
        raise MetadataError(
            f"{where} uses artifact format {version}; this mlkit {importlib.metadata.version('mlkit-course')} reads "
            f"formats up to {FORMAT_VERSION}. Upgrade mlkit to read it. {RE_EXPORT}"
        )
    return KEYS[version]


def _checked(m: dict, onnx: bool, outputs: int | None) -> Metadata:
    """Steps 2 and 3 of the module's description, on metadata whose keys are the right ones."""
    if onnx and not _int(outputs, 1, MAX_LABELS):
        raise MetadataError(f"the model's output should be [b, size], size 1 to {MAX_LABELS}; got size {outputs!r}")
    n, k = 0, outputs or 0  # the widths: known once the fields that give them are checked (they come first)
    for key, field in (ONNX_FIELDS if onnx else FIELDS).items():
        if key in m and not field.ok(m[key], n, k):
            should = field.should.replace("{n}", str(n)).replace("{k}", str(k))
            raise MetadataError(f'"{key}" should {should}; got {_show(m[key])}')
        if key == "num_features":
            n = m[key]
        if key == "input":
            n = m[key]["shape"][1]
        if key == "output" and not onnx:
            k = m[key]["shape"][1]
    task, labels, pre = m["task"], m["labels"], m["preprocessor"]
    if task == "regression" and (k != 1 or labels):
        raise MetadataError(
            f"a regression predictor has one output and no labels, got {k} outputs and {len(labels)} labels"
        )
    if task == "classification" and len(labels) != k:
        raise MetadataError(f"{len(labels)} labels for {k} outputs")
    twice = sorted(str(label) for label, count in collections.Counter(labels).items() if count > 1)
    if twice:
        raise MetadataError(f'"labels" should be distinct, got {_show(twice)} more than once')
    if "buckets" in m and m["buckets"][-1] * n * 4 > MAX_BATCH_BYTES:
        raise MetadataError(
            f"a batch of {m['buckets'][-1]} rows of {n} features would take more than {MAX_BATCH_BYTES:,} bytes"
        )
    if pre is not None and min(pre["scale"]) <= 0:
        raise MetadataError('"preprocessor" scales should be positive')
    problem = tokenizer_problem(m["tokenizer"], n) if "tokenizer" in m else None
    if problem:
        raise MetadataError(problem)
    return Metadata(
        task=task,
        labels=tuple(labels),
        features=n,
        outputs=k,
        buckets=tuple(m.get("buckets", ())),
        preprocessor=None if pre is None else Preprocessor.from_dict(pre),
        json=m,
    )


def check_rows(features: int, preprocessor: dict | None, count: int = CHECK_ROWS) -> np.ndarray:
    """The rows whose answers an artifact records: within two standard deviations of the training mean.

    Made by plain float64 arithmetic (no random generator), so every machine and NumPy version
    makes the same rows.
    """
    n, pre = features, preprocessor or {"mean": [0.0] * features, "scale": [1.0] * features}
    z = (np.arange(1, count * n + 1, dtype=np.float64).reshape(count, n) * 0.6180339887498949) % 1.0
    return (np.asarray(pre["mean"]) + np.asarray(pre["scale"]) * (4 * z - 2)).astype(np.float32)


def tokenizer_problem(entry: Any, features: int) -> str | None:
    """What is wrong with a ``"tokenizer"`` entry for an input of ``features`` columns, or None."""
    try:
        tokenizer = Tokenizer.from_dict(entry)
    except (ValueError, TypeError) as e:
        return f'"tokenizer" is malformed ({e})'
    if tokenizer.max_len != features:
        return f'"tokenizer" writes rows of {tokenizer.max_len} ids, the input is {features}'
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
