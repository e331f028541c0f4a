"""ipywidgets dashboards for the lessons: controls on the left, live figure on the right, a status line.

Every callback is a plain method (``on_change``, ``on_train``, ``on_stop``,
``train``, ``refresh``), so tests drive a dashboard without a browser.
Sliders report only when released (``continuous_update=False``): one drag, one
run. A keyboard arrow press reports at once, so several can come in during one
run. The figure is a matplotlib ``Figure`` (not pyplot, so nothing piles up)
rendered to PNG into an ``Image`` widget, which redraws in place. Its panels sit
at most two to a row and the figure is at most ``FIGURE_WIDTH`` inches wide, so
its text stays readable in the ~600 pixels beside the controls on a 1366x768
laptop screen.

How a ``TrainingDashboard`` runs. In a notebook (``threaded=True``) a change
starts one background thread that trains and redraws while the kernel stays free
to hear the next slider move and the Stop button. During a run only that thread
draws (into the dashboard's own Figure, rendered to PNG bytes) and it only sets
widget values: nothing is printed and no ``Output`` widget or pyplot state is
touched from it, which is what makes drawing from a thread safe. A change during
a run does not start a second one: the run stops after its current epoch and the
same thread trains once more with the latest values, so any number of presses
costs one more run. No control is ever disabled: disabling the focused slider
hands keyboard focus to the notebook, whose command mode folds headings and hides
cells on the next arrow press. The Stop button lights up (red) while a run goes.
"""

from __future__ import annotations

import dataclasses
import html
import io
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import ipywidgets as widgets
import numpy as np
from flax import nnx
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mlkit.data import Dataset
from mlkit.lessons import plots
from mlkit.train import History, TrainConfig, compiled, fit

if TYPE_CHECKING:
    from typing_extensions import Self

E = TypeVar("E", bound="Explorer")
Panel = Callable[[E, Axes], None]  # panel(explorer, axes) draws one subplot; a subclass's panels take that subclass
_STYLE = {"description_width": "130px"}  # fits "training examples"
# Controls fill the sidebar, which is 440 px wide where the screen has room and gives way first (down to 340 px)
# where it has not, so the figure beside it keeps its size: a slider's track is then 200-300 px, not 100.
_LAYOUT = widgets.Layout(width="calc(100% - 4px)")  # less the 2 px margin each side
SIDEBAR = widgets.Layout(flex="0 20 440px", min_width="340px", max_width="440px")
PANEL_SIZE = (3.6, 2.8)  # inches of one panel; PNGs are drawn at 90 dpi
FIGURE_WIDTH = 2 * PANEL_SIZE[0]  # inches: drawn at 648 px, shown at ~590 beside the controls on a 1366 px screen
_STATUS_STYLE = "font-family:monospace;line-height:1.4;white-space:pre-line"
_WARNING_STYLE = "color:#9a3412;background:#fff7ed;border-left:3px solid #ea580c;padding:2px 6px"
STATUS_EVERY = 0.05  # seconds between two status lines sent mid-run


def log_slider(description: str, value: float, low: float, high: float) -> widgets.FloatLogSlider:
    """A slider over powers of ten (learning rates, weight decay), reporting on release."""
    lo, hi = math.log10(low), math.log10(high)
    return widgets.FloatLogSlider(
        value=value, base=10, min=lo, max=hi, step=0.1, readout_format=".1e", **_released(description)
    )


def int_slider(description: str, value: int, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    """A slider over whole numbers (widths, epochs), reporting on release."""
    return widgets.IntSlider(value=value, min=low, max=high, step=step, **_released(description))


def float_slider(description: str, value: float, low: float, high: float, step: float) -> widgets.FloatSlider:
    """A slider over a range of numbers (dropout, thresholds), reporting on release."""
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, **_released(description))


def _released(description: str) -> dict:
    """What every slider of the lessons shares: a label of the same width, and one report per release."""
    return {"description": description, "continuous_update": False, "style": _STYLE, "layout": _LAYOUT}


def choice_slider(description: str, options: Sequence, value=None) -> widgets.SelectionSlider:
    """A slider over a fixed list of values (batch sizes), reporting on release."""
    first = options[0] if value is None else value
    return widgets.SelectionSlider(options=list(options), value=first, **_released(description))


def dropdown(description: str, options: Sequence, value=None) -> widgets.Dropdown:
    """Options are values, or (label, value) pairs; the first is chosen unless ``value`` says otherwise."""
    if value is None:
        value = options[0][1] if isinstance(options[0], tuple) else options[0]
    return widgets.Dropdown(options=list(options), value=value, description=description, style=_STYLE, layout=_LAYOUT)


def _grid(panels: int, figsize: tuple[float, float] | None) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes, two to a row (an odd last one spans its row).

    ``figsize`` is (width, height) of one row; a width beyond ``FIGURE_WIDTH`` is narrowed to it.
    """
    columns = min(panels, 2) or 1
    rows = -(-panels // columns)
    width, height = figsize or (PANEL_SIZE[0] * columns, PANEL_SIZE[1])
    figure = Figure(figsize=(min(width, FIGURE_WIDTH), height * rows), layout="constrained")
    grid = figure.add_gridspec(rows, columns)
    spans = [grid[i // columns, i % columns] for i in range(panels)]
    if panels % columns:
        spans[-1] = grid[rows - 1, :]
    return figure, [figure.add_subplot(span) for span in spans]


class Explorer:
    """Controls that redraw a figure of ``panels`` whenever a value changes.

    ``figsize`` is (width, height) of one row of panels (two to a row); wider than ``FIGURE_WIDTH`` is narrowed.
    """

    def __init__(
        self,
        controls: dict[str, widgets.ValueWidget],
        panels: Sequence[Panel[Self]],
        *,
        describe: Callable[[Self], str] | None = None,
        title: str = "",
        figsize: tuple[float, float] | None = None,
        render: bool = True,
    ):
        self.controls = dict(controls)
        self.panels: list[Panel[Self]] = list(panels)
        self.describe: Callable[[Self], str] = describe or (lambda explorer: "")
        self.render = render  # False: draw the figure but skip the PNG (headless runs)
        self.figure, self.axes = _grid(len(self.panels), figsize)
        # Shrinks to the space beside the controls (min_width 0) and keeps its aspect ratio (height auto,
        # align_self: not stretched to the height of the controls).
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(max_width="100%", min_width="0", height="auto", align_self="flex-start")
        )
        self.status = widgets.HTML(layout=_LAYOUT)
        self.title = widgets.HTML(f"<b>{html.escape(title)}</b>") if title else None
        self.redraws = 0
        self._status_text = ""
        # JupyterLab may deliver widget messages on two kernel threads (the main one and a comm subshell):
        # one drawing at a time, or two redraws on the one Figure leave it blank
        self._drawing = threading.RLock()
        for control in self.controls.values():
            control.observe(self.on_change, names="value")

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def on_change(self, change=None) -> None:
        """Called by a control when its value changes (on release for sliders)."""
        self.refresh()

    def refresh(self: Self) -> None:
        with self._drawing:
            self.redraw()
            self.show_status(self.describe(self))

    def set_value(self, name: str, value) -> object:
        """Do what a learner does: set one control as if it were moved, and wait for the result.

        Returns None here; a subclass may return what the change produced (TrainingDashboard: the run's History).
        """
        if self.controls[name].value == value:
            self.on_change()
        else:
            self.controls[name].value = value
        return None

    def redraw(self: Self) -> None:
        with self._drawing:
            for ax, panel in zip(self.axes, self.panels, strict=True):
                ax.clear()
                panel(self, ax)
                plots.readable(ax)  # plain tick labels, no more than fit (see plots.readable)
            if self.render:
                buffer = io.BytesIO()
                self.figure.savefig(buffer, format="png", dpi=90)
                self.image.value = buffer.getvalue()
            else:
                self.figure.canvas.draw()
            self.redraws += 1

    @property
    def status_text(self) -> str:
        """The status line as plain text (what the learner reads)."""
        return self._status_text

    def show_status(self, text: str, error: bool = False, warning: bool = False) -> None:
        """Show ``text``: plain, in red (``error``: the run failed) or in a warning box (``warning``: a bad run)."""
        self._status_text = text
        kind, style = ("error", "color:crimson") if error else ("warning", _WARNING_STYLE) if warning else ("plain", "")
        self.status.value = (
            f"<div class='mlkit-status mlkit-{kind}' style='{_STATUS_STYLE};{style}'>{html.escape(text)}</div>"
        )

    def sidebar(self) -> list[widgets.Widget]:
        return [w for w in (self.title, *self.controls.values()) if w is not None] + [self.status]

    @property
    def widget(self) -> widgets.Widget:
        return widgets.HBox([widgets.VBox(self.sidebar(), layout=SIDEBAR), self.image])

    def _ipython_display_(self):
        if not self.redraws:
            self.refresh()
        display(self.widget)


_TRAINED_SHAPES: set[tuple] = set()  # shape signatures dashboards of this process have trained (and so compiled)
NEAR_CHANCE = 1.5  # a classifier below 1.5x chance accuracy (at most halfway to 100%) has learned little


class TrainingDashboard(Explorer):
    """Sliders for data, model and hyperparameters; Train and Stop buttons; curves redrawn per epoch.

    ``data`` is a Dataset or a function of the control values that makes one
    (re-made only when a control named in ``data_keys`` changes); ``model_fn(data,
    values)`` builds a fresh model for each run (it is also called under
    ``nnx.eval_shape``, to learn before building whether the run compiles). Controls
    named like ``TrainConfig`` fields (learning_rate, epochs, ...) override ``config``.
    With ``threaded=True`` (for JupyterLab) training runs in a background thread so
    the next change and the Stop button are heard (see the module docstring);
    ``train()`` and ``set_value()`` always wait for the result.

    A bad run (diverged, or accuracy near chance) ends in a warning box that says
    what to try; the text is in ``warning`` ("" after a good run).
    """

    def __init__(
        self,
        data: Dataset | Callable[[dict], Dataset],
        model_fn: Callable[[Dataset, dict], nnx.Module],
        config: TrainConfig,
        controls: dict[str, widgets.ValueWidget],
        panels: Sequence[Panel[Self]] = (),
        *,
        data_keys: Sequence[str] = (),
        threaded: bool = True,
        redraw_every: float = 0.15,
        **kwargs,
    ):
        super().__init__(controls, panels or (loss_panel, accuracy_panel), **kwargs)
        self.data_fn = data if callable(data) else (lambda values: data)
        self.data_keys = tuple(data_keys)
        self.model_fn = model_fn
        self.config = config.replace(progress=False)
        self.threaded = threaded
        self.redraw_every = redraw_every
        self.train_button = widgets.Button(description="Train", icon="play", button_style="primary")
        self.stop_button = widgets.Button(description="Stop", icon="stop", tooltip="Stop after this epoch, keep it")
        self.train_button.on_click(self.on_train)
        self.stop_button.on_click(self.on_stop)
        self.history: History | None = None
        self.model: nnx.Module | None = None
        self.data: Dataset | None = None
        self.warning = ""
        self.training = False  # a run is going (or about to start)
        self._lock = threading.Lock()  # guards `training` between the kernel's thread and the training thread
        self._running: dict = {}  # the values the current run trains with
        self._data_key: tuple | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_draw = self._last_status = 0.0
        self._draw_seconds = 0.0
        self._started = 0.0

    def on_change(self, change=None) -> None:
        with self._lock:
            self._stop = False  # a move after Stop asks for a run of the new value
        self.start()

    def on_train(self, button=None) -> None:
        self.start()

    def on_stop(self, button=None) -> None:
        """Stop the run after its current epoch (the model keeps that epoch) and train nothing more."""
        with self._lock:
            self._stop = self.training  # pressed between runs: nothing to stop

    def start(self) -> None:
        """Train with the current values: now, or in a background thread when ``threaded``.

        During a run this does nothing: the run sees after its current epoch that the values
        changed, stops, and one more run trains the latest values, however many changes came in.
        """
        with self._lock:
            if self.training:
                return
            self.training = True
            self._busy(True)
        if self.threaded:
            self._thread = threading.Thread(target=self._train_until_current, daemon=True)
            self._thread.start()
        else:
            self._train_until_current()

    def wait(self) -> None:
        """Wait until no run is going (the thread has trained the latest values)."""
        if self._thread is not None:
            self._thread.join()

    def train(self) -> History | None:
        """One full run with the current control values (during a run: wait for it); returns its history."""
        self.start()
        self.wait()
        return self.history

    def set_value(self, name: str, value) -> History | None:
        super().set_value(name, value)
        self.wait()
        return self.history

    def refresh(self) -> None:
        if self.history is None:
            self.train()
        else:
            super().refresh()

    def _train_until_current(self) -> None:
        """Run until a run has trained the values the controls hold now, or Stop was pressed."""
        try:
            while True:
                trained = self._run()
                with self._lock:  # checked and cleared together: a change after this starts a new thread
                    if self._stop or self.values == trained:
                        self._idle()
                        return
        except BaseException:
            with self._lock:
                self._idle()
            raise

    def _idle(self) -> None:
        self.training = self._stop = False  # a Stop applies to the run it was pressed in only
        self._busy(False)

    def _run(self: Self) -> dict:
        """One run with the current values, drawn as it goes; returns the values it trained."""
        values = self._running = self.values
        self._started = time.perf_counter()
        self._last_draw = self._last_status = 0.0  # the first epoch of every run is drawn and shown
        try:
            data = self._dataset(values)
            fields = {f.name for f in dataclasses.fields(TrainConfig)}
            config = self.config.replace(**{k: v for k, v in values.items() if k in fields})
            shapes = self._shapes(data, values, config)
            if shapes not in _TRAINED_SHAPES:
                self.show_status(
                    "compiling… (a new width, depth, batch size or data size: its first run compiles, a few seconds)"
                )
            self.model = self.model_fn(data, values)
            history = fit(self.model, data, config, callbacks=[self._after_epoch])
        except ValueError as e:
            self.show_status(f"error: {e}", error=True)
            return values
        _TRAINED_SHAPES.add(shapes)
        self.history = history
        if not self._stop and self.values != values:
            return values  # a newer setting trains next: skip drawing this one's end
        self.warning = run_warning(history, data, config.learning_rate)
        self.redraw()  # the final figure and status
        text = self.describe(self) or self._progress(history, config.epochs, final=True)
        self.show_status(f"{text}\n{self.warning}" if self.warning else text, warning=bool(self.warning))
        return values

    def _dataset(self, values: dict) -> Dataset:
        key = tuple(values[k] for k in self.data_keys)
        if self.data is None or key != self._data_key:
            self.data, self._data_key = self.data_fn(values), key
        return self.data

    def _shapes(self, data: Dataset, values: dict, config: TrainConfig) -> tuple:
        """What decides whether ``fit`` compiles: the model's structure and shapes, the data's, the static config."""
        graphdef, state = nnx.split(nnx.eval_shape(lambda: self.model_fn(data, values)))
        arrays = (state, data.train.x, data.train.y, data.val.x, data.val.y)
        return graphdef, compiled.signature(arrays), data.task, config.optimizer, config.batch_size, config.shuffle

    def _after_epoch(self, history: History) -> bool:
        self.history = history
        start = time.perf_counter()
        # Redraw mid-run at most every `redraw_every` seconds, and never spend more than a quarter
        # of the time drawing: a slow machine then draws less often instead of training slower.
        if start - self._last_draw >= max(self.redraw_every, 3 * self._draw_seconds):
            self.redraw()
            self._last_draw = time.perf_counter()
            self._draw_seconds = self._last_draw - start
        # The status line is sent to the browser at most 20 times a second: a small model can finish
        # thousands of epochs a second, and a message each would pass Jupyter's IOPub rate limit, which
        # then drops the outputs of the cells that follow (a Run All showed no later dashboard).
        text = self._progress(history, self._running.get("epochs", self.config.epochs))
        if start - self._last_status >= STATUS_EVERY:
            self.show_status(text)
            self._last_status = start
        else:
            self._status_text = text
        return not (self._stop or self.values != self._running)  # a change: stop here, train the new values

    def _progress(self, history: History, epochs: int, final: bool = False) -> str:
        if not history.epochs:
            return "no epoch kept"
        text = (
            f"epoch {history.epochs}/{epochs} · loss {history.train_loss[-1]:.4f} · val loss {history.val_loss[-1]:.4f}"
        )
        if not math.isnan(history.val_acc[-1]):
            text += f" · val acc {history.val_acc[-1]:.1%}"
        text += f" · {time.perf_counter() - self._started:.1f} s"
        if final and history.status == "stopped":
            text += f" · stopped by you after epoch {history.epochs}"
        elif final and history.status not in ("completed", "diverged", "learned_nothing"):  # those: the warning
            text += f" · {history.status}: {history.message}"
        return text

    def _busy(self, busy: bool) -> None:
        """Show that a run is going on the Stop button. Nothing is disabled: see the module docstring."""
        self.stop_button.button_style = "danger" if busy else ""

    def sidebar(self) -> list[widgets.Widget]:
        *controls, status = super().sidebar()
        return [*controls, widgets.HBox([self.train_button, self.stop_button]), status]


def run_warning(history: History, data: Dataset, learning_rate: float) -> str:
    """Why a finished run is bad and what to try, or "" for a good run.

    Bad: ``fit`` says it diverged, or a classifier's last validation accuracy is near chance
    (below ``NEAR_CHANCE`` times the share of the commonest class, and below halfway from that
    share to 100%). A diverged classifier that kept a fair accuracy is also told why a loss far
    above a blind guess's can sit beside it.
    """
    classifier = data.task == "classification"
    guess = math.log(data.num_classes) if classifier else math.nan  # the loss of a uniform guess
    chance = float(np.bincount(data.val.y).max() / len(data.val)) if classifier else math.nan
    near_chance = bool(history.epochs) and history.val_acc[-1] < min(NEAR_CHANCE * chance, (1 + chance) / 2)
    lines = []
    if history.status == "diverged":
        lines.append(history.message)
        if classifier and history.epochs and not near_chance:
            lines.append(
                f"Why a huge loss can sit beside a fair accuracy: cross-entropy is -log of the probability given "
                f"to the true class, so a confident mistake costs without limit (a blind guess costs ln "
                f"{data.num_classes} = {guess:.2f}); accuracy only counts whether the top class is right."
            )
    elif classifier and near_chance:
        accuracy = history.val_acc[-1]
        lines.append(
            f"Validation accuracy {accuracy:.1%} is below chance ({chance:.0%}, always answering the commonest "
            f"class): the model answers worse than a blind guess."
            if accuracy < chance
            else f"Validation accuracy {accuracy:.1%} is not far above chance ({chance:.0%}, always answering the "
            f"commonest class): the model has learned little."
        )
        losses = history.train_loss  # rose from one epoch to the next, or began far above a blind guess's loss
        if losses[0] > 2 * guess or any(b > 1.1 * a for a, b in itertools.pairwise(losses)):
            lines.append(
                f"The training loss rose or jumped about: try a lower learning rate than {learning_rate:g}, "
                f"e.g. {learning_rate / 10:g}."
            )
        else:
            lines.append(
                "The training loss barely fell: try a higher learning rate, more epochs, a wider or deeper "
                "network, or less weight decay or dropout."
            )
    return "\n".join(lines)


def loss_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    if dashboard.history is not None:
        plots.curves(dashboard.history, "loss", ax=ax)


def accuracy_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    if dashboard.history is not None:
        plots.curves(dashboard.history, "acc", ax=ax)


def boundary_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    if dashboard.model is not None:
        plots.decision_boundary(dashboard.model, dashboard.data, ax=ax)
