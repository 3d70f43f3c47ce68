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
"""

import base64

import ipywidgets as widgets
import matplotlib.pyplot as plt

from helpers import plots


def slider(value, min, max, step=None, description="", log=False, readout_format=None):
    """A labelled slider: ``FloatSlider`` (or ``FloatLogSlider`` when ``log``), or ``IntSlider`` for ints."""
    style = {"description_width": "initial"}
    layout = widgets.Layout(width="360px")
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
                        style={"description_width": "initial"}, layout=widgets.Layout(width="560px"))


def choice(value: str, options, description: str = ""):
    """A drop-down list: ``.value`` is the chosen one of ``options``."""
    return widgets.Dropdown(value=value, options=list(options), description=description,
                            style={"description_width": "initial"}, layout=widgets.Layout(width="360px"))


def toggle(value: bool, description: str = ""):
    """An on/off check box (``.value`` is ``True`` or ``False``)."""
    return widgets.Checkbox(value=value, description=description, indent=False)


class Explorer:
    """Redraw ``make_figure(**values)`` whenever one of ``controls`` changes.

    ``controls`` maps each keyword argument of ``make_figure`` to a widget with a
    ``.value``. Setting a control's value (by hand or in a test) redraws at once.
    ``explorer.png`` holds the PNG bytes of the figure now shown.
    """

    def __init__(self, make_figure, controls: dict, title: str = ""):
        self.make_figure = make_figure
        self.controls = dict(controls)
        self.title = title
        self.output = widgets.Output()
        self.png = b""
        for control in self.controls.values():
            control.observe(self._redraw, names="value")
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(header + [widgets.VBox(list(self.controls.values())), self.output])
        self._redraw()

    @property
    def params(self) -> dict:
        """The current value of every control, by parameter name."""
        return {name: control.value for name, control in self.controls.items()}

    def _redraw(self, change=None) -> None:
        fig = self.make_figure(**self.params)
        self.png = plots.to_png(fig)
        plt.close(fig)
        self.output.outputs = (
            {
                "output_type": "display_data",
                "data": {"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": "<Figure>"},
                "metadata": {},
            },
        )

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data)
        # The PNG is the static fallback; the short text keeps nbval comparisons stable.
        data["image/png"] = base64.b64encode(self.png).decode("ascii")
        names = ", ".join(self.controls)
        data["text/plain"] = f"Explorer{': ' + self.title if self.title else ''} (controls: {names})"
        return data
