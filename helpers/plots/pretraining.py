"""Figures of part 4, pretraining (notebooks 09_pretraining and 10_evaluation_and_data).

The learning-rate schedule and the generation explorer (09); the stored sweeps' learning curves
and the shipped model's loss on every play (10). A live run's plot is ``common.LiveLoss``, and
notebook 10's log-log axes use ``common.plain_log_ticks``.
"""

import matplotlib.pyplot as plt
import numpy as np

from helpers import data
from helpers.plots.common import CLASS_COLORS, new_figure


# ---------------------------------------------------------------- notebook 09: pretraining

def make_schedule(steps: int = 4800, lr: float = 2e-3, min_lr: float = 1e-4, warmup_steps: int = 200):
    """The learning rate at every step: linear warm-up, then cosine decay (``training.learning_rate``)."""
    from helpers import training

    config = training.TrainConfig(steps=steps, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps)
    rates = [training.learning_rate(s, config) for s in range(steps)]
    fig, ax = new_figure(height=3.0)
    ax.plot(rates)
    ax.axvline(warmup_steps, color="grey", linestyle=":", label=f"end of warm-up (step {warmup_steps})")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"warm-up to {lr:g}, cosine decay to {min_lr:g}")
    ax.legend()
    return fig


def make_generation_explorer(models: dict, tokenizer, temperature: float = 0.8, checkpoint: int = -1,
                             prompt: str = "ROMEO:\n", length: int = 300, seed: int = 0):
    """Text sampled from one of ``models`` (``{label: model}``, in training order) after ``prompt``.

    ``checkpoint`` indexes the models (-1 = the last). Characters the tokenizer does not know are
    dropped from the prompt, with a note; an empty prompt starts from a new line.
    """
    import torch

    labels = list(models)
    index = int(checkpoint) if -len(labels) <= int(checkpoint) < len(labels) else -1
    label = labels[index]
    model = models[label]
    kept = "".join(c for c in prompt if c in tokenizer.stoi)
    note = f"  (dropped {len(prompt) - len(kept)} unknown character(s) from the prompt)" if len(kept) < len(prompt) else ""
    kept = kept[-model.config.block_size:] or "\n"
    idx = torch.tensor([tokenizer.encode(kept)])
    out = model.generate(idx, length, temperature=max(float(temperature), 1e-3),
                         generator=torch.Generator().manual_seed(seed))
    text = tokenizer.decode(out[0].tolist())
    fig, ax = new_figure(width=9.0, height=5.2)
    ax.text(0.0, 1.0, "\n".join(text.split("\n")[:18]), family="monospace", fontsize=9, va="top",
            transform=ax.transAxes)
    ax.axis("off")
    ax.set_title(f"{label}, temperature {temperature:.2f}{note}", fontsize=10)
    return fig


# ---------------------------------------------------------------- notebook 10: evaluation and data

SWEEP_FAMILIES = {
    "amount of data": ["fraction-1/256", "fraction-1/64", "fraction-1/16", "fraction-1/4", "baseline"],
    "noisy text": ["baseline", "noise-0.03", "noise-0.1", "noise-0.3"],
    "duplicated text": ["baseline", "duplicates"],
    "one genre or all": ["genre-comedies", "genre-all"],
    "model size": ["size-1x32", "baseline", "size-3x96", "size-4x128"],
}
SWEEP_LABELS = {"baseline": "all data, 2 layers x 64 (baseline)", "fraction-1/256": "1/256 of the data",
                "fraction-1/64": "1/64 of the data", "fraction-1/16": "1/16 of the data",
                "fraction-1/4": "1/4 of the data", "noise-0.03": "3% noise", "noise-0.1": "10% noise",
                "noise-0.3": "30% noise", "duplicates": "4 plays x 9 copies", "genre-comedies": "comedies only",
                "genre-all": "all genres, same size", "size-1x32": "1 layer x 32", "size-3x96": "3 layers x 96",
                "size-4x128": "4 layers x 128"}


def make_sweep_explorer(runs: dict, experiment: str = "amount of data", curves: str = "held-out"):
    """The learning curves of one family of stored runs (``data/sweeps.json``'s ``"runs"``).

    ``experiment`` is a key of :data:`SWEEP_FAMILIES`; ``curves`` is ``"held-out"``, ``"training"``
    or ``"both"`` (training dashed). The legend gives each run's final held-out loss.
    """
    if experiment not in SWEEP_FAMILIES:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {list(SWEEP_FAMILIES)}")
    if curves not in ("held-out", "training", "both"):
        raise ValueError(f"curves must be 'held-out', 'training' or 'both', not {curves!r}")
    names = [n for n in SWEEP_FAMILIES[experiment] if n in runs]
    fig, ax = new_figure(width=7.2, height=4.0)
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, max(2, len(names))))
    for colour, name in zip(colours, names):
        history = runs[name]["history"]
        label = f"{SWEEP_LABELS.get(name, name)}: {runs[name]['final']['validation']:.3f}"
        if curves in ("held-out", "both"):
            ax.plot(history["step"], history["val"], "-", color=colour, label=label)
        if curves in ("training", "both"):
            ax.plot(history["step"], history["train"], "--", color=colour,
                    label=None if curves == "both" else label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    shown = {"held-out": "held-out loss", "training": "training loss",
             "both": "held-out (solid) and training (dashed) loss"}[curves]
    ax.set_title(f"{experiment}: {shown}", fontsize=10)
    ax.legend(fontsize=9, title="final held-out loss", title_fontsize=9)
    return fig


def _play_title(slug: str, title: str | None) -> str:
    """The stored title, or one made from the slug where the corpus had none (``measure-for-measure``)."""
    return title if title and title != slug else data.title_from_slug(slug)


def make_play_losses(plays: dict, characters: int = 20_000):
    """The shipped model's loss on each play (``data/sweeps.json``'s ``"plays"``: ``{slug: {"title",
    "loss", "seen", ...}}``, measured on each play's first ``characters``), one bar a play from
    the lowest loss up: seen plays blue, unseen red, each bar labelled with the play's title."""
    order = sorted(plays, key=lambda slug: plays[slug]["loss"])
    losses = [plays[s]["loss"] for s in order]
    fig, ax = new_figure(width=10.0, height=4.4)
    colours = [CLASS_COLORS[0] if plays[s]["seen"] else CLASS_COLORS[1] for s in order]
    ax.bar(range(len(order)), losses, color=colours)
    ax.set_xticks(range(len(order)), [_play_title(s, plays[s].get("title"))[:30] for s in order], rotation=90,
                  fontsize=9)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(1.1, max(losses) + 0.05)
    ax.set_ylabel("loss (nats per character)")
    ax.set_title(f"The shipped model on each play's first {characters:,} characters: seen (blue), unseen (red)",
                 fontsize=10)
    return fig
