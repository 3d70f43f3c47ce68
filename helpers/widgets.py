"""Explorers: sliders over pure figure functions (introduced in notebook 00_start_here).

An explorer is deliberately thin. All the science lives in a pure function
``make_figure(**params) -> matplotlib Figure``, which tests call directly. The
explorer only

1. builds one control per parameter,
2. redraws the figure into an ``Output`` widget whenever a control changes, and
3. carries a PNG of the figure in its display bundle, so that renderers without a
   live kernel (GitHub, nbconvert HTML) still show the default state.

The figure is written into the Output widget's ``outputs`` rather than displayed
inside it: that keeps notebook outputs identical under nbval, with no markers.

:class:`TextExplorer` is the same for a function that returns ``(text, figure)``: the text (a
model's sample, notebook 09) is shown as text, above the figure.

A control set to a value the figure cannot use (a float slider set to NaN from code, or a
figure function that fails on some input) never raises inside the widget's observer, where
the error would vanish into a log: the explorer keeps the last good figure and writes a
sentence above it saying what was wrong (``explorer.message``).
"""

import base64
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt

from helpers import plots


# Every control's label gets the same width, so the controls of an explorer line up one under
# another; wide enough for the course's longest label ("checkpoint (0 = after 100 steps)").
LABEL_STYLE = {"description_width": "16em"}
CONTROL_WIDTH = "36em"   # label and control together


def slider(value, min, max, step=None, description="", log=False, readout_format=None):
    """A labelled slider: ``FloatSlider`` (or ``FloatLogSlider`` when ``log``), or ``IntSlider`` for ints."""
    style = LABEL_STYLE
    layout = widgets.Layout(width=CONTROL_WIDTH)
    if log:
        import math

        return widgets.FloatLogSlider(value=value, base=10, min=math.log10(min), max=math.log10(max),
                                      step=step or 0.1, description=description, style=style, layout=layout,
                                      continuous_update=False, readout_format=readout_format or ".3g")
    if all(isinstance(v, int) for v in (value, min, max)) and (step is None or isinstance(step, int)):
        return widgets.IntSlider(value=value, min=min, max=max, step=step or 1, description=description,
                                 style=style, layout=layout, continuous_update=False)
    return widgets.FloatSlider(value=value, min=min, max=max, step=step or (max - min) / 100,
                               description=description, style=style, layout=layout,
                               continuous_update=False, readout_format=readout_format or ".2f")


def text_box(value: str = "", description: str = ""):
    """A one-line text input that updates when you press Enter or leave the box."""
    return widgets.Text(value=value, description=description, continuous_update=False,
                        style=LABEL_STYLE, layout=widgets.Layout(width="48em"))


def choice(value: str, options, description: str = ""):
    """A drop-down list: ``.value`` is the chosen one of ``options``."""
    return widgets.Dropdown(value=value, options=list(options), description=description,
                            style=LABEL_STYLE, layout=widgets.Layout(width=CONTROL_WIDTH))


def toggle(value: bool, description: str = ""):
    """An on/off check box (``.value`` is ``True`` or ``False``)."""
    return widgets.Checkbox(value=value, description=description, indent=False)


def not_a_number(params: dict):
    """A sentence naming the first float value of ``params`` that is NaN or infinite, or None.
    (A slider clamps infinity to its end; NaN it lets through.)"""
    for name, value in params.items():
        if isinstance(value, float) and math.isnan(value):
            return f"{name} = nan is not a number"
        if isinstance(value, float) and math.isinf(value):
            return f"{name} = {value} is not a finite number"
    return None


class Explorer:
    """Redraw ``make_figure(**values)`` whenever one of ``controls`` changes.

    ``controls`` maps each keyword argument of ``make_figure`` to a widget with a
    ``.value``. Setting a control's value (by hand or in a test) redraws at once.
    ``explorer.png`` holds the PNG bytes of the figure now shown; ``explorer.message`` is
    ``""``, or the sentence shown above it when the values could not be drawn.
    """

    def __init__(self, make_figure, controls: dict, title: str = ""):
        self.make_figure = make_figure
        self.controls = dict(controls)
        self.title = title
        self.output = widgets.Output()
        self.png = b""
        self.message = ""
        for control in self.controls.values():
            control.observe(self._redraw, names="value")
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(header + [widgets.VBox(list(self.controls.values())), self.output])
        self._redraw()

    @property
    def params(self) -> dict:
        """The current value of every control, by parameter name."""
        return {name: control.value for name, control in self.controls.items()}

    def _draw(self) -> bytes:
        """The PNG of ``make_figure`` at the current values."""
        fig = self.make_figure(**self.params)
        try:
            return plots.to_png(fig)
        finally:
            plt.close(fig)

    def _redraw(self, change=None) -> None:
        """Show the figure for the current values. The first drawing (``change`` is None) may
        raise: the explorer is being built wrongly. Later ones, run by the widgets, never do:
        they show the last good figure under a sentence saying what went wrong."""
        problem = not_a_number(self.params)
        if problem is not None and change is None:
            raise ValueError(f"cannot draw the first figure: {problem}")
        if problem is None:
            try:
                self.png = self._draw()
            except Exception as exc:
                if change is None:
                    raise
                problem = f"these values cannot be drawn ({type(exc).__name__}: {exc})"
        self.message = "" if problem is None else f"{problem}; showing the figure of the last values that worked."
        figure = {
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": "<Figure>"},
            "metadata": {},
        }
        note = {"output_type": "stream", "name": "stderr", "text": self.message + "\n"}
        self.output.outputs = (note, figure) if self.message else (figure,)

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data)
        # The PNG is the static fallback; the short text keeps nbval comparisons stable.
        data["image/png"] = base64.b64encode(self.png).decode("ascii")
        names = ", ".join(self.controls)
        data["text/plain"] = f"Explorer{': ' + self.title if self.title else ''} (controls: {names})"
        return data


class TextExplorer(Explorer):
    """An :class:`Explorer` whose function returns ``(text, figure)``: the text is shown as text
    (selectable, copyable), above the figure. Notebook 09 shows a model's sample this way, next to
    the distribution it was drawn from. ``explorer.text`` holds the text now shown."""

    def __init__(self, make_text_and_figure, controls: dict, title: str = ""):
        self.text = ""
        super().__init__(make_text_and_figure, controls, title)

    def _draw(self) -> bytes:
        text, fig = self.make_figure(**self.params)
        try:
            png = plots.to_png(fig)
        finally:
            plt.close(fig)
        self.text = str(text)
        return png

    def _redraw(self, change=None) -> None:
        super()._redraw(change)
        shown = {"output_type": "stream", "name": "stdout", "text": self.text + "\n"}
        self.output.outputs = (shown, *self.output.outputs)
