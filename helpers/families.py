"""One tiny architecture, four model families (notebook 12_model_families).

GPT, BERT and XLNet differ less in their layers than in what each position may see while it is
trained, which is an attention mask and a choice of targets. Here the course GPT
(``helpers/gpt.py``) is trained three ways on 32-character windows of the training plays:

- **causal** (GPT): every position predicts the next character from the ones before it.
- **masked** (BERT): a fraction of characters is replaced by a ``[MASK]`` token; every position
  sees every other (:func:`helpers.gpt.bidirectional_mask`) and the masked ones are predicted.
- **permutation** (XLNet, simplified): a random factorisation order; each character is predicted
  from the characters before it *in that order*, on both sides of it. Two streams, as in XLNet,
  laid side by side in one sequence of ``2T`` tokens with one mask (:func:`two_stream_mask`).

- **prefix** (a prefix LM, as in UniLM and T5): a random prefix per window is seen both ways
  (:func:`prefix_lm_mask`), the characters after it are predicted causally. An encoder-decoder's
  three masks, drawn as one, are the same mask (:func:`encoder_decoder_blocks`).

**Dialogue** (LaMDA-style) is not a family but a fine-tune of the pretrained causal model on
speech -> reply pairs from consecutive speakers (:func:`dialogue_pairs`), with a LoRA adapter
from notebook 11; :func:`shuffled_speeches` tests whether the replies depend on the speech, and
:func:`sample_and_rank` samples several replies and keeps the most likely.
"""

import random
import time
from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F

from helpers import data, experiments, gpt, training

OBJECTIVES = ("causal", "masked", "permutation")
PREFIX = "prefix"            # the prefix LM (T5's, UniLM's), trained by ``make_families.py --part prefix``
WINDOW = 32                  # characters per training window (the permutation model reads 2 x 32 tokens)
MASK_FRACTION = 0.15         # BERT's fraction of masked positions
# The small model of notebook 10 (2 blocks x 64), trained 3,000 steps of 16 windows for each objective.
TRAIN = training.TrainConfig(steps=3000, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=100,
                             weight_decay=0.1, beta2=0.99, grad_clip=1.0, eval_every=3000, eval_batches=1,
                             seed=1337)


def tokenizer_and_mask_id():
    """``(tokenizer, mask_id)``: notebook 10's character tokenizer (78 characters) and the id of the
    extra ``[MASK]`` token (78), which no text contains."""
    tok = experiments.tokenizer()
    return tok, tok.vocab_size


def make_model(seed: int = 1337) -> gpt.GPT:
    """A fresh small GPT (``experiments.MODEL``) whose vocabulary has room for ``[MASK]``."""
    tok, mask_id = tokenizer_and_mask_id()
    torch.manual_seed(seed)
    return gpt.GPT(gpt.GPTConfig(vocab_size=mask_id + 1, **experiments.MODEL))


# ---------------------------------------------------------------- masks and batches

def two_stream_mask(order) -> torch.Tensor:
    """The ``(2T, 2T)`` mask of XLNet's two streams for a factorisation ``order`` of ``0..T-1``.

    Tokens ``0..T-1`` are the **content** stream (the characters themselves); tokens ``T..2T-1``
    are the **query** stream (a ``[MASK]`` at each slot: "what goes at position ``i``?").
    Content ``i`` sees content ``j`` when ``j`` comes no later than ``i`` in the order
    (:func:`helpers.gpt.permutation_mask`). Query ``i`` sees content ``j`` only when ``j`` comes
    strictly earlier, so it never sees its own character, plus itself. Content never sees a
    query. The prediction for slot ``i`` is read at query ``i``.
    """
    content = gpt.permutation_mask(order)                     # (T, T): rank[j] <= rank[i]
    T = len(content)
    before = content & ~torch.eye(T, dtype=torch.bool)        # rank[j] < rank[i]
    top = torch.cat([content, torch.zeros(T, T, dtype=torch.bool)], dim=1)
    bottom = torch.cat([before, torch.eye(T, dtype=torch.bool)], dim=1)
    return torch.cat([top, bottom], dim=0)


def prefix_lm_mask(T: int, prefix: int) -> torch.Tensor:
    """The ``(T, T)`` mask of a prefix LM: the first ``prefix`` positions see one another both ways
    (like an encoder), every later position sees the whole prefix and, causally, the positions up
    to itself (like a decoder). ``mask[i, j] = j < prefix or j <= i``; ``prefix`` 0 or 1 gives the
    causal mask, ``prefix = T`` the bidirectional one."""
    if not 0 <= prefix <= T:
        raise ValueError(f"prefix must be between 0 and T = {T}, got {prefix}")
    j = torch.arange(T)
    return (j[None, :] < prefix) | gpt.causal_mask(T)


def encoder_decoder_blocks(source: int, target: int) -> dict:
    """The three attention masks of an encoder-decoder (Vaswani et al. 2017, T5) for ``source``
    input and ``target`` output tokens: ``"encoder"`` self-attention ``(S, S)``, all True (both
    ways); ``"decoder"`` self-attention ``(T, T)``, causal; ``"cross"`` attention ``(T, S)``, all
    True (every output token reads the whole encoded input), and ``"joint"``, the three drawn as one
    ``(S + T, S + T)`` mask (the encoder never reads the decoder). The joint mask equals
    :func:`prefix_lm_mask` ``(S + T, S)``: what differs is not the mask but the weights (two stacks)
    and that cross-attention reads the encoder's *last* layer."""
    encoder = torch.ones(source, source, dtype=torch.bool)
    decoder = gpt.causal_mask(target)
    cross = torch.ones(target, source, dtype=torch.bool)
    top = torch.cat([encoder, torch.zeros(source, target, dtype=torch.bool)], dim=1)
    joint = torch.cat([top, torch.cat([cross, decoder], dim=1)], dim=0)
    return {"encoder": encoder, "decoder": decoder, "cross": cross, "joint": joint}


def mask_tokens(x: torch.Tensor, mask_id: int, fraction: float = MASK_FRACTION, generator=None):
    """BERT's corruption: ``(inputs, targets)``. Each position of ``x`` ``(B, T)`` is chosen with
    probability ``fraction`` (default :data:`MASK_FRACTION`, BERT's 15%; at least one per row)
    and replaced by ``mask_id``; ``targets`` hold the original token there and ``-100``
    (ignored) elsewhere. (BERT replaces 80% of the chosen tokens by ``[MASK]``, 10% by a random
    token and leaves 10% unchanged; this keeps only the ``[MASK]`` case.)"""
    chosen = torch.rand(x.shape, generator=generator) < fraction
    rows_without = ~chosen.any(dim=1)
    if rows_without.any():
        cols = torch.randint(x.shape[1], (int(rows_without.sum()),), generator=generator)
        chosen[rows_without.nonzero().squeeze(1), cols] = True
    inputs = x.masked_fill(chosen, mask_id)
    targets = x.masked_fill(~chosen, -100)
    return inputs, targets


def batch(objective: str, ids: torch.Tensor, mask_id: int, batch_size: int = 16, generator=None,
          mask_fraction: float = MASK_FRACTION):
    """``(inputs, targets, attention mask)`` for one training step of ``objective`` (``mask_fraction``:
    the share of positions a masked batch hides)."""
    if objective not in OBJECTIVES + (PREFIX,):
        raise ValueError(f"objective must be one of {OBJECTIVES + (PREFIX,)}, got {objective!r}")
    x, y = training.random_batch(ids, batch_size, WINDOW, generator)          # (B, T) each
    if objective == "causal":
        return x, y, gpt.causal_mask(WINDOW)
    if objective == PREFIX:                     # a random prefix per window, seen both ways; loss after it
        prefixes = torch.randint(1, WINDOW, (batch_size,), generator=generator).tolist()
        for row, p in enumerate(prefixes):
            y[row, : p - 1] = -100              # position p - 1 predicts the first character after the prefix
        return x, y, torch.stack([prefix_lm_mask(WINDOW, p) for p in prefixes])
    if objective == "masked":
        inputs, targets = mask_tokens(x, mask_id, mask_fraction, generator=generator)
        return inputs, targets, gpt.bidirectional_mask(WINDOW)
    orders = [torch.randperm(WINDOW, generator=generator) for _ in range(batch_size)]
    inputs = torch.cat([x, torch.full_like(x, mask_id)], dim=1)                # content, then queries
    targets = torch.cat([torch.full_like(x, -100), x], dim=1)                  # predicted at the queries
    return inputs, targets, torch.stack([two_stream_mask(o) for o in orders])


def train_objective(objective: str, stop_after: int | None = None, on_eval=None,
                    mask_fraction: float = MASK_FRACTION):
    """Train a fresh small GPT with ``objective`` on the training plays (``TRAIN`` settings, by
    ``helpers.training.train``). Returns ``(model, history)``; ``history`` holds the mean training
    loss of every 50 steps. ``stop_after`` stops early (same schedule), so a short run repeats the
    start of the full one. ``on_eval(history)`` is called after every 50 steps. ``mask_fraction``:
    the share of positions the masked objective hides (notebook 12's Exercise 4 varies it)."""
    tok, mask_id = tokenizer_and_mask_id()
    config = replace(TRAIN, eval_every=50)
    ids = torch.tensor(tok.encode(data.corpus_text("train")))
    model, started = make_model(config.seed), time.perf_counter()
    history = training.train(
        model, ids, None, config, progress=False, stop_after=stop_after,
        make_batch=lambda generator: batch(objective, ids, mask_id, config.batch_size, generator,
                                           mask_fraction),
        measure=lambda losses: {"loss": round(sum(losses) / len(losses), 4)},
        on_eval=None if on_eval is None else lambda step, h: on_eval(dict(h)))
    history["seconds"] = round(time.perf_counter() - started, 1)
    return model, history


# ---------------------------------------------------------------- what each can do

@torch.no_grad()
def predict_blank(model, objective: str, x: torch.Tensor, position: int, mask_id: int,
                  right_context: bool = True) -> torch.Tensor:
    """The logits ``(B, vocab)`` each model gives for the character at ``position`` of the
    windows ``x`` ``(B, T)``, from the characters to its left and (``right_context=True``) to its
    right, where the objective lets it use them:

    - causal: reads ``x[:, :position]``, whatever ``right_context`` says;
    - masked: ``[MASK]`` at ``position``, bidirectional mask; without right context the window is
      cut after the blank;
    - permutation: the blank's query comes last in the order (it sees every other character),
      or, without right context, the order is left to right (it sees only the ones before it).
      The window is never cut: each query keeps the position embedding it was trained with.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not 1 <= position < x.shape[1]:
        raise ValueError(f"position must be between 1 and {x.shape[1] - 1}, got {position}")
    model.eval()
    if objective == "causal":
        return model(x[:, :position])[0][:, -1]
    blanked = x.clone()
    blanked[:, position] = mask_id
    if objective == "masked":
        if not right_context:
            blanked = blanked[:, : position + 1]
        return model(blanked, mask=gpt.bidirectional_mask(blanked.shape[1]))[0][:, position]
    T = x.shape[1]
    others = [p for p in range(T) if p != position]
    order = others + [position] if right_context else list(range(T))
    inputs = torch.cat([blanked, torch.full_like(x, mask_id)], dim=1)    # content, then one query per slot
    return model(inputs, mask=two_stream_mask(order))[0][:, T + position]


def blank_positions(n: int, T: int, seed: int = 0) -> list[int]:
    """One random position per window, from ``T // 4`` to ``3T // 4`` (the same for every model)."""
    rng = random.Random(seed)
    return [rng.randrange(T // 4, 3 * T // 4) for _ in range(n)]


def fill_in_accuracy(model, objective: str, windows: torch.Tensor, mask_id: int, right_context: bool = True,
                     seed: int = 0) -> float:
    """How often the model's most likely character is the hidden one, over ``windows`` ``(N, T)``,
    hiding one position per window (:func:`blank_positions`), with one forward pass per blank."""
    positions = blank_positions(len(windows), windows.shape[1], seed)
    correct = 0
    for position in sorted(set(positions)):
        rows = [i for i, p in enumerate(positions) if p == position]
        logits = predict_blank(model, objective, windows[rows], position, mask_id, right_context)
        correct += int((logits.argmax(-1) == windows[rows, position]).sum())
    return correct / len(windows)


def held_out_windows(n: int = 2000, seed: int = 0) -> torch.Tensor:
    """``n`` random ``WINDOW``-character windows of the validation plays, as ids ``(n, WINDOW)``."""
    tok, _ = tokenizer_and_mask_id()
    ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    return training.random_batch(ids, n, WINDOW, torch.Generator().manual_seed(seed))[0]


@torch.no_grad()
def continuation_loss(model, objective: str, prefix: int, n: int = 2000, seed: int = 0) -> float:
    """Mean loss (nats per character) on the characters after the first ``prefix`` of ``n``
    validation windows: the causal model reads them with its causal mask, the prefix LM with
    :func:`prefix_lm_mask` (it sees the prefix both ways). Same windows for both."""
    if objective not in ("causal", PREFIX):
        raise ValueError(f"objective must be 'causal' or {PREFIX!r}, got {objective!r}")
    tok, _ = tokenizer_and_mask_id()
    ids = torch.tensor(tok.encode(data.corpus_text("validation")))
    x, y = training.random_batch(ids, n, WINDOW, torch.Generator().manual_seed(seed))
    mask = prefix_lm_mask(WINDOW, prefix) if objective == PREFIX else gpt.causal_mask(WINDOW)
    model.eval()
    logits, _ = model(x, mask=mask)
    return F.cross_entropy(logits[:, prefix - 1:].flatten(0, 1), y[:, prefix - 1:].flatten()).item()


@torch.no_grad()
def rescore_accuracy(causal_model, windows: torch.Tensor, vocab_size: int, seed: int = 0) -> float:
    """A causal model can use the right-hand side too, at a price: put each of the ``vocab_size``
    characters in the blank, score the whole window's log-probability, keep the best. One forward
    pass per candidate (``vocab_size`` passes per blank) instead of one. Same blanks as
    :func:`fill_in_accuracy` given ``seed``."""
    positions = torch.tensor(blank_positions(len(windows), windows.shape[1], seed))
    correct = 0
    for start in range(0, len(windows), 16):                             # 16 windows x V candidates at a time
        rows, where = windows[start: start + 16], positions[start: start + 16]
        filled = rows.repeat_interleave(vocab_size, dim=0)               # (16 V, T): one row per candidate
        filled[torch.arange(len(filled)), where.repeat_interleave(vocab_size)] = torch.arange(vocab_size).repeat(len(rows))
        logits, _ = causal_model(filled[:, :-1])
        log_probs = F.log_softmax(logits, -1).gather(-1, filled[:, 1:, None]).squeeze(-1).sum(1)
        best = log_probs.view(len(rows), vocab_size).argmax(1)           # the best candidate per window
        correct += int((best == rows[torch.arange(len(rows)), where]).sum())
    return correct / len(windows)


@torch.no_grad()
def generate(model, objective: str, prompt_ids: list[int], new: int, mask_id: int, generator=None) -> list[int]:
    """Write ``new`` characters after ``prompt_ids``, one at a time, left to right (sampling,
    temperature 1), each model in the way its training allows: causal from the past; masked by
    appending a ``[MASK]`` and filling it (it was trained to see both sides, here it sees only
    one); permutation with the factorisation order ``0, 1, 2, ...`` (which is plain left-to-right
    prediction, one of the orders it was trained on). At most ``WINDOW`` characters in all."""
    ids = list(prompt_ids)
    if not ids or len(ids) + new > WINDOW:
        raise ValueError(f"prompt and new characters must fit in {WINDOW} and the prompt cannot be empty")
    for _ in range(new):
        x = torch.tensor([ids + [0] * (WINDOW - len(ids))])              # placeholders after the slot
        logits = predict_blank(model, objective, x, len(ids), mask_id, right_context=False)
        logits[:, mask_id] = float("-inf")                                # never write [MASK] itself
        ids.append(int(torch.multinomial(F.softmax(logits, -1), 1, generator=generator)))
    return ids


# ---------------------------------------------------------------- dialogue (LaMDA-style)

@dataclass(frozen=True)
class DialogueConfig:
    """The dialogue fine-tune's settings (notebook 12): pairs drawn, steps, batch, constant rate."""

    pairs: int = 3000          # training pairs drawn from the training plays
    eval_pairs: int = 200      # held-out pairs the reply loss is measured on
    steps: int = 600
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0
    max_length: int = 60       # characters, for the speech and for the reply


DIALOGUE = DialogueConfig()


def speeches(play) -> list[tuple[str, str]]:
    """``(speaker, speech)`` for every speech of ``play`` in order, the speech's lines joined by spaces."""
    out = []
    for block in play.text.strip().split("\n\n"):
        lines = block.split("\n")
        if len(lines) >= 2 and lines[0].endswith(":"):
            out.append((lines[0][:-1], " ".join(lines[1:])))
    return out


def dialogue_pairs(split: str, max_length: int = 60) -> list[tuple[str, str]]:
    """``(speech, reply)`` for every two consecutive speeches of the ``split`` plays (``"train"``
    or ``"held-out"``) by different speakers, each at most ``max_length`` characters."""
    from helpers import finetune

    pairs = []
    for play in finetune._plays(split):
        turns = speeches(play)
        for (a, speech), (b, reply) in zip(turns, turns[1:]):
            if a != b and len(speech) <= max_length and len(reply) <= max_length:
                pairs.append((speech, reply))
    return pairs


def dialogue_prompt(speech: str) -> str:
    """The dialogue format: ``"A: <speech>\\nB: "``; the model writes B's reply and a newline."""
    return f"A: {speech}\nB: "


def dialogue_data(config: DialogueConfig = DIALOGUE):
    """``(train_pairs, eval_pairs)``: random speech -> reply pairs from the training plays and
    from the held-out plays."""
    rng = random.Random(config.seed)
    train = dialogue_pairs("train", config.max_length)
    held_out = dialogue_pairs("held-out", config.max_length)
    return rng.sample(train, config.pairs), rng.sample(held_out, config.eval_pairs)


def train_dialogue(steps: int | None = None, on_eval=None, config: DialogueConfig = DIALOGUE):
    """LoRA-fine-tune the pretrained GPT to answer in the dialogue format (loss on the reply only),
    by ``helpers.training.fit``. Returns ``(model, tokenizer, history)``: the held-out reply loss
    every 100 steps (``on_eval(history)`` after each)."""
    from helpers import finetune

    steps = config.steps if steps is None else steps
    train_pairs, eval_pairs = dialogue_data(config)
    model, tok = finetune.prepare("lora", seed=config.seed)
    rng = random.Random(config.seed)
    history, started = {"step": [], "reply_loss": []}, time.perf_counter()

    def measure(step):
        history["step"].append(step)
        history["reply_loss"].append(round(finetune.answer_loss(model, tok, eval_pairs, dialogue_prompt), 4))
        if on_eval is not None:
            on_eval(dict(history))

    training.fit(model, lambda: finetune.answer_batch(tok, rng.sample(train_pairs, config.batch_size),
                                                      dialogue_prompt),
                 steps, config.lr, evaluate=measure, eval_at=range(0, steps + 1, 100))
    history["seconds"] = round(time.perf_counter() - started, 1)
    return model, tok, history


def shuffled_speeches(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same replies after the wrong speeches: reply ``i`` after speech ``i + 1`` (the last
    after the first), so no reply keeps its own speech and the format is unchanged."""
    return [(pairs[(i + 1) % len(pairs)][0], reply) for i, (_, reply) in enumerate(pairs)]


def play_prompt(speech: str) -> str:
    """The plays' own layout for a speech and the start of the next one (``"A:\\n<speech>\\n\\nB:\\n"``),
    as the pretrained model read them: the base model asked in its own format."""
    return f"A:\n{speech}\n\nB:\n"


@torch.no_grad()
def reply_scores(model, tok, pairs: list[tuple[str, str]], batch_size: int = 50,
                 make_prompt=dialogue_prompt) -> torch.Tensor:
    """``(len(pairs),)``: each reply's mean log-probability per character (its closing newline
    included) after ``make_prompt`` of its speech (default :func:`dialogue_prompt`), under
    ``model``. The score sample-and-rank sorts by; minus it is the reply's loss."""
    from helpers import finetune

    scores = []
    with training.evaluating(model):
        for i in range(0, len(pairs), batch_size):
            x, y = finetune.answer_batch(tok, pairs[i: i + batch_size], make_prompt)
            log_probs = -F.cross_entropy(model(x)[0].transpose(1, 2), y, ignore_index=-100, reduction="none")
            counted = y != -100                                              # (B, T): the reply's characters
            scores.append((log_probs * counted).sum(1) / counted.sum(1))
    return torch.cat(scores)


@torch.no_grad()
def sample_and_rank(model, tok, speech: str, n: int = 8, temperature: float = 1.0, seed: int = 0):
    """Sample-and-rank decoding (Meena, then LaMDA): sample ``n`` replies to ``speech``, score each
    and keep the best. Here the score is the model's own mean log-probability
    (:func:`reply_scores`; Meena ranked by likelihood, LaMDA by its own fine-tuned quality and
    safety ratings). Returns ``[(score, reply), ...]``, best first."""
    prompt = torch.tensor([tok.encode(dialogue_prompt(speech))]).repeat(n, 1)     # (n, P)
    new = min(70, model.config.block_size - 1 - prompt.shape[1])                  # prompt + reply fit the model
    with training.evaluating(model):
        out = model.generate(prompt, new, temperature=temperature, generator=torch.Generator().manual_seed(seed))
    replies = [tok.decode(row[prompt.shape[1]:].tolist()).split("\n")[0] for row in out]
    scores = reply_scores(model, tok, [(speech, r) for r in replies]).tolist()
    return sorted(zip(scores, replies), key=lambda pair: -pair[0])


# ---------------------------------------------------------------- the masks side by side (notebook 12's figures)

MASK_KINDS = ("causal (GPT)", "bidirectional (BERT)", "permutation (XLNet content)", "two streams (XLNet)",
              "prefix LM (T5, UniLM)", "encoder-decoder (2017, T5)")


def family_mask(kind: str, T: int, seed: int = 0):
    """``(mask, order)``: the attention mask of one of :data:`MASK_KINDS` for ``T`` positions, as a
    NumPy bool array (a two-stream mask is ``2T x 2T``); ``order`` is the factorisation order
    drawn with ``seed`` (``None`` for the others). The prefix LM's prefix, and the encoder-decoder's
    source (the encoder's input), is the first ``T // 2`` positions; the encoder-decoder's mask is
    its three blocks drawn as one (:func:`encoder_decoder_blocks`)."""
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    if kind == MASK_KINDS[4]:
        return prefix_lm_mask(T, T // 2).numpy(), None
    if kind == MASK_KINDS[5]:
        return encoder_decoder_blocks(T // 2, T - T // 2)["joint"].numpy(), None
    if kind == MASK_KINDS[0]:
        return gpt.causal_mask(T).numpy(), None
    if kind == MASK_KINDS[1]:
        return gpt.bidirectional_mask(T).numpy(), None
    order = torch.randperm(T, generator=torch.Generator().manual_seed(seed)).tolist()
    if kind == MASK_KINDS[2]:
        return gpt.permutation_mask(order).numpy(), order
    return two_stream_mask(order).numpy(), order


def sorted_by_order(mask, order):
    """``mask`` ``(T, T)`` with its rows and columns put in the factorisation ``order``: row ``k`` is
    the position whose turn is ``k``. A permutation mask becomes the causal (lower-triangular) mask."""
    order = list(order)
    return mask[order][:, order]
