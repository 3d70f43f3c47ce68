"""Adapting a pretrained GPT to a task (notebook 11_fine_tuning, being written).

- Data: :func:`genre_passages` (passages labelled by their play's genre; training passages
  from training plays, evaluation passages from held-out plays only) and
  :func:`modernise` / :func:`translation_pairs` (a Shakespearean line and the same line with a
  documented set of old words replaced, for a small generative task).
- Models: :class:`GenreClassifier` (a GPT body, pooled, and a new linear head),
  :func:`freeze` and :func:`count_trainable`, and **LoRA** from scratch: :class:`LoRALinear`,
  :func:`add_lora`, :func:`merge_lora`.
- Scores: :func:`character_error_rate`.
"""

import math
import random
import re

import torch
from torch import nn
from torch.nn import functional as F

from helpers import data

GENRE_CLASSES = ("comedies", "histories", "tragedies")   # the genres that have held-out plays


# ---------------------------------------------------------------- data: genre passages

def _plays(split: str):
    """The training plays (``"train"``) or the validation and test plays together (``"held-out"``)."""
    splits = data.split_plays()
    if split == "train":
        return splits["train"]
    if split == "held-out":
        return splits["validation"] + splits["test"]
    raise ValueError(f"split must be 'train' or 'held-out', got {split!r}")


def genre_passages(split: str, per_genre: int, length: int = 128, seed: int = 0) -> tuple[list[str], list[int]]:
    """``per_genre`` random passages of ``length`` characters for each of :data:`GENRE_CLASSES`,
    and their labels (indices into it), shuffled.

    ``split="train"`` takes them from the training plays; ``split="held-out"`` from the
    validation and test plays only, so a classifier is judged on plays it never saw. Passages are
    drawn from the plays of a genre in proportion to their length.
    """
    plays = _plays(split)
    if per_genre < 1 or length < 1:
        raise ValueError(f"per_genre and length must be at least 1, got {per_genre} and {length}")
    rng = random.Random(seed)
    texts, labels = [], []
    for label, genre in enumerate(GENRE_CLASSES):
        pool = [p.text for p in plays if p.genre == genre and len(p.text) > length]
        weights = [len(text) - length for text in pool]
        for text in rng.choices(pool, weights=weights, k=per_genre):
            start = rng.randrange(len(text) - length)
            texts.append(text[start: start + length])
            labels.append(label)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order]


# ---------------------------------------------------------------- data: "translation" pairs

# Old word (or two) -> modern words, applied to whole words; the case of the first letter is kept.
# Deliberately small and mechanical: the task is to learn these rules from examples.
MODERN_WORDS = {
    "thou art": "you are", "art thou": "are you",      # 'art' alone is often the noun: left alone
    "thou": "you", "thee": "you", "ye": "you", "thy": "your", "thine": "your",
    "hath": "has", "doth": "does", "dost": "do", "hast": "have", "didst": "did", "wilt": "will",
    "shalt": "shall", "canst": "can", "wouldst": "would", "shouldst": "should", "couldst": "could",
    "'tis": "it is", "'twas": "it was", "ere": "before", "oft": "often", "nay": "no", "aye": "yes",
    "hither": "here", "thither": "there", "whither": "where", "wherefore": "why", "whence": "from where",
}
_WORD = re.compile(r"(?<![\w'])(" + "|".join(re.escape(w) for w in sorted(MODERN_WORDS, key=len, reverse=True))
                   + r")(?![\w'])", re.IGNORECASE)


def modernise(line: str) -> str:
    """``line`` with every word of :data:`MODERN_WORDS` replaced (whole words only, any case; a
    capitalised old word gives a capitalised modern one). "Thou art" -> "You are"."""
    def replace(match):
        old = match.group(0)
        new = MODERN_WORDS[old.lower()]
        if old.isupper() and len(old) > 1:
            return new.upper()
        return new[0].upper() + new[1:] if old[0].isupper() or (old[0] == "'" and old[1:2].isupper()) else new
    return _WORD.sub(replace, line)


def translation_pairs(split: str, max_length: int = 60) -> list[tuple[str, str]]:
    """Every distinct line of the ``split`` plays (``"train"`` or ``"held-out"``) of at most
    ``max_length`` characters that :func:`modernise` changes, with its modern version, in the
    order of the plays. Speaker-name lines are left out."""
    pairs, seen = [], set()
    for play in _plays(split):
        for line in play.text.split("\n"):
            line = line.strip()
            if not line or len(line) > max_length or line.endswith(":") or line in seen:
                continue
            modern = modernise(line)
            if modern != line:
                seen.add(line)
                pairs.append((line, modern))
    return pairs


def character_error_rate(prediction: str, target: str) -> float:
    """Edits (insertions, deletions, substitutions) to turn ``prediction`` into ``target``,
    divided by ``len(target)``: 0 is perfect. (Levenshtein distance, by dynamic programming.)"""
    if not target:
        return float(len(prediction) > 0)
    previous = list(range(len(target) + 1))
    for i, p in enumerate(prediction, 1):
        current = [i]
        for j, t in enumerate(target, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (p != t)))
        previous = current
    return previous[-1] / len(target)


# ---------------------------------------------------------------- models

def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients for every parameter of ``module`` (it still runs forward); returns it."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def count_trainable(module: nn.Module) -> int:
    """How many numbers an optimizer would update: parameters with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class GenreClassifier(nn.Module):
    """A GPT ``body`` whose final hidden states are pooled over the passage and fed to a new
    linear head: ``(B, T)`` ids -> ``(B, n_classes)`` logits.

    ``pooling="mean"`` averages every position; ``"last"`` takes the last position, the only
    one that (under the causal mask) has seen the whole passage.
    """

    def __init__(self, body, n_classes: int = len(GENRE_CLASSES), pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        self.body, self.pooling = body, pooling
        self.head = nn.Linear(body.config.n_embd, n_classes)

    def forward(self, idx, labels=None):
        hidden = self.body.features(idx)                                   # (B, T, C)
        pooled = hidden.mean(dim=1) if self.pooling == "mean" else hidden[:, -1]
        logits = self.head(pooled)                                          # (B, n_classes)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return logits, loss


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al., 2021):
    ``y = base(x) + (alpha / rank) * x A^T B^T``, with ``A`` ``(rank, in)`` and ``B`` ``(out, rank)``.

    ``B`` starts at zero, so at first the layer computes exactly what the base layer did; training
    moves only ``A`` and ``B``: ``rank * (in + out)`` numbers instead of ``in * out``.
    """

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 8.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not 1 <= rank <= min(base.in_features, base.out_features):
            raise ValueError(f"rank must be between 1 and {min(base.in_features, base.out_features)}, got {rank}")
        self.base = freeze(base)
        self.rank, self.scale = rank, alpha / rank
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T

    def merged(self) -> nn.Linear:
        """One plain ``nn.Linear`` computing the same function: ``W + scale * B A``. No extra cost
        at inference time."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.B @ self.A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def add_lora(model, rank: int = 4, alpha: float = 8.0, targets=("query", "value")) -> nn.Module:
    """Freeze every parameter of the GPT ``model`` and wrap the attention layers named in
    ``targets`` (of ``query``, ``key``, ``value``, ``proj``) of every block in :class:`LoRALinear`;
    returns the model. Only the LoRA matrices are then trainable."""
    allowed = {"query", "key", "value", "proj"}
    if not targets or set(targets) - allowed:
        raise ValueError(f"targets must be some of {sorted(allowed)}, got {targets!r}")
    freeze(model)
    for block in model.blocks:
        for name in targets:
            setattr(block.attn, name, LoRALinear(getattr(block.attn, name), rank, alpha))
    return model


def merge_lora(model) -> nn.Module:
    """Replace every :class:`LoRALinear` of ``model`` by its merged ``nn.Linear``; returns the model."""
    for block in model.blocks:
        for name in ("query", "key", "value", "proj"):
            layer = getattr(block.attn, name)
            if isinstance(layer, LoRALinear):
                setattr(block.attn, name, layer.merged())
    return model
