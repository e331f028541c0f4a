"""The command line: ``python -m mlkit train | predict | serve | load | bench | kernel | doctor``.

Thin: the library does the work.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import typing
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for the annotation only
    from flax import nnx


def _train(args) -> int:
    """Exit codes: 0 completed or early-stopped (and saved, with --out); 1 diverged or learned nothing
    (nothing saved unless --save-anyway); 130 interrupted (Ctrl-C: nothing saved); 2 a mistake in the options."""
    import mlkit
    from mlkit.infer.artifact import _check_target  # save_predictor's own rule, checked before training
    from mlkit.train.loop import catch_interrupts

    _check_train_options(args)
    if args.out:
        if Path(args.out).is_file() and not args.out.lower().endswith(".onnx"):
            raise ValueError(f"--out {args.out} is a file; give a directory for the artifact, or a .onnx name.")
        if not args.out.lower().endswith(".onnx"):
            _check_target(Path(args.out))  # an existing directory that is not an artifact: refused now, not after
        _check_writable(args.out)
    label = int(args.label) if args.label is not None and args.label.isdigit() else args.label  # numbered from 0
    data = mlkit.load_dataset(args.data, seed=args.seed, label=label)
    model: nnx.Module
    if args.model == "convnet":
        if data.image_shape is None:
            raise ValueError(f"--model convnet needs image data; {args.data!r} has no image shape. Use --model mlp.")
        model = mlkit.ConvNet(data.image_shape, data.num_classes, dropout=args.dropout, seed=args.seed)
    elif args.model == "bag":
        if data.tokenizer is None:
            raise ValueError(f"--model bag needs a text set; {args.data!r} holds numbers. Use --model mlp.")
        model = mlkit.EmbeddingBag(data.tokenizer.size, data.num_classes, seed=args.seed)
    elif data.tokenizer is not None:
        raise ValueError(f"{args.data!r} holds texts: train it with --model bag.")
    else:
        model = mlkit.MLP(
            data.num_features,
            tuple(args.hidden or (256, 256)),
            data.num_classes,
            dropout=args.dropout,
            batch_norm=args.batch_norm,
            seed=args.seed,
        )
    config = mlkit.TrainConfig(**_values(mlkit.TrainConfig, args))
    history = mlkit.fit(model, data, config)  # Ctrl-C here ends the run as "interrupted"
    with catch_interrupts() as interrupted:  # and from here to the save, a Ctrl-C is never lost either
        print(history)
        if history.message:
            print(history.message)
        test_loss, test_acc = mlkit.evaluate(model, data.test, data.task)
        accuracy = f", test accuracy {test_acc:.4f}" if data.task == "classification" else ""
        print(f"test loss {test_loss:.4f}{accuracy}")
        good = history.status in ("completed", "early_stopped")
        if history.status == "interrupted" or interrupted():
            if args.out:
                print(f"error: interrupted, so nothing was saved to {args.out}.", file=sys.stderr)
            return 130  # as for any Ctrl-C
        if args.out and not good and not args.save_anyway:
            print(
                f"error: training {history.status.replace('_', ' ')}, so nothing was saved to {args.out}; "
                f"--save-anyway saves it.",
                file=sys.stderr,
            )
        elif args.out:
            predictor = mlkit.freeze(model, data)
            if interrupted():
                print(f"error: interrupted, so nothing was saved to {args.out}.", file=sys.stderr)
                return 130
            mlkit.save_predictor(predictor, args.out)
            print(f"saved the frozen predictor to {args.out}")
    return 0 if good else 1


def _check_train_options(args) -> None:
    """Refuse options that would be ignored, before anything is loaded."""
    if args.label is not None and not args.data.lower().endswith(".csv"):
        raise ValueError(
            f"--label picks the label column of a CSV file, and {args.data!r} is not one "
            f"(shipped, generated and .npz sets carry their labels); drop --label."
        )
    if args.model != "mlp" and (args.hidden is not None or args.batch_norm):
        raise ValueError(f"--hidden and --batch-norm shape an MLP; --model {args.model} has fixed blocks. Drop them.")
    if args.model == "bag" and args.dropout:
        raise ValueError("--model bag has no dropout; drop --dropout.")


def _check_writable(out: str) -> None:
    """Fail before training, not after, when the artifact could not be written to ``out``."""
    path = Path(out).absolute()
    ancestor = path.parent
    while not ancestor.exists():  # save_predictor creates missing parent directories
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {out}: {ancestor} is a file, not a directory; choose another path.")
    try:
        tempfile.TemporaryFile(dir=ancestor).close()
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write in {ancestor} ({e.strerror}); choose a writable directory.") from e


def _predict(args) -> int:
    from mlkit.infer.dispatch import prefer_sync_dispatch

    prefer_sync_dispatch()  # before JAX starts: this process only answers
    import mlkit
    from mlkit.data.text import read_texts
    from mlkit.infer.predictor import TextPredictor
    from mlkit.infer.verify import key_from

    predictor = mlkit.load_predictor(args.artifact, key=key_from(args.key))
    if isinstance(predictor, TextPredictor) and Path(args.input).suffix.lower() in (".csv", ".npz"):
        raise ValueError(
            f"{args.artifact} is a text model: it reads messages, not the numbers of {args.input}. "
            f"Give a UTF-8 text file with one message per line."
        )
    x = read_texts(args.input) if isinstance(predictor, TextPredictor) else _read_rows(args.input)
    for label in predictor.predict(x):
        print(label)
    return 0


def _bench(args) -> int:
    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a directory; give a file name for the JSON results.")
    _check_writable(args.out)
    from mlkit.lessons.timing import redraw_seconds  # the command line sits on top: it may time the lessons' UI
    from mlkit.tools import benchmarks

    return benchmarks.run(quick=args.quick, out=args.out, redraw=redraw_seconds)


def _kernel(args) -> int:
    from mlkit.tools import kernel

    return kernel.main()


def _doctor(args) -> int:
    from mlkit.tools import doctor

    return doctor.main()


def _serve(args) -> int:
    from mlkit.infer.dispatch import prefer_sync_dispatch

    prefer_sync_dispatch()  # before JAX starts: this process only answers
    from mlkit.infer.verify import key_from
    from mlkit.serve import Settings, run

    defaults = Settings(Path(args.artifact))
    if args.no_batching and (args.max_batch, args.max_wait_ms) != (defaults.max_batch, defaults.max_wait_ms):
        raise ValueError("--no-batching means one row per model call; --max-batch and --max-wait-ms do not apply.")
    values = _values(Settings, args) | ({"max_batch": 1, "max_wait_ms": 0.0} if args.no_batching else {})
    settings = Settings(Path(args.artifact), key=key_from(args.key), **values)
    try:
        return run(settings)
    except KeyboardInterrupt:  # Ctrl-C while the model was still loading
        return 130


def _load(args) -> int:
    import json

    from mlkit.serve import load

    rows: np.ndarray | list[str] | None = None
    if args.data and args.data.lower().endswith(".txt"):
        from mlkit.data.text import read_texts

        rows = read_texts(args.data)
    elif args.data and args.data.lower().endswith((".npz", ".csv")):
        rows = _read_rows(args.data)
    elif args.data:
        import mlkit

        rows = mlkit.load_dataset(args.data, seed=0).test.raw_x
    result = load.run(
        args.url,
        rate=args.rate,
        concurrency=None if args.rate else args.concurrency,
        duration=args.duration,
        max_requests=args.max_requests,
        rows=rows,
        rows_per_request=args.rows_per_request,
        poisson=args.poisson,
        timeout=args.timeout,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0 if result.ok else 1


def _grade(args: argparse.Namespace) -> int:
    from mlkit.lessons import grading

    try:
        if args.step == "assign":
            for path in grading.assign(Path(args.course), args.lessons):
                print(f"student version: {path}")
        else:
            for student, (points, out_of) in sorted(grading.autograde(Path(args.course), args.lesson).items()):
                print(f"{student}: {points:g} of {out_of:g}")
    except (ModuleNotFoundError, RuntimeError) as e:  # no nbgrader; nbgrader's own failure, with its output
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _read_rows(path: str) -> np.ndarray:
    """Raw feature rows, one per example, from a CSV of numbers (no label column) or an NPZ with array ``x``."""
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"{path} is {'a directory' if source.is_dir() else 'missing'}; expected a .csv or .npz file.")
    if source.suffix.lower() == ".npz":
        try:
            with open(source, "rb") as handle, np.load(handle, allow_pickle=False) as f:  # closed on a bad file
                if "x" not in f.files:
                    raise ValueError(f"{path} holds arrays {sorted(f.files)}; expected one named 'x' (the rows).")
                if held := _held_problem(f.zip):  # before numpy allocates what the header declares
                    raise ValueError(f"{path} is not a readable .npz file ({held}).")
                x = f["x"]
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a readable .npz file ({e}).") from e
    else:
        try:
            with warnings.catch_warnings():  # an empty file: said below, in the same words as for an NPZ
                warnings.simplefilter("ignore", UserWarning)
                # as training reads a CSV: a byte-order mark and a header line of names are no rows
                with open(source, encoding="utf-8-sig") as f:
                    header = int(not _numbers(f.readline()))
                x = np.loadtxt(source, delimiter=",", ndmin=2, skiprows=header, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a CSV of numbers, one row per example ({e}).") from e
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{path} holds no rows; expected one row of features per example.")
    return x.reshape(len(x), -1)


def _held_problem(archive: zipfile.ZipFile) -> str | None:
    """What is wrong with x.npy's header (it declares more than the file holds), if anything."""
    from mlkit.data.files import check_held, npy_header

    try:
        check_held("x.npy", *npy_header(archive, "x.npy"))
    except ValueError as e:
        return str(e)
    return None


def _numbers(line: str) -> bool:
    """Whether a CSV line is a row of numbers (else it is a header of names)."""
    try:
        [float(cell) for cell in line.split(",")]
    except ValueError:
        return False
    return True


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """An option for every field of the dataclass ``cls`` whose metadata names one, built from the field.

    ``field(default=64, metadata={"option": "--max-batch", "help": "...", "choices": (...)})`` gives
    ``--max-batch`` with the field's type, its default (shown in the help) and, for a boolean, the pair
    ``--x`` / ``--no-x``; ``dest`` is the field's name. Fields without an option (a path, a key) are the
    command's own business.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "option" not in f.metadata:
            continue
        kwargs: dict = {"dest": f.name, "default": f.default, "help": f.metadata["help"]}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        kind = hints[f.name]
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:  # int | None: an int that defaults to None
            kwargs["type"] = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        action = parser.add_argument(f.metadata["option"], **kwargs)
        if action.help and "%(default)" not in action.help:  # Python < 3.13 adds it to a boolean pair itself
            action.help += " (default: %(default)s)"


def _values(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` that ``add_options`` made options, as parsed: keyword arguments for ``cls``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if "option" in f.metadata}


class _Command(argparse.ArgumentParser):
    """A sub-command whose arguments ``add(parser)`` adds the first time it parses or shows its help.

    ``serve`` takes its options from ``Settings``, and importing ``mlkit.serve`` needs the serve
    extra, which ``train`` and ``predict`` do not; so they are added only when ``serve`` runs.
    """

    def __init__(self, *args, add: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._add = add

    def _added(self) -> None:
        if self._add is not None:
            add, self._add = self._add, None
            add(self)

    def parse_known_args(self, args=None, namespace=None):
        self._added()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:  # a reference page built from the parser sees every option too
        self._added()
        return super().format_help()


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    from mlkit.serve.settings import Settings

    serve.add_argument("artifact", help="a directory written by `train --out` or save_predictor, or a .onnx file")
    add_options(serve, Settings)
    serve.add_argument("--no-batching", action="store_true", help="one row per model call (--max-batch 1)")
    serve.add_argument(
        "--key-file",
        dest="key",  # the file that gives Settings.key (the key itself never goes on a command line)
        metavar="PATH",
        help="file holding the signing key: only artifacts signed with it load (default: $MLKIT_ARTIFACT_KEY)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m mlkit``; the options that set a ``TrainConfig`` or ``Settings`` field come from it."""
    from mlkit.train.config import TrainConfig  # mlkit is imported already (python -m mlkit runs it first)

    parser = argparse.ArgumentParser(prog="python -m mlkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Command)

    train = commands.add_parser("train", help="train a model and optionally save its frozen predictor")
    train.add_argument("--data", default="digits", help="digits, mnist5k, reviews, moons, ... or a .csv/.npz path")
    train.add_argument(
        "--label", default=None, help="label column of a CSV file, by name or number from 0 (default: the last)"
    )
    train.add_argument("--model", choices=("mlp", "convnet", "bag"), default="mlp", help="bag: for text sets")
    train.add_argument("--hidden", type=int, nargs="+", default=None, help="MLP hidden layer widths (default 256 256)")
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--batch-norm", action="store_true")
    add_options(train, TrainConfig)
    train.add_argument("--out", default=None, help="directory for the deployable predictor artifact")
    train.add_argument(
        "--save-anyway", action="store_true", help="save the artifact even if training diverged or learned nothing"
    )
    train.set_defaults(run=_train)

    predict = commands.add_parser("predict", help="label the rows of a CSV or NPZ file with a saved predictor")
    predict.add_argument("artifact", help="a directory or .onnx file written by `train --out` or mlkit.save_predictor")
    predict.add_argument(
        "input", help="CSV of raw feature rows (no label column), .npz with array x, or (text) one message per line"
    )
    predict.add_argument(
        "--key-file",
        dest="key",  # a file, so the key itself never goes on a command line (or into `ps`)
        metavar="PATH",
        help="file holding the signing key: only artifacts signed with it load (default: $MLKIT_ARTIFACT_KEY)",
    )
    predict.set_defaults(run=_predict)

    bench = commands.add_parser("bench", help="time mlkit against the usual ways to train and infer")
    bench.add_argument("--quick", action="store_true", help="a few seconds: proves it works, numbers are rough")
    bench.add_argument("--out", default="results/bench.json", help="where to write the JSON results")
    bench.set_defaults(run=_bench)

    serve = commands.add_parser(
        "serve", help="answer HTTP requests with a saved predictor (dynamic batching)", add=_serve_arguments
    )
    serve.set_defaults(run=_serve)

    load = commands.add_parser("load", help="send load to a running server and report throughput and latency")
    load.add_argument("url", help="the server's address, e.g. http://127.0.0.1:8000")
    load.add_argument("--rate", type=float, default=None, help="open loop: requests per second on a clock")
    load.add_argument("--concurrency", type=int, default=8, help="closed loop: clients (used when --rate is not given)")
    load.add_argument("--duration", type=float, default=5.0, help="seconds of sending")
    load.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    load.add_argument("--rows-per-request", type=int, default=1)
    load.add_argument(
        "--data",
        default=None,
        help="rows to send: a data set name (its test split), .csv, .npz or (text) .txt, one message per line",
    )
    load.add_argument("--poisson", action="store_true", help="open loop: random (Poisson) arrivals at --rate")
    load.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as timed out")
    load.add_argument("--json", action="store_true", help="print the result as JSON")
    load.set_defaults(run=_load)

    kernel = commands.add_parser("kernel", help='register the "Python (mlkit)" Jupyter kernel of this environment')
    kernel.set_defaults(run=_kernel)

    doctor = commands.add_parser(
        "doctor", help="check this set-up (JupyterLab widgets, kernel, JAX, data) and say what to fix"
    )
    doctor.set_defaults(run=_doctor)

    grade = commands.add_parser("grade", help="nbgrader assignments of the lessons' exercises, scored by their checks")
    steps = grade.add_subparsers(dest="step", required=True)
    assign = steps.add_parser("assign", help="write an nbgrader course folder: teacher and student versions")
    assign.add_argument("course", help="the course folder (made if missing)")
    assign.add_argument("lessons", nargs="+", help="lessons by name, e.g. 03_loss 05_training_loop")
    autograde = steps.add_parser("autograde", help="score every copy in COURSE/submitted/<student>/<lesson>/")
    autograde.add_argument("course", help="the course folder that assign wrote")
    autograde.add_argument("lesson", help="the lesson, e.g. 03_loss")
    grade.set_defaults(run=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as e:  # what the library raises for a user's mistake
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
