"""The timing toolkit and the benchmark suite: results are produced and agree, never how fast anything is."""

import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlkit
from mlkit import bench
from mlkit.lessons.timing import redraw_seconds
from mlkit.tools import benchmarks, inference_bench, serve_bench

TRAIN_METHODS = (
    "eager jax.value_and_grad loop",
    "nnx.jit step (flax tutorial)",
    "functional jax.jit step",
    "mlkit.fit (scan epoch + validation)",
    "mlkit.fit, training call only",
)
INFER_METHODS = (
    "eager nnx model",
    "nnx.jit",
    "mlkit Predictor.predict_proba",
    "NumPy by hand",
    "  Predictor compiled core, input on device",
    "ONNX Runtime (mlkit .onnx artifact)",
    "fresh process: Predictor frozen here",
    "fresh process: load_predictor(jax.export dir)",
    "fresh process: load_predictor(.onnx)",
    "fresh process: ONNX Runtime (mlkit .onnx artifact)",
    "fresh process: NumPy by hand",
    "  fresh process: call floor, compiled x + 1 (JAX)",
    "  fresh process: call floor, x + 1 graph (ONNX Runtime)",
)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


# --- the toolkit ---------------------------------------------------------------------------------


def test_percentiles_of_a_known_sequence():
    p = bench.percentiles(np.arange(1, 101))
    assert p == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01})


def test_timing_summaries_follow_from_the_seconds():
    t = bench.Timing("x", [0.1, 0.2, 0.3, 0.4, 0.5], items=10)
    assert t.p50 == pytest.approx(0.3)
    assert t.per_item == pytest.approx(0.03)
    assert t.throughput == pytest.approx(10 / 0.3)
    d = json.loads(json.dumps(t.to_dict()))
    assert {"name", "items", "compile_s", "p50", "p90", "p99", "calls", "throughput_per_s"} <= set(d)
    assert "p50 ms" in str(t) and "x" in str(t)


def test_flops_of_a_matmul_are_two_m_n_k():
    m, k, n = 32, 48, 16
    assert bench.flops(jnp.matmul, jnp.ones((m, k)), jnp.ones((k, n))) == 2 * m * n * k


def test_cost_flops_reads_a_dict_or_a_list_of_dicts():
    class Fake:
        def __init__(self, analysis):
            self.analysis = analysis

        def cost_analysis(self):
            return self.analysis

    assert bench.cost_flops(Fake({"flops": 7.0})) == 7.0
    assert bench.cost_flops(Fake([{"flops": 9.0}])) == 9.0
    assert math.isnan(bench.cost_flops(Fake({})))


def test_compile_is_timed_apart_and_timed_calls_do_not_retrace():
    traces = []

    def f(x):
        traces.append(1)  # runs only while tracing
        return jnp.tanh(x @ x.T).sum()

    t = bench.time_jitted(f, np.ones((8, 4), np.float32), repeats=7, warmup=2)
    assert len(traces) == 1
    assert _positive(t.compile_s)
    assert len(t.seconds) == 7 and all(_positive(s) for s in t.seconds)


def test_compare_times_every_function_in_turns():
    timings = bench.compare({"a": jnp.sin, "b": np.cos}, np.ones(4, np.float32), items=4, rounds=3, calls=2)
    assert set(timings) == {"a", "b"}
    assert all(len(t.seconds) == 6 and _positive(t.throughput) for t in timings.values())


def test_training_step_costs_about_three_inference_passes(digits):
    model = mlkit.MLP(digits.num_features, (32,), digits.num_classes)
    cost = bench.train_vs_infer_flops(model, jnp.asarray(digits.train.x[:16]), jnp.asarray(digits.train.y[:16]))
    assert _positive(cost["train_step"]) and _positive(cost["inference"])
    assert 2 < cost["ratio"] < 4.5


def test_predictor_sweep_covers_each_batch(digits, trained):
    predictor = mlkit.freeze(trained, digits)
    for end_to_end in (False, True):
        sweep = bench.predictor_sweep(predictor, digits.test.raw_x, (1, 4), repeats=3, warmup=1, end_to_end=end_to_end)
        assert [t.items for t in sweep.timings] == [1, 4]
        assert all(_positive(t.throughput) for t in sweep.timings)
        assert "batch 4" in str(sweep)
        json.dumps(sweep.to_dict())


def test_devices_and_matmul_peak():
    assert bench.devices() and bench.devices()[0]["platform"] == jax.devices()[0].platform
    assert _positive(bench.matmul_peak(64, repeats=2))


def test_table_aligns_columns_and_marks_missing_values():
    text = bench.table([{"name": "a", "v": 1.23456}, {"name": "bb", "v": math.nan}])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "v"] and "1.235" in lines[2] and lines[3].split() == ["bb", "-"]
    assert len({len(line) for line in lines}) == 1


# --- the suite, in quick mode --------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "nested" / "bench.json"
    assert benchmarks.run(quick=True, out=str(out), redraw=redraw_seconds) == 0
    return json.loads(out.read_text())


def test_quick_run_writes_every_section(quick):
    assert {
        "quick",
        "machine",
        "matmul_peak_gflops",
        "flops",
        "training",
        "inference",
        "prediction_check",
        "interactivity",
        "serving",
        "peers",
        "ratios",
        "total_seconds",
    } <= set(quick)
    assert quick["quick"] is True
    assert _positive(quick["matmul_peak_gflops"])
    assert 2 < quick["flops"]["32"]["ratio"] < 4.5


def test_quick_run_has_every_training_row(quick):
    rows = {r["method"]: r for r in quick["training"] if r["batch"] == 32}
    assert set(TRAIN_METHODS) <= set(rows)
    for name in TRAIN_METHODS:
        assert all(_positive(rows[name][k]) for k in ("ms/step", "steps/s", "GFLOP/s", "% peak")), name
        assert math.isfinite(rows[name]["compile s"])  # 0 when compiled earlier
    losses = [rows[name]["last-epoch loss"] for name in TRAIN_METHODS[1:]]
    assert all(_positive(v) for v in losses)
    assert np.allclose(losses, losses[0], rtol=0.05)  # same weights, batches and optimiser: same training


def test_quick_run_has_every_inference_row_and_predictions_agree(quick):
    rows = {(r["method"], r["batch"]): r for r in quick["inference"]}
    for name in INFER_METHODS:
        for batch in (1, 1024):
            assert all(_positive(rows[name, batch][k]) for k in ("p50 ms", "p99 ms", "rows/s")), (name, batch)
    assert not any(quick["prediction_check"]["disagreements"].values())
    assert not any(quick["prediction_check"]["fresh_process"]["disagreements"].values())
    assert quick["prediction_check"]["fresh_process"]["synchronous_dispatch"] is True


def test_quick_run_reports_every_target(quick):
    assert len(quick["ratios"]) == 14  # fit vs nnx.jit, vs jax.jit (batch 32; worst batch), eight inference, redraw,
    # and two served over HTTP: mlkit against the best baseline, batching on against off where the model dominates
    assert [r["batch"] for r in quick["fit_vs_jit"]] == [8, 512]
    assert all(_positive(r["jit / fit"]) for r in quick["fit_vs_jit"])
    for r in quick["ratios"]:
        assert _positive(r["value"]) and isinstance(r["met"], bool) and r["target"]
    assert _positive(quick["interactivity"]["seconds"])
    assert set(quick["peers"]) == {"torch", "onnxruntime"}


def test_quick_run_serves_every_server_it_names_without_errors(quick):
    serving = quick["serving"]
    rows = {r["server"]: r for r in serving["table"] + serving["batching"]}
    assert {serve_bench.MLKIT, serve_bench.FASTAPI_ASYNC_1} <= set(rows)
    for name, row in rows.items():
        assert row["errors"] == 0 and row["sent"] > 0, name
        assert all(_positive(row[k]) for k in ("req/s", "p50 ms", "p99 ms")), name
        assert row["p50 ms"] <= row["p90 ms"] <= row["p99 ms"], name
    assert serving["clients"] == 32 and set(serving["found"]) == {"onnxruntime", "litserve"}


def test_serving_ratios_are_nan_where_a_part_was_not_measured():
    values = [value for _, value, _ in serve_bench.ratios(None)]
    assert len(values) == 2 and all(math.isnan(v) for v in values)
    table = [{"server": serve_bench.MLKIT, "req/s": 900.0}, {"server": serve_bench.LITSERVE, "req/s": 300.0}]
    table.append({"server": serve_bench.FASTAPI_SYNC, "req/s": 200.0})
    (name, value, target), _ = serve_bench.ratios({"table": table, "batching": []})
    assert value == 3.0 and target == ">= 3" and "best: LitServe" in name


def test_disagreeing_predictions_fail_loudly(digits, trained, monkeypatch):
    wrong = lambda model, prep: lambda x: np.eye(10, dtype=np.float32)[np.zeros(len(x), int) + 3]
    monkeypatch.setattr(inference_bench, "numpy_forward", wrong)
    with pytest.raises(RuntimeError, match="disagree"):
        inference_bench.inference_rows(trained, digits, repeats_1=2, repeats_big=1)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_and_the_built_in_client_report_the_same_row(trained, digits, tmp_path):
    from mlkit.serve import Server

    rows = np.asarray(digits.test.raw_x, np.float32)
    with Server(mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "a")) as server:
        by_wrk = serve_bench._wrk(server.url, rows, 1.0, "wrk")
        by_aiohttp = serve_bench._aiohttp(server.url, rows, 0.5, "aiohttp")
    assert by_wrk.keys() == by_aiohttp.keys()
    for row in (by_wrk, by_aiohttp):
        assert row["req/s"] > 0 and row["errors"] == 0 and 0 < row["p50 ms"] <= row["p99 ms"]
    assert by_wrk["sent"] > 0 and 0 <= by_wrk["client busy"] < 2
