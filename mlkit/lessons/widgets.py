"""ipywidgets dashboards for the lessons: controls on the left, live figure on the right, a status line.

Every callback is a plain method (``on_change``, ``on_train``, ``on_stop``,
``train``, ``refresh``), so tests drive a dashboard without a browser.
Sliders report only when released (``continuous_update=False``): one drag, one
training run. The figure is a matplotlib ``Figure`` (not pyplot, so nothing
piles up) rendered to PNG into an ``Image`` widget, which redraws in place.
"""

from __future__ import annotations

import dataclasses
import html
import io
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import ipywidgets as widgets
from flax import nnx
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mlkit.data import Dataset
from mlkit.lessons import plots
from mlkit.train import History, TrainConfig, fit

if TYPE_CHECKING:
    from typing_extensions import Self

E = TypeVar("E", bound="Explorer")
Panel = Callable[[E, Axes], None]  # panel(explorer, axes) draws one subplot; a subclass's panels take that subclass
_STYLE = {"description_width": "130px"}  # fits "training examples"
_LAYOUT = widgets.Layout(width="330px")


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


class Explorer:
    """Controls that redraw a figure of ``panels`` whenever a value changes."""

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
        self.figure = Figure(figsize=figsize or (4.3 * len(self.panels), 3.3), layout="constrained")
        self.axes: list[Axes] = list(self.figure.subplots(1, len(self.panels), squeeze=False)[0])
        # Shrinks to the space beside the controls (min_width 0) and keeps its aspect ratio (height auto,
        # align_self: not stretched to the height of the controls).
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(max_width="100%", min_width="0", height="auto", align_self="flex-start")
        )
        self.status = widgets.HTML(layout=widgets.Layout(width="330px"))
        self.title = widgets.HTML(f"<b>{html.escape(title)}</b>") if title else None
        self.redraws = 0
        self._status_text = ""
        for control in self.controls.values():
            control.observe(self.on_change, names="value")

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def on_change(self, change=None) -> None:
        """Called by a control when its value changes (on release for sliders)."""
        self.refresh()

    def refresh(self: Self) -> None:
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
        for ax, panel in zip(self.axes, self.panels, strict=True):
            ax.clear()
            panel(self, ax)
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

    def show_status(self, text: str, error: bool = False) -> None:
        self._status_text = text
        colour = "crimson" if error else "inherit"
        self.status.value = (
            f"<div style='color:{colour};font-family:monospace;line-height:1.4'>{html.escape(text)}</div>"
        )

    def sidebar(self) -> list[widgets.Widget]:
        return [w for w in (self.title, *self.controls.values()) if w is not None] + [self.status]

    @property
    def widget(self) -> widgets.Widget:
        return widgets.HBox(
            [widgets.VBox(self.sidebar(), layout=widgets.Layout(min_width="340px", flex="0 0 auto")), self.image]
        )

    def _ipython_display_(self):
        if not self.redraws:
            self.refresh()
        display(self.widget)


class TrainingDashboard(Explorer):
    """Sliders for data, model and hyperparameters; Train and Stop buttons; curves redrawn per epoch.

    ``data`` is a Dataset or a function of the control values that makes one
    (re-made only when a control named in ``data_keys`` changes); ``model_fn(data,
    values)`` builds a fresh model for each run. Controls named like ``TrainConfig``
    fields (learning_rate, epochs, ...) override ``config``. With ``threaded=True``
    (for JupyterLab) training runs in a background thread so the Stop button is
    heard; ``train()`` itself always runs to the end before returning.
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
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.train_button.on_click(self.on_train)
        self.stop_button.on_click(self.on_stop)
        self.history: History | None = None
        self.model: nnx.Module | None = None
        self.data: Dataset | None = None
        self.training = False
        self._data_key: tuple | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_draw = 0.0
        self._draw_seconds = 0.0
        self._started = 0.0

    def on_change(self, change=None) -> None:
        self.start()

    def on_train(self, button=None) -> None:
        self.start()

    def on_stop(self, button=None) -> None:
        """Ask the run to stop after the current epoch; the model keeps that epoch."""
        self._stop = True

    def start(self) -> None:
        """Train now (or in a background thread when ``threaded``); ignored while a run is going."""
        if self.training:
            return
        if self.threaded:
            self.training = True  # claimed before the thread starts, so a second click can't start another
            self._thread = threading.Thread(target=self.train, daemon=True)
            self._thread.start()
        else:
            self.train()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def set_value(self, name: str, value) -> History | None:
        super().set_value(name, value)
        self.wait()
        return self.history

    def refresh(self) -> None:
        if self.history is None:
            self.train()
        else:
            super().refresh()

    def train(self: Self) -> History | None:
        """One full run with the current control values; returns its history."""
        values = self.values
        self._busy(True)
        self._started = time.perf_counter()
        self._last_draw = 0.0  # the first epoch of every run is drawn
        try:
            self.data = self._dataset(values)
            self.model = self.model_fn(self.data, values)
            fields = {f.name for f in dataclasses.fields(TrainConfig)}
            config = self.config.replace(**{k: v for k, v in values.items() if k in fields})
            self.history = fit(self.model, self.data, config, callbacks=[self._after_epoch])
            self.redraw()  # the final figure and status, before the controls come back
            self.show_status(
                self.describe(self) or self._progress(self.history, config.epochs, final=True),
                error=self.history.status == "diverged",
            )
        except ValueError as e:
            self.show_status(f"error: {e}", error=True)
        finally:
            self._stop = False  # a Stop pressed before or during this run applied to this run only
            self._busy(False)
        return self.history

    def _dataset(self, values: dict) -> Dataset:
        key = tuple(values[k] for k in self.data_keys)
        if self.data is None or key != self._data_key:
            self.data, self._data_key = self.data_fn(values), key
        return self.data

    def _after_epoch(self, history: History) -> bool:
        self.history = history
        start = time.perf_counter()
        # Redraw mid-run at most every `redraw_every` seconds, and never spend more than a quarter
        # of the time drawing: a slow machine then draws less often instead of training slower.
        if start - self._last_draw >= max(self.redraw_every, 3 * self._draw_seconds):
            self.redraw()
            self._last_draw = time.perf_counter()
            self._draw_seconds = self._last_draw - start
        self.show_status(self._progress(history, self.values.get("epochs", self.config.epochs)))
        return not self._stop

    def _progress(self, history: History, epochs: int, final: bool = False) -> str:
        if not history.epochs:
            return history.message or "no epoch finished"
        text = (
            f"epoch {history.epochs}/{epochs} · loss {history.train_loss[-1]:.4f} · val loss {history.val_loss[-1]:.4f}"
        )
        if not math.isnan(history.val_acc[-1]):
            text += f" · val acc {history.val_acc[-1]:.1%}"
        text += f" · {time.perf_counter() - self._started:.1f} s"
        if final and history.status == "stopped":
            text += f" · stopped by you after epoch {history.epochs}"
        elif final and history.status != "completed":
            text += f" · {history.status}: {history.message}"
        return text

    def _busy(self, busy: bool) -> None:
        self.training = busy
        for control in (*self.controls.values(), self.train_button):
            control.disabled = busy
        self.stop_button.disabled = not busy

    def sidebar(self) -> list[widgets.Widget]:
        *controls, status = super().sidebar()
        return [*controls, widgets.HBox([self.train_button, self.stop_button]), status]


def loss_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    if dashboard.history is not None:
        plots.curves(dashboard.history, "loss", ax=ax)


def accuracy_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    if dashboard.history is not None:
        plots.curves(dashboard.history, "acc", ax=ax)


def boundary_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    if dashboard.model is not None:
        plots.decision_boundary(dashboard.model, dashboard.data, ax=ax)
