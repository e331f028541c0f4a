"""The command line: ``python -m mlkit train | predict | serve | load | bench | kernel | doctor``.

Thin: the library does the work.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from flax import nnx


def _train(args) -> int:
    import mlkit

    data = mlkit.load_dataset(args.data, seed=args.seed, label=args.label)
    model: nnx.Module
    if args.model == "convnet":
        if data.image_shape is None:
            raise SystemExit(f"--model convnet needs image data; {args.data!r} has no image shape.")
        model = mlkit.ConvNet(data.image_shape, data.num_classes, dropout=args.dropout, seed=args.seed)
    else:
        model = mlkit.MLP(
            data.num_features,
            tuple(args.hidden),
            data.num_classes,
            dropout=args.dropout,
            batch_norm=args.batch_norm,
            seed=args.seed,
        )
    config = mlkit.TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
    )
    history = mlkit.fit(model, data, config)
    print(history)
    if history.message:
        print(history.message)
    test_loss, test_acc = mlkit.evaluate(model, data.test, data.task)
    print(f"test loss {test_loss:.4f}" + (f", test accuracy {test_acc:.4f}" if data.task == "classification" else ""))
    if args.out:
        mlkit.save_predictor(mlkit.freeze(model, data), args.out)
        print(f"saved the frozen predictor to {args.out}")
    return 0 if history.status in ("completed", "early_stopped") else 1


def _predict(args) -> int:
    from mlkit.infer.dispatch import prefer_sync_dispatch

    prefer_sync_dispatch()  # before JAX starts: this process only answers
    import mlkit

    predictor = mlkit.load_predictor(args.artifact)
    if args.input.endswith(".npz"):
        with np.load(args.input, allow_pickle=False) as f:
            x = f["x"]
    else:
        x = np.loadtxt(args.input, delimiter=",", ndmin=2)
    x = x.reshape(len(x), -1)
    for label in predictor.predict(x):
        print(label)
    return 0


def _bench(args) -> int:
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
    from pathlib import Path

    from mlkit.serve import Settings, run

    max_batch, max_wait_ms = (1, 0.0) if args.no_batching else (args.max_batch, args.max_wait_ms)
    settings = Settings(
        Path(args.artifact),
        host=args.host,
        port=args.port,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=args.max_queue,
        workers=args.workers,
        max_body_bytes=args.max_body_bytes,
        fixed_shape=args.fixed_shape,
        drift_window=args.drift_window,
        drift_threshold=args.drift_threshold,
        drift_min_rows=args.drift_min_rows,
        model_delay_ms=args.model_delay_ms,
        shutdown_timeout_s=args.shutdown_timeout,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    try:
        return run(settings)
    except KeyboardInterrupt:  # Ctrl-C while the model was still loading
        return 130


def _load(args) -> int:
    import json

    from mlkit.serve import load

    rows = None
    if args.data:
        if args.data.endswith(".npz"):
            with np.load(args.data, allow_pickle=False) as f:
                rows = f["x"]
        elif args.data.endswith(".csv"):
            rows = np.loadtxt(args.data, delimiter=",", ndmin=2)
        else:
            import mlkit

            rows = mlkit.load_dataset(args.data, seed=0).test.raw_x
        rows = rows.reshape(len(rows), -1)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and optionally save its frozen predictor")
    train.add_argument("--data", default="digits", help="digits, mnist5k, moons, ... or a .csv/.npz path")
    train.add_argument("--label", default=None, help="label column of a CSV file (default: the last)")
    train.add_argument("--model", choices=("mlp", "convnet"), default="mlp")
    train.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="MLP hidden layer widths")
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--batch-norm", action="store_true")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="adam")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default=None, help="directory for the deployable predictor artifact")
    train.set_defaults(run=_train)

    predict = commands.add_parser("predict", help="label the rows of a CSV or NPZ file with a saved predictor")
    predict.add_argument("artifact", help="a directory written by `train --out` or Predictor.save")
    predict.add_argument("input", help="CSV of raw feature rows (no label column), or .npz with array x")
    predict.set_defaults(run=_predict)

    bench = commands.add_parser("bench", help="time mlkit against the usual ways to train and infer")
    bench.add_argument("--quick", action="store_true", help="a few seconds: proves it works, numbers are rough")
    bench.add_argument("--out", default="results/bench.json", help="where to write the JSON results")
    bench.set_defaults(run=_bench)

    serve = commands.add_parser("serve", help="answer HTTP requests with a saved predictor (dynamic batching)")
    serve.add_argument("artifact", help="a directory written by `train --out` or save_predictor, or a .onnx file")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="0 picks any free port (default 8000)")
    serve.add_argument("--max-batch", type=int, default=64, help="most rows per model call; 1 turns batching off")
    serve.add_argument("--max-wait-ms", type=float, default=2.0, help="longest a request waits for a batch to fill")
    serve.add_argument("--max-queue", type=int, default=1024, help="requests allowed to wait; more get 503 at once")
    serve.add_argument("--no-batching", action="store_true", help="one row per model call (--max-batch 1)")
    serve.add_argument("--workers", type=int, default=1, help="server processes, each with its own model")
    serve.add_argument("--max-body-bytes", type=int, default=1_000_000, help="larger request bodies get 413")
    serve.add_argument(
        "--fixed-shape",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pad every batch to --max-batch rows, so answers never depend on grouping (default on)",
    )
    serve.add_argument("--drift-window", type=int, default=500, help="rows the drift watch's running mean remembers")
    serve.add_argument("--drift-threshold", type=float, default=0.5, help="largest |z| before /drift says drifted")
    serve.add_argument("--drift-min-rows", type=int, default=100, help="rows seen before drift can be flagged")
    serve.add_argument("--model-delay-ms", type=float, default=0.0, help="add to every model call (a bigger model)")
    serve.add_argument("--shutdown-timeout", type=float, default=10.0, help="seconds to finish requests on SIGTERM")
    serve.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug", "trace")
    )
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False, help="log every request")
    serve.set_defaults(run=_serve)

    load = commands.add_parser("load", help="send load to a running server and report throughput and latency")
    load.add_argument("url", help="the server's address, e.g. http://127.0.0.1:8000")
    load.add_argument("--rate", type=float, default=None, help="open loop: requests per second on a clock")
    load.add_argument("--concurrency", type=int, default=8, help="closed loop: clients (used when --rate is not given)")
    load.add_argument("--duration", type=float, default=5.0, help="seconds of sending")
    load.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    load.add_argument("--rows-per-request", type=int, default=1)
    load.add_argument("--data", default=None, help="rows to send: a data set name (its test split), .csv or .npz")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
