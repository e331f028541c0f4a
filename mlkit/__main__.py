"""The command line: ``python -m mlkit train | predict | bench | kernel | doctor``. Thin: the library does the work."""

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
