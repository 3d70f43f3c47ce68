"""Generating text with a key/value cache, and scoring a model's next-token predictions (notebook
14_a_real_llm).

A language model writes one token at a time, and each new token attends to every token
before it. Without a cache, every step runs the whole sequence through the model again: step
``t`` costs ``t`` positions, and the time per token grows with the text. But the keys and
values of the earlier positions never change (a position sees only the past), so they can
be kept: with a **KV cache** each step runs only the one new token, whose query attends to
the stored keys and values. The time per token stays flat (attention over the cache grows,
but at these lengths it is small next to the matrix multiplies).

:class:`KVCache` holds the keys and values of every layer in tensors allocated once, for the
longest sequence asked for, and :func:`generate` uses it (or not, ``use_cache=False``, to show
that both give the same tokens). The model is a ``helpers.llama.Llama``: its attention calls
``cache.store`` and its forward ``cache.advance``. :func:`step_times` measures a step with and
without the cache at several context lengths.

:func:`next_token_distribution` is what sampling draws from (temperature, top-k), and
:func:`bits_per_character` a model's loss on a text in the one unit that compares models with
different tokenizers (the course GPT's characters, SmolLM2's 49,152 tokens).
"""

import math
import time

import torch
from torch.nn import functional as F

from helpers.gpt import next_token_probs, whole_number


class KVCache:
    """Keys and values for ``batch_size`` sequences of up to ``max_len`` positions, every layer.

    ``keys`` and ``values``: ``(n_layer, batch_size, n_kv_head, max_len, head_dim)``, allocated
    once; ``length`` positions of them are filled. Memory: ``helpers.llama.kv_cache_bytes``."""

    def __init__(self, config, max_len: int, batch_size: int = 1, dtype=torch.float32, device=None):
        whole_number(max_len, "max_len", 1)
        shape = (config.n_layer, batch_size, config.n_kv_head, max_len, config.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len, self.length = max_len, 0

    def store(self, layer: int, k, v):
        """Write the new keys and values ``(B, n_kv_head, T, head_dim)`` of ``layer`` after the ``length``
        stored ones; return all of that layer's so far, ``(B, n_kv_head, length + T, head_dim)``."""
        end = self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"the cache holds {self.max_len} positions; {end} do not fit. Make it larger.")
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Count ``n`` more positions as stored (the model calls this after its last layer)."""
        self.length += n


def next_token(logits, temperature=None, top_k=None, generator=None) -> int:
    """The next token from the last position's ``logits`` ``(V,)``: the most likely one when
    ``temperature`` is ``None`` (greedy: the same answer every time), else sampled from
    ``softmax(logits / temperature)`` cut to the ``top_k`` best."""
    if temperature is None:
        return int(logits.argmax())
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (or None for greedy decoding), got {temperature}")
    probs = next_token_probs(logits[None], float(temperature), top_k)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate(model, prompt, max_new_tokens: int, temperature=None, top_k=None, stop=(), generator=None,
             use_cache: bool = True, seconds=None) -> list[int]:
    """The new token ids after ``prompt`` (a list of ids): at most ``max_new_tokens``, ending early
    after a token in ``stop`` (which is included, as Hugging Face's ``generate`` does).

    ``temperature=None`` is greedy decoding; otherwise sampling (``top_k``, a seeded ``generator``
    to repeat it). ``use_cache=False`` reruns the whole sequence at each step instead: the same
    tokens, more slowly. ``seconds``: a list to which the time of each step is appended."""
    prompt = [int(i) for i in prompt]
    whole_number(max_new_tokens, "max_new_tokens", 0)
    if not prompt:
        raise ValueError("the prompt is empty: give at least one token id")
    if top_k is not None:
        top_k = whole_number(top_k, "top_k", 1, hint=" (or None for all tokens)")
    device = next(model.parameters()).device
    cache = KVCache(model.config, len(prompt) + max_new_tokens, device=device) if use_cache else None
    ids, new = torch.tensor([prompt], device=device), []
    feed = ids
    for _ in range(max_new_tokens):
        start = time.perf_counter()
        logits, _ = model(feed if use_cache else ids, cache=cache, last_only=True)
        token = next_token(logits[0, -1], temperature, top_k, generator)
        new.append(token)
        feed = torch.tensor([[token]], device=device)
        ids = torch.cat((ids, feed), dim=1)
        if seconds is not None:
            seconds.append(time.perf_counter() - start)
        if token in stop:
            break
    return new


@torch.no_grad()
def step_times(model, lengths, repeats: int = 3, seed: int = 0) -> dict[str, list[float]]:
    """Seconds for one generation step with ``L`` tokens of context, for each ``L`` in ``lengths``:
    ``{"without cache": [...], "with cache": [...]}``.

    Without a cache, a step is a pass over all ``L`` tokens (timed once: it is also the pass that
    fills the cache). With one, it is a pass over the one new token, attending to the ``L`` stored
    ones (median of ``repeats``, each writing the same cache slot). Random token ids (``seed``):
    the time does not depend on which tokens they are."""
    config, device = model.config, next(model.parameters()).device
    ids = torch.randint(0, config.vocab_size, (1, max(lengths) + 1), generator=torch.Generator().manual_seed(seed))
    ids = ids.to(device)
    times = {"without cache": [], "with cache": []}
    for L in lengths:
        cache = KVCache(config, L + 1, device=device)
        start = time.perf_counter()
        model(ids[:, :L], cache=cache, last_only=True)
        times["without cache"].append(time.perf_counter() - start)
        steps = []
        for _ in range(repeats):
            cache.length = L
            start = time.perf_counter()
            model(ids[:, L:L + 1], cache=cache, last_only=True)
            steps.append(time.perf_counter() - start)
        times["with cache"].append(sorted(steps)[len(steps) // 2])
    return times


def next_token_distribution(model, ids, temperature: float = 1.0, top_k=None) -> torch.Tensor:
    """``(V,)`` probabilities of the next token after ``ids`` (a list of ints), as sampling sees them:
    logits divided by ``temperature``, cut to the ``top_k`` best (``None`` = all)."""
    if top_k is not None:
        top_k = whole_number(top_k, "top_k", 1, hint=" (or None for all tokens)")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    with torch.no_grad():
        device = next(model.parameters()).device
        logits, _ = model(torch.tensor([[int(i) for i in ids]], device=device))    # a course GPT or a Llama
    return next_token_probs(logits[:, -1], float(temperature), top_k)[0].cpu()


def bits_per_character(model, ids, n_characters: int, window: int = 1024) -> float:
    """A model's loss on a text in **bits per character**: ``-log2 p`` of every token of ``ids``
    given the ones before it (all but the first, which has no context), added up and divided by
    the text's ``n_characters``. Models with different tokenizers cut the same text into
    different numbers of tokens; per character, their losses compare.

    One pass over the text when it fits in ``window`` tokens; otherwise windows of ``window``
    that overlap by half, each token scored once with at least ``window // 2`` tokens before it
    (for the course GPT, ``window`` at most ``block_size + 1``). Works for ``helpers.gpt.GPT``
    and ``helpers.llama.Llama`` alike (both return ``(logits, loss)``)."""
    ids = torch.tensor([int(i) for i in ids], dtype=torch.long, device=next(model.parameters()).device)
    if len(ids) < 2 or n_characters < 1:
        raise ValueError("give at least two token ids and a positive number of characters")
    nats, first = 0.0, 1                                  # first: the first token not yet scored
    with torch.no_grad():
        while first < len(ids):
            start = max(0, first - window // 2)
            end = min(len(ids), start + window)
            logits, _ = model(ids[None, start:end - 1])    # predicts tokens start + 1 .. end - 1
            logp = F.log_softmax(logits[0].double(), dim=-1)
            rows = torch.arange(first - start - 1, end - start - 1)
            nats -= float(logp[rows, ids[start + 1:end][rows]].sum())
            first = end
    return nats / math.log(2) / n_characters
