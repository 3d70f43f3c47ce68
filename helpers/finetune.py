"""Adapting a pretrained GPT to a task (notebook 11_fine_tuning).

- Data: :func:`genre_passages` (passages labelled by their play's genre; training passages
  from training plays, evaluation passages from held-out plays only) and
  :func:`modernise` / :func:`translation_pairs` (a Shakespearean line and the same line with a
  documented set of old words replaced, for a small generative task).
- Models: :class:`GenreClassifier` (a GPT body, pooled, and a new linear head),
  :func:`freeze` and :func:`count_trainable`; **LoRA** has its own module, ``helpers/lora.py``.
- Scores: :func:`character_error_rate`.
"""

import dataclasses
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
METHOD_NAMES = {"scratch": "from scratch (no pretraining)", "frozen": "frozen body + new head",
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


def scores(model, tok, pairs) -> dict:
    """Greedy translations of ``pairs``' old lines: mean character error rate, exact-match rate
    and the translations themselves."""
    outputs = [translate(model, tok, old) for old, _ in pairs]
    cer = [character_error_rate(out, new) for out, (_, new) in zip(outputs, pairs)]
    return {"cer": round(sum(cer) / len(cer), 4), "exact": round(sum(o == n for o, (_, n) in zip(outputs, pairs))
                                                                 / len(pairs), 4), "outputs": outputs}


def train_modernise(method: str, steps: int | None = None, on_eval=None,
                    config: ModerniseConfig = ModerniseConfig(), lora_config: LoRAConfig = LoRAConfig()):
    """Fine-tune the shipped GPT (``"full"`` or ``"lora"``, with ``lora_config``) or the same
    network from scratch (``"scratch"``) to write the modern version of a line (``config``). Every
    ``eval_every`` steps: the answer loss on held-out pairs and the language-model loss on the
    validation plays (forgetting). Returns ``(model, tokenizer, result)``; ``result`` has the
    history, final scores on the held-out pairs, trainable count and seconds. Trained by
    ``helpers.training.fit``; after Ctrl-C, ``steps`` says how many steps were done and there
    are no final scores."""
    steps = config.steps if steps is None else steps
    train_pairs, eval_pairs = modernisation_data(config)
    model, tok = prepare(method, seed=config.seed, lora_config=lora_config)
    lm_ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    rng = random.Random(config.seed)
    history = {"step": [], "answer_loss": [], "lm_loss": []}
    started = time.perf_counter()

    def measure(step):
        history["step"].append(step)
        history["answer_loss"].append(round(answer_loss(model, tok, eval_pairs), 4))
        history["lm_loss"].append(round(training.estimate_loss(model, lm_ids, batches=5), 4))
        if on_eval is not None:
            on_eval(dict(history))

    done = training.fit(model, lambda: answer_batch(tok, rng.sample(train_pairs, config.batch_size)),
                        steps, config.lr[method], evaluate=measure, eval_at=range(0, steps + 1, config.eval_every))
    final = scores(model, tok, eval_pairs) if done == steps else None
    return model, tok, {"method": method, "steps": done, "trainable": count_trainable(model),
                        "history": history, "final": final, "seconds": round(time.perf_counter() - started, 1)}
