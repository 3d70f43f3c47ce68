"""Figures of notebook 13_base_model_to_assistant: the SFT loss mask, scores before and after
each stage, best-of-n, the beta sweep of DPO, a diagram of PPO-based RLHF and the explorer
(prompt x stage x temperature). The models and numbers come from ``helpers/assistant.py`` and
``helpers/preferences.py``."""

import textwrap

import numpy as np
from matplotlib.patches import FancyBboxPatch

from helpers import assistant, preferences
from helpers.plots.common import new_figure, visible_whitespace

TRAINED, GIVEN = "#2ca02c", "#d9d9d9"
STAGE_COLOURS = {"base, one-shot": "#7f7f7f", "base, chat format": "#bcbcbc", "SFT": "#1f77b4", "SFT, seed 1": "#9ecae1"}


def make_loss_mask(tokens, trained, title: str = "which tokens the SFT loss counts"):
    """Tokens (strings) in a row, wrapped, green where the loss counts their prediction."""
    per_row = 24
    rows = (len(tokens) + per_row - 1) // per_row
    fig, ax = new_figure(width=10.0, height=0.55 * rows + 0.9)
    for i, (token, on) in enumerate(zip(tokens, trained)):
        r, c = divmod(i, per_row)
        special = token.startswith("[") and token.endswith("]") and len(token) > 1
        width = 1.0
        ax.add_patch(FancyBboxPatch((c + 0.05, -r + 0.05), width - 0.1, 0.8, boxstyle="round,pad=0.02",
                                    color=TRAINED if on else GIVEN))
        label = visible_whitespace(token) if not special else token[1:-1].replace("ASSISTANT", "ASST")
        ax.text(c + 0.5, -r + 0.45, label, ha="center", va="center", fontsize=6.5 if special else 9,
                color="white" if on else "black", fontweight="bold" if special else "normal")
    ax.set_xlim(0, per_row)
    ax.set_ylim(-rows + 0.9, 1.0)
    ax.axis("off")
    ax.set_title(f"{title}  (green: predicted and counted; grey: given)", fontsize=10)
    return fig


def make_sft_scores(record: dict):
    """Held-out exact answers per task, and the share of replies that end with [END], for the base
    model (prompted one-shot, and in the chat format) and the SFT model (two seeds)."""
    bars = {"base, one-shot": record["base"]["one-shot"], "base, chat format": record["base"]["chat"],
            "SFT": record["runs"]["0"]["scores"], "SFT, seed 1": record["runs"]["1"]["scores"]}
    columns = list(assistant.TASKS) + ["format"]
    fig, ax = new_figure(width=8.0, height=3.6)
    width = 0.8 / len(bars)
    for k, (name, scores) in enumerate(bars.items()):
        x = np.arange(len(columns)) + (k - (len(bars) - 1) / 2) * width
        ax.bar(x, [100 * scores[c] for c in columns], width, label=name, color=STAGE_COLOURS[name])
    ax.set_xticks(range(len(columns)), [*columns[:-1], "ends its turn\n(format)"])
    ax.set_ylabel("held-out prompts (%)")
    ax.set_ylim(0, 105)
    ax.set_title("exact answers on unseen plays, before and after SFT", fontsize=10)
    ax.legend(fontsize=8, ncols=2)
    return fig


def make_best_of_n(by_n: dict):
    """Best-of-n with the reward model: the rule's score and exact answers against ``n``."""
    ns = sorted(by_n, key=int)
    fig, ax = new_figure(width=5.6, height=3.4)
    ax.plot([int(n) for n in ns], [100 * by_n[n]["no_old_words"] for n in ns], "o-", label="no old word left (the rule)")
    ax.plot([int(n) for n in ns], [100 * by_n[n]["exact"] for n in ns], "s-", label="exactly right")
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(n) for n in ns], ns)
    ax.set_xlabel("n (samples per prompt; the reward model picks one)")
    ax.set_ylabel("held-out prompts (%)")
    ax.set_ylim(0, 100)
    ax.set_title("best-of-n with the Bradley-Terry reward model", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def make_beta_sweep(dpo: dict, sft: dict, betas):
    """DPO for each beta (two seeds each): the rule's score, exact answers, KL from the SFT model
    and the language-model loss on the held-out plays; the SFT model as a dashed line."""
    panels = [("no_old_words", "no old word left (%)", 100), ("exact", "exactly right (%)", 100),
              ("kl", "KL(policy || SFT), nats", 1), ("lm_loss", "LM loss, held-out plays", 1)]
    fig, axes = new_figure(ncols=4, width=12.0, height=3.2)
    for ax, (key, label, scale) in zip(axes, panels):
        for seed, marker in (("0", "o"), ("1", "x")):
            ax.plot(betas, [scale * dpo[f"{b}/{seed}"][key] for b in betas], marker, color="#d62728",
                    label=f"DPO, seed {seed}")
        if key in sft:
            ax.axhline(scale * sft[key], color="#1f77b4", linestyle="--", label="SFT (the reference)")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("beta (smaller: further from the reference)")
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7)
    return fig


def make_rlhf_diagram():
    """PPO-based RLHF in boxes: the policy writes, the reward model scores, the frozen reference
    measures the drift (KL), and PPO updates the policy to raise reward minus beta x KL."""
    fig, ax = new_figure(width=9.0, height=3.6)
    boxes = {"prompt": (0.2, 1.6, "prompt x"), "policy": (2.3, 1.6, "policy pi\n(trained)"),
             "reply": (4.4, 1.6, "reply y"), "reward": (6.5, 2.6, "reward model\nr(x, y)"),
             "reference": (6.5, 0.6, "reference pi_ref\n(frozen SFT)"),
             "objective": (8.6, 1.6, "r(x, y)\n- beta log(pi / pi_ref)")}
    for name, (x, y, text) in boxes.items():
        colour = {"policy": "#c6dbef", "reward": "#fdd0a2", "reference": "#d9d9d9", "objective": "#c7e9c0"}
        ax.add_patch(FancyBboxPatch((x, y), 1.7, 0.8, boxstyle="round,pad=0.05", color=colour.get(name, "#f0f0f0")))
        ax.text(x + 0.85, y + 0.4, text, ha="center", va="center", fontsize=8)

    def arrow(a, b, text="", bend=0.0):
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", connectionstyle=f"arc3,rad={bend}"))
        if text:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, text, ha="center", fontsize=7)

    arrow((1.9, 2.0), (2.3, 2.0))
    arrow((4.0, 2.0), (4.4, 2.0), "samples")
    arrow((6.1, 2.1), (6.5, 2.9))
    arrow((6.1, 1.9), (6.5, 1.0))
    arrow((8.2, 3.0), (8.6, 2.2))
    arrow((8.2, 1.0), (8.6, 1.8))
    ax.text(8.75, 1.2, "log pi_ref(y)", fontsize=7)
    arrow((9.45, 1.55), (3.15, 1.55), bend=-0.3)
    ax.text(6.3, -0.3, "PPO: raise the objective (a policy-gradient step on the policy)", ha="center", fontsize=8)
    ax.set_xlim(0, 10.5)
    ax.set_ylim(-0.6, 3.6)
    ax.axis("off")
    ax.set_title("RLHF with PPO (not trained here): policy, reward model, frozen reference; PPO adds a value model",
                 fontsize=9)
    return fig


# Lines of the held-out plays (Othello, Macbeth), one per task.
EXPLORER_PROMPTS = {"modernise: Art thou his friend?": ("modernise", "Art thou his friend?"),
                    "shout: So all hail, Macbeth and Banquo!": ("shout", "So all hail, Macbeth and Banquo!"),
                    "last word: How goes the night, boy?": ("last word", "How goes the night, boy?")}


def make_chat_explorer(prompt: str = "modernise: Art thou his friend?", stage: str = "SFT",
                       temperature: float = 0.0):
    """Notebook 13's explorer: what one stage (``preferences.STAGES``) replies to one of
    :data:`EXPLORER_PROMPTS` at ``temperature`` (0 = greedy; otherwise a sample with seed 0), and
    its scores."""
    if prompt not in EXPLORER_PROMPTS:
        raise ValueError(f"prompt must be one of {list(EXPLORER_PROMPTS)}")
    task, line = EXPLORER_PROMPTS[prompt]
    out = preferences.stage_reply(stage, task, line, float(temperature))
    fig, ax = new_figure(width=9.0, height=3.4)
    ax.axis("off")
    shown = "\n".join(textwrap.wrap(out["prompt"].replace("\n", "⏎"), 88))
    ending = {"end": "yes, it wrote [END]" if stage != preferences.STAGES[0] else "yes, a line break",
              "wrong role": "no: it began another role's turn", "no end": "no: cut off after 45 tokens"}
    lines = [("the model is given:", shown), ("it replies:", out["reply"] or "(nothing)"),
             ("right answer:", f"{'yes' if out['right'] else 'no'} (expected {assistant.answer(task, line)!r})"),
             ("ended its turn:", ending[out["ending"]]), ("old words left:", str(out["old_words"]))]
    y = 0.95
    for label, text in lines:
        ax.text(0.0, y, label, fontsize=9, fontweight="bold", va="top", transform=ax.transAxes)
        ax.text(0.22, y, text, fontsize=9, va="top", family="monospace", transform=ax.transAxes)
        y -= 0.12 * (text.count("\n") + 1) + 0.06
    ax.set_title(f"{stage}, temperature {temperature:g}", fontsize=10)
    return fig
