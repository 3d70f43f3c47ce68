"""Figures of part 4, pretraining (notebooks 09_pretraining and 10_evaluation_and_data).

The learning-rate schedule, the schedule experiment and the generation explorer (09); the stored
sweeps' learning curves and the shipped model's loss on every play (10). A live run's plot is ``common.LiveLoss``, and
notebook 10's log-log axes use ``common.plain_log_ticks``.
"""

import matplotlib.pyplot as plt
import numpy as np

from helpers import data
from helpers.plots.common import CLASS_COLORS, new_figure, visible_whitespace


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


SCHEDULE_PANELS = {
    "300 steps": [("constant-2e-3", "constant 2e-3"), ("cosine-300-2e-3", "warm-up + cosine, peak 2e-3"),
                  ("constant-1e-2", "constant 1e-2"), ("cosine-300-1e-2", "warm-up + cosine, peak 1e-2")],
    "1,200 steps": [("constant-2e-3", "constant 2e-3"), ("cosine-1200-2e-3", "warm-up + cosine, peak 2e-3")],
}


def make_schedule_experiment(runs: dict, seeds=(0, 1)):
    """The stored schedule runs (``data/schedules.json``'s ``"runs"``, named ``"<schedule>-seed<s>"``):
    held-out loss against step, one panel per budget (:data:`SCHEDULE_PANELS`), one colour per
    schedule, seed 0 solid and seed 1 dashed. The legend gives each schedule's final loss with each
    seed; a run that blew up ends in a cross. A constant rate's run of 1,200 steps is also its
    run of 300 (the rate does not depend on the budget), so the first panel shows its first 300 steps."""
    fig, axes = plt.subplots(1, len(SCHEDULE_PANELS), figsize=(10.0, 3.8), sharey=True)
    for ax, (title, curves) in zip(axes, SCHEDULE_PANELS.items()):
        budget = int(title.split()[0].replace(",", ""))
        for colour, (stem, label) in zip(CLASS_COLORS, curves):
            finals = []
            for seed, style in zip(seeds, ("-", "--")):
                run = runs.get(f"{stem}-seed{seed}")
                if run is None:
                    continue
                history = run["history"]
                kept = [(s, v) for s, v in zip(history["step"], history["val"]) if s <= budget]
                if kept:
                    ax.plot(*zip(*kept), style, color=colour, linewidth=1.4)
                if run.get("diverged"):
                    ax.plot(kept[-1][0] if kept else 0, kept[-1][1] if kept else 4.4, "x", color=colour, markersize=9)
                    finals.append(float("nan"))
                elif kept:
                    finals.append(kept[-1][1])
            shown = " / ".join("blew up" if np.isnan(f) else f"{f:.3f}" for f in finals) or "no runs"
            ax.plot([], [], "-", color=colour, label=f"{label}: {shown}")
        ax.set_title(f"{title} (solid: seed 0, dashed: seed 1)", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8, title="held-out loss at the end (seed 0 / seed 1)", title_fontsize=8)
    axes[0].set_ylabel("held-out loss (nats per character)")
    fig.tight_layout()
    return fig


def make_generation_explorer(models: dict, tokenizer, temperature: float = 0.8, checkpoint: int = -1,
                             prompt: str = "ROMEO:\n", top_k: int = 0, position: int = 1, length: int = 115,
                             seed: int = 0, shown: int = 12):
    """``(text, figure)``: a sample from one of ``models`` (``{label: model}``, in training order)
    after ``prompt``, as text, and a bar chart of the next-character distribution the model drew
    the sample's ``position``-th new character from (1 = the first), after ``temperature`` and
    ``top_k`` (0 = all characters): the ``shown`` most likely characters, the one drawn in red.

    ``checkpoint`` indexes the models (-1 = the last). Characters the tokenizer does not know are
    dropped from the prompt, with a note; an empty prompt starts from a new line. A temperature
    below 0.001 counts as 0.001 (nearly greedy).
    """
    import torch

    from helpers import gpt

    labels = list(models)
    index = int(checkpoint) if -len(labels) <= int(checkpoint) < len(labels) else -1
    label, model = labels[index], models[labels[index]]
    kept = "".join(c for c in prompt if c in tokenizer.stoi)
    dropped = len(prompt) - len(kept)
    note = f" (dropped {dropped} unknown character(s) from the prompt)" if dropped else ""
    kept = kept[-model.config.block_size:] or "\n"
    temperature, k = max(float(temperature), 1e-3), (int(top_k) or None)
    start = torch.tensor([tokenizer.encode(kept)])                                 # (1, prompt length)
    with torch.no_grad():
        out = model.generate(start, length, temperature=temperature, top_k=k,
                             generator=torch.Generator().manual_seed(seed))        # (1, prompt + length)
        at = start.shape[1] + min(max(int(position), 1), length) - 1               # index of the character shown
        logits = model(out[:, :at][:, -model.config.block_size:])[0][:, -1, :]
        probs = gpt.next_token_probs(logits, temperature, k)[0]                    # (V,)
    ids = out[0].tolist()
    drawn = ids[at]
    best = torch.topk(probs, min(shown, len(probs)))
    fig, ax = new_figure(width=8.0, height=3.4)
    ax.bar(range(len(best.indices)), best.values.tolist(),
           color=[CLASS_COLORS[1] if i == drawn else CLASS_COLORS[0] for i in best.indices.tolist()])
    ax.set_xticks(range(len(best.indices)), [visible_whitespace(tokenizer.decode([i])) for i in best.indices.tolist()],
                  fontsize=11)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_xlabel(f"the {len(best.indices)} most likely next characters (red: the one drawn)")
    context = visible_whitespace(tokenizer.decode(ids[max(0, at - 20):at]))
    ax.set_title(f"{label}, temperature {temperature:.2f}, top-k {k or 'off'}: after '…{context}'{note}",
                 fontsize=10)
    char = visible_whitespace(tokenizer.decode([drawn]))
    text = (f"{tokenizer.decode(ids)}\n\n--- new character {at - start.shape[1] + 1}: '{char}', drawn with "
            f"probability {probs[drawn].item():.2f}" + ("" if drawn in best.indices.tolist() else
                                                         f" (not among the {len(best.indices)} shown)"))
    return text, fig


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
