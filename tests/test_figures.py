"""Figures that read right: plain and distinct tick labels that do not overlap, titles instead of
file names, labelled heat maps with a colour bar, and text large enough to read.

Each test draws a figure off-screen (Agg, see conftest.py) and inspects what it would show.
"""

import json
import re
import weakref

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pytest
import torch

from helpers import attention, data, experiments, gpt, language_model, plots, tokenizers
from helpers.paths import data_path

LINE = "KING RICHARD:\nWhat news, cousin?"          # notebook 07's line: 32 characters
MIN_FONTSIZE = 9                                   # points: 10 pixels at the course's 80 dpi


@pytest.fixture(scope="module")
def sweeps():
    return json.loads(data_path("sweeps.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def small():
    """A 1-layer, 4-head model with notebook 07's shape (untrained: the figures, not the weights, are tested)."""
    torch.manual_seed(0)
    tok = tokenizers.CharTokenizer(LINE)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=4, n_embd=32))
    return model, tok


def drawn(fig):
    """The renderer of ``fig``, drawn once, as a notebook draws it (constrained layout can shift
    things a little at every further draw)."""
    if fig not in _DRAWN:
        fig.canvas.draw()
        _DRAWN.add(fig)
    return fig.canvas.get_renderer()


_DRAWN = weakref.WeakSet()


def shown_tick_labels(axis):
    """``[(text, window extent)]`` of the tick labels ``axis`` shows: non-empty and inside its view."""
    renderer = drawn(axis.figure)
    lo, hi = sorted(axis.get_view_interval())
    slack = 1e-9 * max(abs(lo), abs(hi), 1.0)
    where = 0 if axis.axis_name == "x" else 1
    labels = [label for label in axis.get_ticklabels(which="both")
              if label.get_visible() and label.get_text() and lo - slack <= label.get_position()[where] <= hi + slack]
    labels.sort(key=lambda label: label.get_position()[where])
    return [(label.get_text(), label.get_window_extent(renderer)) for label in labels]


def assert_readable_ticks(axis, at_least=2, distinct=True):
    """At least ``at_least`` tick labels, none overlapping another, and (``distinct``) all different."""
    labels = shown_tick_labels(axis)
    texts = [text for text, _ in labels]
    assert len(texts) >= at_least, f"{axis.axis_name} axis shows {texts}"
    if distinct:
        assert len(set(texts)) == len(texts), f"repeated tick labels on the {axis.axis_name} axis: {texts}"
    boxes = [box for _, box in labels]
    for i, (a, b) in enumerate(zip(boxes, boxes[1:])):
        # neighbours along the axis (the labels are in tick order) must not overlap
        assert not a.overlaps(b), f"{texts[i]!r} overlaps {texts[i + 1]!r} on the {axis.axis_name} axis"
    return texts


def assert_inside_figure(fig):
    """Every title and axis label is drawn inside the figure (none cut off at an edge)."""
    renderer = drawn(fig)
    width, height = fig.canvas.get_width_height()
    for ax in fig.axes:
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if text.get_text() and text.get_visible():
                box = text.get_window_extent(renderer)
                assert box.x0 >= -1 and box.x1 <= width + 1 and box.y0 >= -1 and box.y1 <= height + 1, \
                    f"{text.get_text()!r} is cut off at the figure's edge"


# --- notebook 10: the log-log plots --------------------------------------------------------

def size_plot(runs):
    """Notebook 10's model-size figure, drawn as the notebook draws it."""
    names = ["size-1x32", "baseline", "size-3x96", "size-4x128"]
    params = np.array([runs[n]["parameters"] for n in names])
    loss = np.array([runs[n]["final"]["validation"] for n in names])
    a, b = experiments.fit_power_law(params, loss)
    fig, ax = plots.new_figure(height=3.6)
    ax.loglog(params, loss, "o", label="held-out loss after 1,200 steps")
    grid = np.logspace(np.log10(params[0]), np.log10(params[-1]), 50)
    ax.loglog(grid, a * grid ** b, "--", label=f"fit: {a:.2f} x N^{b:.3f}")
    plots.plain_log_ticks(ax)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("held-out loss (nats per character)")
    ax.legend(fontsize=8)
    return fig, ax


def data_plot(runs):
    """Notebook 10's amount-of-data figure, drawn as the notebook draws it."""
    names = ["fraction-1/256", "fraction-1/64", "fraction-1/16", "fraction-1/4", "baseline"]
    sizes = np.array([runs[n]["train_characters"] for n in names])
    loss = np.array([runs[n]["final"]["validation"] for n in names])
    fig, ax = plots.new_figure(height=3.6)
    ax.loglog(sizes, loss, "o-")
    ax.axvline(runs["baseline"]["tokens_seen"], color="grey", linestyle=":")
    plots.plain_log_ticks(ax)
    return fig, ax


@pytest.mark.parametrize("make", [size_plot, data_plot])
def test_notebook_10_log_log_ticks_are_plain_distinct_and_apart(sweeps, make):
    fig, ax = make(sweeps["runs"])
    for axis in (ax.xaxis, ax.yaxis):
        texts = assert_readable_ticks(axis, at_least=3)
        assert all(re.fullmatch(r"[\d,]+(\.\d+)?", t) for t in texts), f"not plain numbers: {texts}"
        values = [float(t.replace(",", "")) for t in texts]
        assert values == sorted(values)
        assert all(label.get_text() == "" for label in axis.get_ticklabels(minor=True))
    plt.close(fig)


@pytest.mark.parametrize("x, y", [((1.0, 1e6), (0.5, 0.6)), ((2.0, 9.0), (1e-3, 1e3)), ((15_000, 4e6), (1.98, 2.42)),
                                  ((1e-4, 3e-4), (10.0, 10_000.0))])
def test_plain_log_ticks_for_any_range(x, y):
    fig, ax = plots.new_figure(height=3.6)
    ax.loglog(x, y, "o-")
    plots.plain_log_ticks(ax)
    for axis in (ax.xaxis, ax.yaxis):
        texts = assert_readable_ticks(axis)
        assert len(texts) <= 6 and not any("$" in t or "10^" in t for t in texts)
    plt.close(fig)


def test_plain_log_ticks_leaves_a_linear_axis_alone():
    fig, ax = plots.new_figure()
    ax.plot([1, 2, 3], [10, 100, 1000])
    ax.set_yscale("log")
    before = ax.xaxis.get_major_locator()
    plots.plain_log_ticks(ax)
    assert ax.xaxis.get_major_locator() is before
    plt.close(fig)


# --- notebook 10: a title on every play ---------------------------------------------------

@pytest.mark.parametrize("slug, shown", [
    ("measure-for-measure", "Measure for Measure"),
    ("henry-iv-part-1", "Henry IV Part 1"),
    ("a-midsummer-night-s-dream", "A Midsummer Night's Dream"),
    ("the-comedy-of-errors", "The Comedy of Errors"),
])
def test_title_from_slug(slug, shown):
    assert data.title_from_slug(slug) == shown


def test_every_play_has_a_title():
    titles = {p.slug: p.title for p in data.load_plays()}
    assert titles["measure-for-measure"] == "Measure for Measure" and titles["hamlet"].endswith("Hamlet")


def test_every_play_bar_has_a_title_not_a_slug(sweeps):
    plays = sweeps["plays"]
    fig = plots.make_play_losses(plays, sweeps["play_characters"])
    ax = fig.axes[0]
    labels = [label.get_text() for label in ax.get_xticklabels()]
    assert len(labels) == len(plays) == len(ax.patches)
    slugs = [t for t in labels if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", t) or t in plays]
    assert not slugs, f"labels that are file names: {slugs}"
    assert "Measure for Measure" in labels and "Hamlet" in labels
    assert "20,000 characters" in ax.get_title()
    assert_readable_ticks(ax.xaxis, at_least=len(plays))
    assert all(label.get_fontsize() >= MIN_FONTSIZE for label in ax.get_xticklabels())
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == sorted(heights)                                  # lowest loss first
    unseen = {plays[s]["title"] if plays[s]["title"] != s else data.title_from_slug(s)
              for s in plays if not plays[s]["seen"]}
    assert {labels[i] for i, bar in enumerate(ax.patches)
            if matplotlib.colors.to_hex(bar.get_facecolor()) == plots.CLASS_COLORS[1]} == unseen
    assert_inside_figure(fig)
    plt.close(fig)


# --- notebook 07: attention maps with characters and a colour bar -------------------------

def colourbars(fig):
    """The axes of the colour bars drawn for the images of ``fig`` (each bar once)."""
    bars = [image.colorbar.ax for ax in fig.axes for image in ax.images if image.colorbar is not None]
    return list(dict.fromkeys(bars))


def test_attention_heatmap_labels_characters_visibly_and_adds_a_colour_bar():
    fig, ax = plots.new_figure()
    weights = np.tril(np.ones((5, 5)))
    weights /= weights.sum(axis=1, keepdims=True)
    plots.attention_heatmap(ax, weights, labels="a b\nc", title="toy")
    for axis in (ax.xaxis, ax.yaxis):
        assert [t.get_text() for t in axis.get_ticklabels()] == ["a", "␣", "b", "⏎", "c"]
    (bar,) = colourbars(fig)
    assert bar.get_ylabel() == "attention weight" and bar.get_ylim() == (0.0, 1.0)
    plt.close(fig)


def test_attention_heatmap_without_labels_counts_positions_and_can_share_a_bar():
    fig, (left, right) = plots.new_figure(ncols=2)
    plots.attention_heatmap(left, np.eye(4))
    plots.attention_heatmap(right, np.eye(4), colorbar=False)
    assert len(colourbars(fig)) == 1
    with pytest.raises(ValueError, match="3 labels for 4 positions"):
        plots.attention_heatmap(right, np.eye(4), labels="abc")
    plt.close(fig)


def test_the_four_heads_figure_shows_the_line_and_one_colour_bar(small):
    model, tok = small
    ids = tok.encode(LINE)
    fig = plots.make_attention_heads([attention.head_weights(model, ids, 0, h) for h in range(4)], LINE,
                                     title=f"Attention on {LINE!r}")
    maps = [ax for ax in fig.axes if ax not in colourbars(fig)]
    assert len(maps) == 4 and len(colourbars(fig)) == 1
    assert colourbars(fig)[0].get_ylabel() == "attention weight"
    expected = list(LINE.replace(" ", "␣").replace("\n", "⏎"))
    for h, ax in enumerate(maps):
        assert ax.get_title() == f"head {h}"
        for axis in (ax.xaxis, ax.yaxis):
            assert [t.get_text() for t in axis.get_ticklabels()] == expected
            assert len(assert_readable_ticks(axis, at_least=32, distinct=False)) == 32
    assert_inside_figure(fig)
    plt.close(fig)


def test_the_attention_explorer_labels_both_panels_and_fits(small):
    model, tok = small
    fig = plots.make_attention_explorer(model, tok, LINE, position=20, head=0)
    ax_map, ax_row = fig.axes[0], fig.axes[1]
    assert "most weight" in ax_row.get_title() and len(colourbars(fig)) == 1
    for axis in (ax_map.xaxis, ax_map.yaxis, ax_row.xaxis):
        texts = assert_readable_ticks(axis, at_least=32, distinct=False)
        assert "␣" in texts and "⏎" in texts and "\\n" not in texts and "·" not in texts
    assert_inside_figure(fig)
    plt.close(fig)


# --- one whitespace convention for characters ---------------------------------------------

def test_character_figures_show_space_and_new_line_the_same_way():
    tok, counts, _ = language_model.corpus_bigram()
    fig = plots.make_bigram_table(counts, tok.chars)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[:2] == ["␣", "⏎"]
    plt.close(fig)
    fig = plots.make_sampling_explorer(1.0, 78, "e")                # after 'e', space and new line are likely
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "␣" in labels and "\\n" not in labels
    plt.close(fig)


# --- text large enough to read ------------------------------------------------------------

def figure_makers():
    sweeps = json.loads(data_path("sweeps.json").read_text(encoding="utf-8"))
    genre = json.loads(data_path("finetune_genre.json").read_text(encoding="utf-8"))
    baselines = {"majority class": 0.33, "bag of characters": 0.45}
    return {
        "loss landscape (02)": lambda: plots.make_loss_landscape(),
        "backward step (03)": lambda: plots.make_backward_step(3),
        "training explorer (04)": lambda: plots.make_training_explorer(8, 0.3, 10),
        "bigram table (06)": lambda: plots.make_bigram_table(language_model.corpus_bigram()[1],
                                                              language_model.corpus_bigram()[0].chars),
        "sweep explorer (10)": lambda: plots.make_sweep_explorer(sweeps["runs"], "amount of data", "both"),
        "play losses (10)": lambda: plots.make_play_losses(sweeps["plays"]),
        "fine-tuning explorer (11)": lambda: plots.make_finetune_explorer(genre["runs"], baselines),
        "mask explorer (12)": lambda: plots.make_mask_explorer(plots.MASK_KINDS[3], position=4, seed=1),
        "live loss (09)": live_loss_figure,
    }


def live_loss_figure():
    live = plots.LiveLoss("a run", reference={"bigram": 2.5, "unigram": 3.2})
    live(20, {"step": [10, 20], "train": [3.0, 2.5], "val": [3.1, 2.6]})
    return live.figure()


@pytest.mark.parametrize("name", list(figure_makers()))
def test_no_text_smaller_than_9_points(name):
    fig = figure_makers()[name]()
    drawn(fig)
    small = {(t.get_text(), t.get_fontsize()) for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONTSIZE}
    assert not small, f"text under {MIN_FONTSIZE} pt in {name}: {sorted(small)[:5]}"
    plt.close(fig)


def test_the_fine_tuning_legend_sits_under_the_panels():
    genre = json.loads(data_path("finetune_genre.json").read_text(encoding="utf-8"))
    fig = plots.make_finetune_explorer(genre["runs"], {"majority class": 0.33})
    renderer = drawn(fig)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert all(box.y1 <= ax.get_window_extent(renderer).y0 for ax in fig.axes)
    assert [t.get_text() for t in legend.get_texts()][:4] == list(plots.METHOD_LABELS.values())
    plt.close(fig)


def test_mask_explorer_ticks_do_not_overlap():
    fig = plots.make_mask_explorer(plots.MASK_KINDS[3], position=4, seed=1, text="To be or not")
    for axis in (fig.axes[0].xaxis, fig.axes[0].yaxis):
        assert len(assert_readable_ticks(axis, at_least=24, distinct=False)) == 24
    plt.close(fig)
