"""Adapting a pretrained GPT to a task (notebook 11_fine_tuning).

- Data: :func:`genre_passages` (passages labelled by their play's genre; training passages
  from training plays, evaluation passages from held-out plays only) and
  :func:`modernise` / :func:`translation_pairs` (a Shakespearean line and the same line with a
  documented set of old words replaced, for a small generative task).
- Models: :class:`GenreClassifier` (a GPT body, pooled, and a new linear head),
  :func:`freeze` and :func:`count_trainable`; **LoRA** has its own module, ``helpers/lora.py``.
- Scores and statistics: :func:`character_error_rate`; :func:`mcnemar` (a paired test of two
  methods scored on the same items); :func:`passage_plays` (which play each passage is from).
- A linear probe: :func:`pooled_features` of the frozen body and :func:`logistic_regression`.
- Forgetting: ``train_modernise(..., replay=n)`` mixes pretraining text into every batch.
- Diagnosis: :func:`answer_loss_by_kind` (loss on characters copied from the prompt vs changed).
"""

import dataclasses
import difflib
import math
import random
import re
import time

import torch
from torch import nn
from torch.nn import functional as F

from helpers import checkpoints, data, training
from helpers.lora import LoRAConfig, add_lora

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
    texts, labels, _ = _draw_passages(split, per_genre, length, seed)
    return texts, labels


def passage_plays(split: str, per_genre: int, length: int = 128, seed: int = 0) -> list[str]:
    """The title of the play each passage of ``genre_passages(split, per_genre, length, seed)``
    comes from, in the same order (the same random draws)."""
    return _draw_passages(split, per_genre, length, seed)[2]


def _draw_passages(split, per_genre, length, seed):
    plays = _plays(split)
    if per_genre < 1 or length < 1:
        raise ValueError(f"per_genre and length must be at least 1, got {per_genre} and {length}")
    rng = random.Random(seed)
    texts, labels, titles = [], [], []
    for label, genre in enumerate(GENRE_CLASSES):
        pool = [p for p in plays if p.genre == genre and len(p.text) > length]
        weights = [len(p.text) - length for p in pool]
        for play in rng.choices(pool, weights=weights, k=per_genre):
            start = rng.randrange(len(play.text) - length)
            texts.append(play.text[start: start + length])
            labels.append(label)
            titles.append(play.title)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order], [titles[i] for i in order]


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


# ---------------------------------------------------------------- a baseline without a network

def bag_of_characters(texts, alphabet) -> torch.Tensor:
    """``(N, len(alphabet))``: how often each character of ``alphabet`` occurs in each text, as a
    fraction of the text's length. The order of the characters is thrown away."""
    index = {ch: i for i, ch in enumerate(alphabet)}
    counts = torch.zeros(len(texts), len(alphabet))
    for row, text in enumerate(texts):
        for ch in text:
            if ch in index:
                counts[row, index[ch]] += 1
        counts[row] /= max(1, len(text))
    return counts


def logistic_regression(features: torch.Tensor, labels, n_classes: int, steps: int = 500, lr: float = 0.05,
                        weight_decay: float = 1e-3, seed: int = 0):
    """A linear classifier (softmax regression) fitted by full-batch AdamW on standardised
    ``features``. Returns ``predict(new_features) -> classes``."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    x, y = (features - mean) / std, torch.as_tensor(labels)
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], n_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(head(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict(new_features):
        with torch.no_grad():
            return head((new_features - mean) / std).argmax(-1)

    return predict


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's exact test of two methods scored on the *same* items: ``correct_a`` and
    ``correct_b`` say, item by item, whether each got it right. Only the items they disagree on
    count: ``a_only`` (A right, B wrong) and ``b_only``. If the methods were equally good, each
    disagreement would go either way with probability 1/2; ``p`` is the two-sided binomial
    probability of a split at least this uneven."""
    a, b = [bool(v) for v in correct_a], [bool(v) for v in correct_b]
    if len(a) != len(b):
        raise ValueError(f"both methods must be scored on the same items: {len(a)} and {len(b)} results")
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2 * tail)}


@torch.no_grad()
def pooled_features(body, tok, texts, batch_size: int = 32) -> torch.Tensor:
    """``(N, n_embd)``: the frozen ``body``'s hidden states averaged over each text (as
    :class:`GenreClassifier` pools them), the features a linear probe reads."""
    with training.evaluating(body):
        ids = _encode(tok, texts)
        B, T = ids.shape
        windows = max(1, T // body.config.block_size)
        out = [body.features(ids[i: i + batch_size].reshape(-1, T // windows)).reshape(
            len(ids[i: i + batch_size]), T, -1).mean(1) for i in range(0, B, batch_size)]
    return torch.cat(out)


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
        B, T = idx.shape
        block = self.body.config.block_size
        if T > block and T % block:
            raise ValueError(f"a passage longer than the context ({block}) must be a whole number of "
                             f"windows of {block} tokens; got {T}")
        windows = max(1, T // block)          # a long passage is read as several windows, pooled together
        hidden = self.body.features(idx.reshape(B * windows, T // windows)).reshape(B, T, -1)   # (B, T, C)
        pooled = hidden.mean(dim=1) if self.pooling == "mean" else hidden[:, -1]
        logits = self.head(pooled)                                          # (B, n_classes)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return logits, loss


# ---------------------------------------------------------------- the experiments of notebook 11

PRETRAINED = "gpt_shakespeare.pt"    # in data/: the model pretrained in notebook 09
METHODS = ("scratch", "frozen", "lora", "full")
METHOD_NAMES = {"scratch": "from scratch (no pretraining)", "frozen": "frozen body + head (probe)",
                "lora": "LoRA (query and value)", "full": "full fine-tuning"}
# One learning rate per method (AdamW, constant, no weight decay): a new head alone tolerates a
# large step; changing every pretrained weight needs a small one.
@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    """The genre-classification runs: passage ``length``, held-out passages per genre, batch size,
    steps, the steps at which to measure, a learning rate per method and the seed."""
    length: int = 256
    eval_per_genre: int = 120
    batch_size: int = 8
    steps: int = 200
    eval_at: tuple = (25, 50, 100, 200)
    lr: dict = dataclasses.field(default_factory=lambda: {"scratch": 1e-3, "frozen": 1e-2, "lora": 3e-3, "full": 3e-4})
    seed: int = 0


def load_pretrained():
    """``(model, tokenizer)``: the GPT pretrained in notebook 09 and its character tokenizer."""
    from helpers import tokenizers
    from helpers.paths import DATA_DIR

    model, checkpoint = checkpoints.load_model(DATA_DIR / PRETRAINED)
    return model, tokenizers.CharTokenizer(checkpoint["tokenizer_chars"])


def prepare(method: str, seed: int = 0, lora_config: LoRAConfig = LoRAConfig()):
    """The shipped GPT set up for ``method`` (one of :data:`METHODS`): a fresh copy with random
    weights (``"scratch"``), frozen (``"frozen"``), frozen with LoRA matrices of ``lora_config``
    (``"lora"``) or left fully trainable (``"full"``). Returns ``(model, tokenizer)``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    from helpers import gpt

    model, tok = load_pretrained()
    torch.manual_seed(seed)
    if method == "scratch":
        model = gpt.GPT(model.config)                     # same architecture, random weights
    elif method == "frozen":
        freeze(model)
    elif method == "lora":
        add_lora(model, lora_config)
    return model.train(), tok


def _encode(tok, texts) -> torch.Tensor:
    return torch.tensor([tok.encode(t) for t in texts], dtype=torch.long)


@torch.no_grad()
def predict(classifier, ids: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The predicted class of every row of ``ids`` ``(N, T)``, in eval mode."""
    with training.evaluating(classifier):
        out = torch.cat([classifier(ids[i: i + batch_size])[0].argmax(-1) for i in range(0, len(ids), batch_size)])
    return out


def train_classifier(method: str, per_genre: int, steps: int | None = None, on_eval=None,
                     config: ClassifyConfig = ClassifyConfig(), lora_config: LoRAConfig = LoRAConfig()) -> dict:
    """Fine-tune a :class:`GenreClassifier` by ``method`` on ``per_genre`` training passages of
    each genre (``config``; ``lora_config`` for ``"lora"``) and measure it on the held-out plays'
    passages at the steps of ``config.eval_at`` (up to ``steps``).

    Also measured at each of those steps: the body's own language-model loss on the validation
    plays (with the original head: has fine-tuning made it forget how to predict text?).
    ``on_eval(record)`` is called after every measurement. Trained by ``helpers.training.fit``:
    the learning rate is constant, so the first ``n`` steps of a long run equal a run of ``n``
    steps (notebook 11 checks one live); after Ctrl-C the result's ``steps`` says how many were
    done.
    """
    steps = config.steps if steps is None else steps
    train_texts, train_labels = genre_passages("train", per_genre, config.length, seed=config.seed)
    eval_texts, eval_labels = genre_passages("held-out", config.eval_per_genre, config.length, seed=config.seed + 1)
    body, tok = prepare(method, seed=config.seed, lora_config=lora_config)
    torch.manual_seed(config.seed)
    classifier = GenreClassifier(body)
    x, y = _encode(tok, train_texts), torch.tensor(train_labels)
    x_eval, y_eval = _encode(tok, eval_texts), torch.tensor(eval_labels)
    lm_ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    generator = torch.Generator().manual_seed(config.seed)
    history = {"step": [], "accuracy": [], "lm_loss": []}
    predictions, started = None, time.perf_counter()

    def make_batch():
        rows = torch.randint(len(x), (config.batch_size,), generator=generator)
        return x[rows], y[rows]

    def measure(step):
        nonlocal predictions
        predictions = predict(classifier, x_eval)
        history["step"].append(step)
        history["accuracy"].append(round((predictions == y_eval).float().mean().item(), 4))
        history["lm_loss"].append(round(training.estimate_loss(classifier.body, lm_ids, batches=5), 4))
        if on_eval is not None:
            on_eval(dict(history))

    history["lm_loss_before"] = round(training.estimate_loss(classifier.body, lm_ids, batches=5), 4)
    done = training.fit(classifier, make_batch, steps, config.lr[method], evaluate=measure, eval_at=config.eval_at)
    return {"method": method, "per_genre": per_genre, "steps": done, "trainable": count_trainable(classifier),
            "history": history, "predictions": None if predictions is None else predictions.tolist(),
            "labels": eval_labels, "seconds": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------- modernisation as generation

@dataclasses.dataclass(frozen=True)
class ModerniseConfig:
    """The modernisation runs: training and held-out pairs, steps, batch size, steps between
    measurements, a learning rate per method, the seed and the longest line (characters)."""
    pairs: int = 2000
    eval_pairs: int = 100
    steps: int = 1000
    batch_size: int = 16
    eval_every: int = 250
    lr: dict = dataclasses.field(default_factory=lambda: {"scratch": 1e-3, "lora": 3e-3, "full": 1e-3})
    seed: int = 0
    max_length: int = 55


def prompt(line: str) -> str:
    """What the model is given: ``"OLD: <line>\\nNEW: "``; it should write the modern line and a newline."""
    return f"OLD: {line}\nNEW: "


def answer_batch(tok, pairs, make_prompt=prompt, pad_id: int = 0):
    """``(x, y)`` for a batch of ``(old, new)`` pairs: ``make_prompt(old) + new + "\\n"`` as input
    and next-token targets, with ``-100`` (ignored) everywhere except on the answer and its
    newline, right-padded to the longest example."""
    rows = [(tok.encode(make_prompt(old)), tok.encode(new + "\n")) for old, new in pairs]
    T = max(len(p) + len(a) for p, a in rows) - 1
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)
    y = torch.full((len(rows), T), -100, dtype=torch.long)
    for r, (p, a) in enumerate(rows):
        ids = torch.tensor(p + a)
        x[r, : len(ids) - 1] = ids[:-1]
        y[r, len(p) - 1: len(ids) - 1] = ids[len(p):]
    return x, y


@torch.no_grad()
def translate(model, tok, line: str, max_new_tokens: int = 80, make_prompt=prompt) -> str:
    """Greedy decoding of the model's modern version of ``line``, up to its first newline."""
    with training.evaluating(model):
        ids = torch.tensor([tok.encode(make_prompt(line))])
        newline = tok.encode("\n")[0]
        out = []
        for _ in range(max_new_tokens):
            logits, _ = model(ids[:, -model.config.block_size:])
            next_id = int(logits[0, -1].argmax())
            if next_id == newline:
                break
            out.append(next_id)
            ids = torch.cat((ids, torch.tensor([[next_id]])), dim=1)
    return tok.decode(out)


def modernisation_data(config: ModerniseConfig = ModerniseConfig()):
    """``(train_pairs, eval_pairs)``: ``config.pairs`` random training pairs and
    ``config.eval_pairs`` random held-out pairs (lines of at most ``config.max_length`` characters)."""
    rng = random.Random(config.seed)
    train = translation_pairs("train", config.max_length)
    held_out = translation_pairs("held-out", config.max_length)
    return rng.sample(train, config.pairs), rng.sample(held_out, config.eval_pairs)


def dev_pairs(config: ModerniseConfig = ModerniseConfig(), n: int = 100) -> list[tuple[str, str]]:
    """``n`` pairs from the *training* plays that are not among the training pairs of ``config``:
    a development set for choosing settings (a learning rate), so the held-out plays that score
    the methods are never used to choose them."""
    train = set(modernisation_data(config)[0])
    pool = [pair for pair in translation_pairs("train", config.max_length) if pair not in train]
    return random.Random(config.seed + 1).sample(pool, n)


def replay_batch(ids: torch.Tensor, rows: int, length: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` random windows of ``length`` tokens of the pretraining text ``ids`` and their
    next-token targets: the "replay" rows mixed into a fine-tuning batch."""
    starts = torch.randint(len(ids) - length - 1, (rows,), generator=generator).tolist()
    return (torch.stack([ids[s: s + length] for s in starts]),
            torch.stack([ids[s + 1: s + length + 1] for s in starts]))


@torch.no_grad()
def answer_loss(model, tok, pairs, make_prompt=prompt, batch_size: int = 50) -> float:
    """Mean cross-entropy on the answers of ``pairs`` given their prompts (teacher forcing)."""
    with training.evaluating(model):
        total, count = 0.0, 0
        for i in range(0, len(pairs), batch_size):
            x, y = answer_batch(tok, pairs[i: i + batch_size], make_prompt)
            logits, _ = model(x)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum").item()
            count += int((y != -100).sum())
    return total / count


def copied_characters(old: str, new: str) -> list[bool]:
    """For each character of ``new``: is it copied from ``old`` (inside a block the two lines
    share, by :class:`difflib.SequenceMatcher`) rather than written by a rule?"""
    copied = [False] * len(new)
    for _, start, size in difflib.SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks():
        copied[start: start + size] = [True] * size
    return copied


@torch.no_grad()
def answer_loss_by_kind(model, tok, pairs, make_prompt=prompt) -> dict:
    """Mean cross-entropy (teacher forcing) on the answer characters of ``pairs`` that are copied
    from the old line and on those the rules change (the final newline is left out):
    ``{"copied": (loss, count), "changed": (loss, count)}``."""
    totals = {"copied": [0.0, 0], "changed": [0.0, 0]}
    with training.evaluating(model):
        for old, new in pairs:
            x, y = answer_batch(tok, [(old, new)], make_prompt)
            logits, _ = model(x)
            losses = F.cross_entropy(logits[0], y[0], ignore_index=-100, reduction="none")
            positions = (y[0] != -100).nonzero().flatten().tolist()[: len(new)]
            for position, copied in zip(positions, copied_characters(old, new)):
                kind = totals["copied" if copied else "changed"]
                kind[0] += losses[position].item()
                kind[1] += 1
    return {kind: (total / max(count, 1), count) for kind, (total, count) in totals.items()}


def scores(model, tok, pairs) -> dict:
    """Greedy translations of ``pairs``' old lines: mean character error rate, exact-match rate
    and the translations themselves."""
    outputs = [translate(model, tok, old) for old, _ in pairs]
    cer = [character_error_rate(out, new) for out, (_, new) in zip(outputs, pairs)]
    return {"cer": round(sum(cer) / len(cer), 4), "exact": round(sum(o == n for o, (_, n) in zip(outputs, pairs))
                                                                 / len(pairs), 4), "outputs": outputs}


def train_modernise(method: str, steps: int | None = None, on_eval=None,
                    config: ModerniseConfig = ModerniseConfig(), lora_config: LoRAConfig = LoRAConfig(),
                    replay: int = 0, eval_at=None, on_dev: bool = False, score: bool = True):
    """Fine-tune the shipped GPT (``"full"`` or ``"lora"``, with ``lora_config``) or the same
    network from scratch (``"scratch"``) to write the modern version of a line (``config``). Every
    ``eval_every`` steps: the answer loss on held-out pairs and the language-model loss on the
    validation plays (forgetting). Returns ``(model, tokenizer, result)``; ``result`` has the
    history, final scores on the held-out pairs, trainable count and seconds. Trained by
    ``helpers.training.fit``; after Ctrl-C, ``steps`` says how many steps were done and there
    are no final scores.

    ``replay`` > 0 adds that many windows of the pretraining text (training plays) to every
    batch, with their next-character targets, so the old loss stays part of the new one.
    ``eval_at`` (default every ``eval_every`` steps) chooses the measured steps; ``on_dev`` measures
    (and scores) on :func:`dev_pairs` instead of the held-out plays; ``score=False`` skips the
    final greedy scoring."""
    steps = config.steps if steps is None else steps
    train_pairs, eval_pairs = modernisation_data(config)
    if on_dev:
        eval_pairs = dev_pairs(config)
    model, tok = prepare(method, seed=config.seed, lora_config=lora_config)
    lm_ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    replay_ids = torch.tensor(tok.encode(data.corpus_text("train"))) if replay else None
    replay_generator = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    eval_at = range(0, steps + 1, config.eval_every) if eval_at is None else eval_at

    def make_batch():
        x, y = answer_batch(tok, rng.sample(train_pairs, config.batch_size))
        if not replay:
            return x, y
        x_text, y_text = replay_batch(replay_ids, replay, x.shape[1], replay_generator)
        return torch.cat([x, x_text]), torch.cat([y, y_text])

    history = {"step": [], "answer_loss": [], "lm_loss": []}
    started = time.perf_counter()

    def measure(step):
        history["step"].append(step)
        history["answer_loss"].append(round(answer_loss(model, tok, eval_pairs), 4))
        history["lm_loss"].append(round(training.estimate_loss(model, lm_ids, batches=5), 4))
        if on_eval is not None:
            on_eval(dict(history))

    done = training.fit(model, make_batch, steps, config.lr[method], evaluate=measure, eval_at=eval_at)
    final = scores(model, tok, eval_pairs) if done == steps and score else None
    return model, tok, {"method": method, "steps": done, "trainable": count_trainable(model),
                        "history": history, "final": final, "seconds": round(time.perf_counter() - started, 1)}
