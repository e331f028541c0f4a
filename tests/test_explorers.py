import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import mlkit
from mlkit.lessons import byhand, explorers, widgets
from mlkit.models import ACTIVATIONS

# ------------------------------------------------------------------ helpers against flax, XLA and jax.grad


@pytest.mark.parametrize("sizes", [[64, 10], [64, 32, 10], [2, 5, 7, 3], [784, 256, 256, 10]])
def test_param_formula_matches_count_params(sizes):
    model = nnx.eval_shape(lambda: mlkit.MLP(sizes[0], sizes[1:-1], sizes[-1]))
    assert byhand.mlp_params(sizes) == mlkit.count_params(model)


def _xla_flops(sizes, activation, batch):
    """FLOPs XLA counts for the compiled forward pass (shapes only: nothing is initialised or run)."""
    model = nnx.eval_shape(lambda: mlkit.MLP(sizes[0], sizes[1:-1], sizes[-1], activation=activation))
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((batch, sizes[0]), jnp.float32)
    compiled = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, x).compile()
    return compiled.cost_analysis()["flops"]


@pytest.mark.parametrize(
    "activation,sizes,batch",
    [("relu", [64, 64, 10], 1), ("relu", [64, 128, 128, 10], 4), ("linear", [64, 32, 32, 10], 2)],
)
def test_flop_formula_matches_xla(activation, sizes, batch):
    xla = _xla_flops(sizes, activation, batch)
    # XLA also counts the bias additions and the activations: a few per cent at these sizes.
    assert xla == pytest.approx(byhand.mlp_flops(sizes, batch), rel=0.05)
    if activation == "linear":  # nothing but matrix products and bias additions
        assert xla == pytest.approx(byhand.mlp_flops(sizes, batch, bias=True), rel=1e-3)


@pytest.mark.parametrize("name", list(byhand.ACTIVATIONS))
def test_numpy_activations_match_jax(name):
    z = np.linspace(-30, 30, 121, dtype=np.float32)
    np.testing.assert_allclose(byhand.ACTIVATIONS[name](z), ACTIVATIONS[name](z), atol=1e-6)


def test_numpy_forward_matches_the_flax_mlp(digits):
    model = mlkit.MLP(digits.num_features, (32, 16), digits.num_classes, activation="tanh", seed=1)
    x = digits.test.x[:5]
    np.testing.assert_allclose(byhand.forward(byhand.model_params(model), x, "tanh"), model(x), rtol=1e-5, atol=1e-5)


def test_init_params_have_flax_default_scale():
    ((kernel, bias),) = byhand.init_params([400, 300], seed=0)
    assert kernel.shape == (400, 300) and not bias.any()
    assert kernel.std() == pytest.approx(1 / np.sqrt(400), rel=0.02)


def test_stable_cross_entropy_and_its_gradient():
    z = np.array([1000.0, 0.0, -1000.0])
    assert byhand.cross_entropy(z, 0) == pytest.approx(0.0)
    assert byhand.cross_entropy(z, 1) == pytest.approx(1000.0)
    logits = np.array([0.3, -1.2, 2.0])
    for label in range(3):
        expected = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), label)
        assert byhand.cross_entropy(logits, label) == pytest.approx(float(expected), rel=1e-5)
        autodiff = jax.grad(lambda z, label=label: optax.softmax_cross_entropy_with_integer_labels(z, label))(
            jnp.asarray(logits)
        )
        np.testing.assert_allclose(byhand.cross_entropy_grad(logits, label), autodiff, atol=1e-6)


def test_valley_gradient_matches_jax_grad():
    valley = byhand.Valley(7.0)
    p = np.array([1.5, -0.5], np.float32)
    np.testing.assert_allclose(valley.grad(p), jax.grad(valley.value)(jnp.asarray(p)), rtol=1e-6)
    assert valley.largest_stable_lr == pytest.approx(2 / 7)


@pytest.mark.parametrize(
    "lr,expected",
    [
        (0.002, "smooth, too slow"),
        (0.05, "smooth, converged"),
        (0.1, "smooth, converged"),  # lr x curvature = 1: y reaches the floor in one step
        (0.158, "zig-zag, converged"),
        (0.1995, "zig-zag, too slow"),
        (0.3, "diverged"),
        (1.0, "diverged"),
    ],
)
def test_learning_rate_sets_the_behaviour(lr, expected):
    valley = byhand.Valley(10.0)
    path = byhand.gradient_descent(valley.grad, (-4.5, 1.5), lr, 100)
    assert byhand.behaviour(path, valley.value(path)) == expected


@pytest.mark.parametrize("curvature", [2.0, 10.0, 40.0])
@pytest.mark.parametrize("lr_times_k", [0.3, 0.9, 1.1, 1.6, 1.9, 2.1, 3.0])
def test_labels_follow_the_theory_of_the_steep_direction(curvature, lr_times_k):
    """The error across the valley is multiplied by 1 - lr·k per step: smooth below 1, zig-zag between 1 and 2,
    diverged above 2, whatever the steepness."""
    valley = byhand.Valley(curvature)
    path = byhand.gradient_descent(valley.grad, (-4.5, 1.5), lr_times_k / curvature, 300)
    label = byhand.behaviour(path, valley.value(path))
    assert label.split(",")[0] == ("smooth" if lr_times_k < 1 else "zig-zag" if lr_times_k < 2 else "diverged")


def test_the_slower_direction_sets_the_pace():
    """Fastest overall where both directions shrink alike, lr = 2/(1+k), not where the steep one is solved."""
    valley = byhand.Valley(10.0)
    final = {
        lr: valley.value(byhand.gradient_descent(valley.grad, (-4.5, 1.5), lr, 100)[-1])
        for lr in (0.05, 0.1, 0.158, 2 / 11, 0.19)
    }
    assert min(final, key=final.get) == 2 / 11 and final[0.158] < final[0.1]


# ------------------------------------------------------------------ the explorers, driven like a learner would


def test_sliders_report_only_on_release(digits):
    for explorer in (
        explorers.architecture_explorer(digits, render=False),
        explorers.loss_explorer(render=False),
        explorers.descent_explorer(render=False),
    ):
        for control in explorer.controls.values():
            assert getattr(control, "continuous_update", False) is False


def test_architecture_explorer_reports_size_and_plots_the_forward_pass(digits):
    ex = explorers.architecture_explorer(digits, index=3, render=False)
    ex.refresh()
    before = ex.status.value
    bars = [patch.get_height() for patch in ex.axes[0].patches]
    assert sum(bars) == pytest.approx(1.0, abs=1e-5) and len(bars) == 10

    ex.set_value("width", 128)
    model = nnx.eval_shape(lambda: mlkit.MLP(64, (128, 128), 10))
    assert f"{mlkit.count_params(model):,} parameters" in ex.status.value and ex.status.value != before
    assert f"{byhand.mlp_flops([64, 128, 128, 10]):,} FLOPs" in ex.status.value
    marker = ex.axes[1].get_lines()[-1]
    np.testing.assert_array_equal(marker.get_xdata(), [128, 128])

    params_curve = ex.axes[1].get_lines()[0].get_ydata().copy()
    ex.set_value("depth", 4)
    assert (ex.axes[1].get_lines()[0].get_ydata() > params_curve).all()
    assert ex.result.sizes == [64, 128, 128, 128, 128, 10]

    probs = ex.result.probs
    ex.set_value("activation", "tanh")
    assert not np.allclose(ex.result.probs, probs)
    new_bars = [patch.get_height() for patch in ex.axes[0].patches]
    np.testing.assert_allclose(new_bars, ex.result.probs)


def test_loss_explorer_shows_loss_and_gradient():
    ex = explorers.loss_explorer(render=False)
    ex.refresh()
    ex.set_value("z1", 5.0)
    z = jnp.array([2.0, 5.0, -1.0])
    loss = float(optax.softmax_cross_entropy_with_integer_labels(z, 0))
    assert ex.result.loss == pytest.approx(loss, rel=1e-5)
    assert f"loss {loss:.3f}" in ex.status.value
    autodiff = jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(z, 0))(z)
    np.testing.assert_allclose([p.get_height() for p in ex.axes[1].patches], autodiff, atol=1e-6)

    ex.set_value("label", 1)  # now the biggest logit is the right one: small loss, small gradient
    assert ex.result.loss < 0.1 and np.abs(ex.result.grad).max() < 0.1
    assert "p(dog)" in ex.status.value
    point = ex.axes[2].get_lines()[1]
    assert point.get_xdata()[0] == 5.0 and point.get_ydata()[0] == pytest.approx(ex.result.loss)


def test_descent_explorer_draws_the_path_and_names_the_behaviour():
    ex = explorers.descent_explorer(render=False)
    ex.set_value("steps", 100)
    ex.set_value("learning_rate", 0.1)
    assert ">smooth, converged: loss" in ex.status.value and ex.status.value.count("converged") == 1
    path_line = ex.axes[0].get_lines()[0]
    assert len(path_line.get_xdata()) == 101

    ex.set_value("learning_rate", 0.3)
    assert "diverged" in ex.status.value and "left the map" in ex.status.value
    assert len(ex.axes[0].get_lines()[0].get_xdata()) < 101

    ex.set_value("learning_rate", 0.1995)
    assert "zig-zag, too slow" in ex.status.value and ex.axes[0].get_title() == "path: zig-zag, too slow"
    ex.set_value("curvature", 5.0)  # a gentler valley takes the same learning rate calmly
    assert ex.result.behaviour == "smooth, converged" and "2/5 = 0.4" in ex.status.value


def test_figures_fit_beside_the_controls(digits):
    """At most FIGURE_WIDTH inches wide, so the ~590 px beside the controls on a 1366x768 screen show the text
    at a readable size; the loss explorer's third panel goes to a second row."""
    built = {
        "architecture": explorers.architecture_explorer(digits, render=False),
        "loss": explorers.loss_explorer(render=False),
        "descent": explorers.descent_explorer(render=False),
    }
    for name, explorer in built.items():
        assert explorer.figure.get_size_inches()[0] <= widgets.FIGURE_WIDTH, name
    loss = built["loss"]
    loss.refresh()
    tops = sorted({round(ax.get_position().y1, 2) for ax in loss.axes})
    assert len(tops) == 2 and loss.axes[2].get_position().width > 1.8 * loss.axes[0].get_position().width
