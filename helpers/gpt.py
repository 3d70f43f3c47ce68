"""A decoder-only GPT in one readable file (attention in notebook 07_attention, the whole model in
notebook 08_the_transformer; trained in 09, reused in 10-12).

The shape of the code follows the clearest public implementations (nanoGPT's ``model.py``):

    idx (B, T) token ids
      -> token embedding + learned position embedding       (B, T, C)
      -> n_layer x Block: x = x + Attention(LayerNorm(x))   (B, T, C)
                          x = x + MLP(LayerNorm(x))
      -> final LayerNorm -> language-model head              (B, T, vocab_size) logits

``B`` = batch, ``T`` = sequence length (at most ``block_size``), ``C`` = ``n_embd``.
Two things are switchable so later notebooks can reuse the same code:

* **attention**: ``use_sdpa=False`` runs the from-scratch path (scores ``Q K^T / sqrt(d_head)``,
  mask, softmax, ``weights @ V``); ``use_sdpa=True`` calls PyTorch's fused
  ``scaled_dot_product_attention``. Both compute the same numbers.
* **the mask**: causal by default, but ``forward`` takes any boolean mask (``True`` = may
  attend), e.g. :func:`bidirectional_mask` (BERT-style) or :func:`permutation_mask` (XLNet-style).

Notebook 08's experiments also build the **post-LayerNorm** block of the 2017 Transformer and GPT-1
(``GPT(config, norm="post")``, :class:`PostLNBlock`) and a model with **no positions**
(:func:`remove_positions`; :func:`shuffled_context_losses` tests whether a model uses word order).

**Where the model uses a fast kernel instead of the written-out piece** (same numbers, to
float32 round-off; ``tests/test_gpt.py`` and notebooks 07-08 check each pair): the layer norms
are :class:`FusedLayerNorm`, PyTorch's one-kernel ``F.layer_norm`` with the parameters of the
written-out :class:`LayerNorm` (nine kernels, and their backward, become one); with the causal
mask, attention takes ``scaled_dot_product_attention``'s causal path (``is_causal=True``, no mask
tensor); with ``dropout=0`` no dropout layer is called at all. Queries, keys and values keep
three separate matrices (``query``, ``key``, ``value``: what notebook 07 and LoRA in notebook 11
use): one stacked matmul, as nanoGPT does, measured no faster on the CPU (``bench/README.md``).
Generation reuses the keys and values of earlier positions (a **KV cache**) while the context
fits the model.
"""

import math
import numbers
import operator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from helpers.attention import attention_weights


def whole_number(value, name: str, minimum: int, hint: str = "", plain_int: bool = False) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name``: it must be a whole number (an
    int, or a NumPy or tensor integer; not ``2.0`` or ``True``) of at least ``minimum``.
    ``plain_int=True`` accepts Python ints only (for values stored in checkpoints)."""
    try:
        refused = isinstance(value, bool) or (plain_int and not isinstance(value, int))
        number = None if refused else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{name} must be at least {minimum}{hint} and a whole number (an int), got {value!r}")
    return number


@dataclass
class GPTConfig:
    """The architecture's knobs. Defaults: nanoGPT's small character-level CPU model."""

    vocab_size: int = 65    # number of distinct tokens
    block_size: int = 64    # longest context the model can see (number of position embeddings)
    n_layer: int = 4        # number of transformer blocks
    n_head: int = 4         # attention heads per block; n_embd must divide by n_head
    n_embd: int = 128       # C: the width of every token's vector
    dropout: float = 0.0    # dropout probability during training (0 = off)
    bias: bool = True       # biases in the Linear layers and LayerNorms
    use_sdpa: bool = True   # fused scaled_dot_product_attention (True) or the from-scratch path

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            whole_number(getattr(self, name), name, 1, plain_int=True)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        number = isinstance(self.dropout, numbers.Real) and not isinstance(self.dropout, bool)
        if not (number and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        for name in ("bias", "use_sdpa"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")


# ---------------------------------------------------------------- masks (True = may attend)

def causal_mask(T: int, device=None) -> torch.Tensor:
    """``(T, T)`` bool: position ``i`` may attend to positions ``j <= i`` (itself and the past)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def bidirectional_mask(T: int, device=None) -> torch.Tensor:
    """``(T, T)`` bool, all ``True``: every position sees every position (BERT-style)."""
    return torch.ones(T, T, dtype=torch.bool, device=device)


def permutation_mask(order, device=None) -> torch.Tensor:
    """``(T, T)`` bool for an XLNet-style factorisation ``order`` (a permutation of ``0..T-1``).

    ``order[k]`` is the k-th position in the factorisation order. Position ``i`` may attend to
    position ``j`` when ``j`` comes no later than ``i`` in that order, itself included (so no row
    is empty: the first position in the order sees only itself). The output at ``order[k]`` has
    seen the tokens at ``order[0..k]``: the causal mask in a shuffled order, and
    ``permutation_mask(range(T))`` equals ``causal_mask(T)``.
    """
    order = torch.as_tensor(list(order), dtype=torch.long)
    T = len(order)
    if T == 0 or not torch.equal(order.sort().values, torch.arange(T)):
        raise ValueError(f"order must be a permutation of 0..T-1, got {order.tolist()}")
    rank = torch.empty(T, dtype=torch.long)
    rank[order] = torch.arange(T)                    # rank[p] = when position p comes in the order
    return (rank[None, :] <= rank[:, None]).to(device)   # mask[i, j] = rank[j] <= rank[i]


def _check_mask(mask, B: int, T: int) -> torch.Tensor:
    """A clear error for a mask of the wrong type or shape; returns it ready to broadcast."""
    expected = f"(T, T) = ({T}, {T}) or (B, T, T) = ({B}, {T}, {T})"
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a torch.bool tensor of shape {expected} (True = may attend), got {kind}")
    if mask.shape not in ((T, T), (B, T, T), (1, T, T)):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {expected} for idx of shape ({B}, {T})")
    if not mask.any(dim=-1).all():
        raise ValueError("a row of the mask is all False: that position would attend to nothing "
                         "(a softmax over nothing is NaN); let every position attend at least to itself")
    return mask if mask.dim() == 2 else mask[:, None]    # (T, T) or (B, 1, T, T): same for every head


# ---------------------------------------------------------------- the pieces

class LayerNorm(nn.Module):
    """Layer normalisation written out (notebook 08): ``(x - mean) / sqrt(var + eps) * weight + bias``.

    Mean and (biased) variance are taken over the last dimension, each token on its own. Equals
    ``nn.LayerNorm(C)``; ``bias=False`` drops the additive term. Shapes: ``(..., C) -> (..., C)``.
    """

    def __init__(self, n_embd: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd)) if bias else None
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(var + self.eps) * self.weight
        return x + self.bias if self.bias is not None else x


class FusedLayerNorm(LayerNorm):
    """The same layer norm, with the same parameters, in one PyTorch kernel (``F.layer_norm``): what
    the model uses. It equals :class:`LayerNorm` to float32 round-off (tests/test_gpt.py, notebook
    08) and runs several times faster, forward and backward (``bench/bench_gpt.py``)."""

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


def dropout_layer(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or, when ``p`` is 0, a layer that does nothing (no call to dropout at all)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class SelfAttention(nn.Module):
    """Multi-head self-attention (notebook 07): each token asks a query, every token offers a key
    and a value; a token's output is the values weighted by softmax(query . key / sqrt(d_head)),
    over the positions its mask allows. ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.query = nn.Linear(C, C, bias=config.bias)
        self.key = nn.Linear(C, C, bias=config.bias)
        self.value = nn.Linear(C, C, bias=config.bias)
        self.proj = nn.Linear(C, C, bias=config.bias)   # mixes the heads' outputs back together
        self.attn_dropout = dropout_layer(config.dropout)
        self.resid_dropout = dropout_layer(config.dropout)
        self.n_head, self.dropout, self.use_sdpa = config.n_head, config.dropout, config.use_sdpa

    def forward(self, x, mask=None, return_attention: bool = False):
        """``mask``: bool ``(T, T)`` or ``(B, 1, T, T)``, or ``None`` for the causal mask (then
        the fused path runs PyTorch's causal kernel). Returns ``(y, weights)``; ``weights`` is
        ``(B, n_head, T, T)`` (rows sum to 1) when asked for, else ``None``."""
        B, T, C = x.shape
        q, k, v = self._heads(x)
        weights = None
        if self.use_sdpa and not return_attention:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=mask is None)
        else:
            mask = causal_mask(T, x.device) if mask is None else mask
            weights = attention_weights(q, k, mask)                   # (B, n_head, T, T), notebook 07
            y = self.attn_dropout(weights) @ v                        # (B, n_head, T, d_head)
        y = y.transpose(1, 2).contiguous().view(B, T, C)              # heads side by side again
        return self.resid_dropout(self.proj(y)), weights

    def _heads(self, x):
        """Queries, keys and values of ``x`` ``(B, T, C)``, each ``(B, n_head, T, d_head)``: every
        head works on its own slice of ``C``."""
        B, T, C = x.shape
        return (lin(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                for lin in (self.query, self.key, self.value))

    def forward_cached(self, x, cache):
        """Attention for ``t`` new tokens ``x`` ``(B, t, C)`` that follow ``P`` tokens whose keys and
        values are in ``cache`` (a pair of ``(B, n_head, P, d_head)``, or ``None`` when ``P = 0``).
        Returns ``(y (B, t, C), cache)`` with the new keys and values added: a token's key and
        value never change once computed, so generation computes each only once."""
        B, t, C = x.shape
        q, k, v = self._heads(x)
        if cache is not None:
            k, v = torch.cat((cache[0], k), dim=2), torch.cat((cache[1], v), dim=2)
        P = k.size(2) - t
        mask = causal_mask(P + t, x.device)[P:]              # (t, P + t): new token i sees 0..P+i
        if self.use_sdpa:                                    # (one new token may see every key: no mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if t == 1 else mask)
        else:
            y = attention_weights(q, k, mask) @ v
        return self.proj(y.transpose(1, 2).reshape(B, t, C)), (k, v)


class MLP(nn.Module):
    """Position-wise feed-forward net: widen 4x, GELU, narrow back. ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = dropout_layer(config.dropout)

    def forward(self, x):
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """One transformer block (pre-LayerNorm): attention then MLP, each added to a residual stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = FusedLayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = FusedLayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask=None, return_attention: bool = False):
        a, weights = self.attn(self.ln_1(x), mask, return_attention)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, weights

    def forward_cached(self, x, cache):
        """The block for new tokens only, the earlier ones' keys and values in ``cache``
        (:meth:`SelfAttention.forward_cached`); returns ``(x, cache)``."""
        a, cache = self.attn.forward_cached(self.ln_1(x), cache)
        x = x + a
        return x + self.mlp(self.ln_2(x)), cache


class PostLNBlock(Block):
    """The block in the order of the 2017 Transformer and GPT-1, **post**-LayerNorm: each
    sub-layer reads the stream as it is, and the sum is normalised after the residual addition,
    ``x = LN(x + Attention(x))``, ``x = LN(x + MLP(x))``. The same parameters as :class:`Block`;
    notebook 08 trains both (``GPT(config, norm="post")``). GPT-2 and later put the norm first."""

    def forward(self, x, mask=None, return_attention: bool = False):
        a, weights = self.attn(x, mask, return_attention)
        x = self.ln_1(x + a)
        return self.ln_2(x + self.mlp(x)), weights

    def forward_cached(self, x, cache):
        a, cache = self.attn.forward_cached(x, cache)
        x = self.ln_1(x + a)
        return self.ln_2(x + self.mlp(x)), cache


# ---------------------------------------------------------------- the model

class GPT(nn.Module):
    """The language model (notebook 08). The head's weights are **tied** to the token embedding:
    the same ``(vocab_size, C)`` matrix turns ids into vectors and vectors into logits.

    Initialisation as GPT-2: every Linear and Embedding weight ~ Normal(0, 0.02), biases 0,
    LayerNorms 1 and 0; the two projections that write into the residual stream in each block
    (``attn.proj``, ``mlp.proj``) get std ``0.02 / sqrt(2 * n_layer)`` so the stream's variance
    does not grow with depth.

    ``norm="post"`` builds the post-LayerNorm model of the 2017 Transformer and GPT-1
    (:class:`PostLNBlock`, no final LayerNorm) for notebook 08's comparison; checkpoints record
    only ``config``, so they hold pre-LN models. :func:`remove_positions` makes a model without
    position information.
    """

    def __init__(self, config: GPTConfig, norm: str = "pre"):
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f'norm must be "pre" (GPT-2 and later) or "post" (2017 Transformer, GPT-1), got {norm!r}')
        self.config, self.norm = config, norm
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.drop = dropout_layer(config.dropout)
        block = Block if norm == "pre" else PostLNBlock
        self.blocks = nn.ModuleList(block(config) for _ in range(config.n_layer))
        # post-LN already ends every block with a norm: no final one (as GPT-1)
        self.ln_f = FusedLayerNorm(config.n_embd, bias=config.bias) if norm == "pre" else nn.Identity()
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight          # tied: one matrix, two uses
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
            elif p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)                                      # (LayerNorm weights stay 1)

    def forward(self, idx, targets=None, mask=None):
        """``idx`` ``(B, T)`` int64 token ids, ``T <= block_size``.

        ``targets`` ``(B, T)``: the next token at each position; ``-100`` = ignore that position.
        ``mask``: bool ``(T, T)`` or ``(B, T, T)``, ``True`` = may attend (default: causal).
        Returns ``(logits (B, T, vocab_size), loss or None)``, always (as nanoGPT's model does);
        :meth:`attention_maps` gives the attention weights.
        Ids or targets of the wrong type, shape or range get a clear error, not PyTorch's.
        """
        hidden, _ = self._hidden(idx, mask, False)
        if targets is not None:
            _check_targets(targets, idx.shape, self.config.vocab_size)
        logits = self.lm_head(hidden)                                                # (B, T, V)
        loss = None
        if targets is not None:
            B, T = idx.shape
            loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T), ignore_index=-100)
        return logits, loss

    def attention_maps(self, idx, mask=None):
        """The attention weights of every layer and head, ``(n_layer, B, n_head, T, T)``, for ``idx``
        ``(B, T)`` (computed by the from-scratch path, so they can be drawn; notebook 07)."""
        return self._hidden(idx, mask, True)[1]

    def features(self, idx, mask=None):
        """The final hidden states ``(B, T, n_embd)``, after the last LayerNorm: what the head turns
        into logits, and what notebook 11 puts a classifier on."""
        return self._hidden(idx, mask, False)[0]

    def _check_ids(self, idx, start: int = 0) -> None:
        """A clear error unless ``idx`` ``(B, T)`` holds token ids that fit the model at positions
        ``start..start+T-1``."""
        _check_idx(idx)
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(f"sequence length T={start + T} must be between 1 and block_size="
                             f"{self.config.block_size}; crop idx to its last block_size tokens")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must be in 0..{self.config.vocab_size - 1} (vocab_size), "
                             f"got values from {int(idx.min())} to {int(idx.max())}")

    def _hidden(self, idx, mask, return_attention: bool):
        self._check_ids(idx)
        B, T = idx.shape
        if mask is not None:
            mask = _check_mask(mask, B, T).to(idx.device)
            if mask.dim() == 2 and torch.equal(mask, causal_mask(T, idx.device)):
                mask = None                          # the causal mask: attention's causal fast path

        positions = torch.arange(T, device=idx.device)
        x = self.drop(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        attention = []
        for block in self.blocks:
            x, weights = block(x, mask, return_attention)
            attention.append(weights)
        return self.ln_f(x), (torch.stack(attention) if return_attention else None)

    def _last_logits_cached(self, idx, start: int, caches: list):
        """``(logits (B, vocab_size) of the last position, caches)`` for the new tokens ``idx``
        ``(B, t)`` at positions ``start..start+t-1``, the keys and values of positions
        ``0..start-1`` of every block in ``caches`` (one entry per block; ``None`` when empty)."""
        self._check_ids(idx, start)
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)           # (B, t, C)
        new_caches = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block.forward_cached(x, cache)
            new_caches.append(cache)
        return self.lm_head(self.ln_f(x[:, -1])), new_caches

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, generator=None,
                 use_cache: bool = True):
        """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens -> ``(B, T + max_new_tokens)``.

        Each step feeds the last ``block_size`` tokens, divides the last position's logits by
        ``temperature`` (> 0; small = nearly greedy), keeps the ``top_k`` most likely tokens (if
        given; ``top_k=1`` is greedy decoding) and samples with ``generator`` (a seeded
        ``torch.Generator`` makes it repeatable). Call ``model.eval()`` first if dropout > 0.

        **KV cache** (``use_cache=True``, in eval mode or without dropout): while the text fits in
        ``block_size``, each step feeds only the new token and reuses the keys and values of the
        earlier ones, so a step costs the same however long the text is; once the window slides,
        every position moves (learned positions), all keys change, and each step recomputes the
        window as without the cache. Same tokens either way (to float round-off in the logits).

        A temperature so small that ``logits / temperature`` overflows (about ``1e-37`` or less in
        float32) samples from the limit of the softmax as the temperature goes to 0: the most
        likely token (ties shared equally), i.e. greedy decoding.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; for greedy decoding use top_k=1")
        if top_k is not None:
            top_k = whole_number(top_k, "top_k", 1, hint=" (or None for all tokens)")
        whole_number(max_new_tokens, "max_new_tokens", 0)
        _check_idx(idx)
        use_cache = use_cache and not (self.training and self.config.dropout > 0)
        caches, cached = [None] * len(self.blocks), 0        # keys and values of idx[:, :cached]
        for _ in range(max_new_tokens):
            if use_cache and idx.shape[1] <= self.config.block_size:
                logits, caches = self._last_logits_cached(idx[:, cached:], cached, caches)
                cached = idx.shape[1]
            else:
                logits = self(idx[:, -self.config.block_size:])[0][:, -1, :]
            probs = next_token_probs(logits, temperature, top_k)                    # (B, V)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)   # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
        return idx


def remove_positions(model: GPT) -> GPT:
    """``model`` with no position information ("NoPE", notebook 08): its position table set to
    zero and frozen (the optimiser skips a tensor without gradient), so a token's vector is its
    token embedding alone. Returns ``model``, changed in place."""
    with torch.no_grad():
        model.position_embedding.weight.zero_()
    model.position_embedding.weight.requires_grad_(False)
    return model


@torch.no_grad()
def shuffled_context_losses(model: GPT, ids: torch.Tensor, windows: int = 512, seed: int = 0) -> tuple[float, float]:
    """Does ``model`` use the order of its context (notebook 08)? ``(in order, shuffled)``: its
    loss (nats) on the token after each of ``windows`` random windows of ``ids`` (``block_size``
    tokens each, the same windows for a given ``seed``), read as they are, and with every token
    but the last shuffled (the last stays, so the bigram information is kept). A model that
    cannot see order scores the same both ways. Without positions, one causal layer cannot see
    it (it averages over a set); two can (each earlier position's vector then depends on what
    precedes it)."""
    generator = torch.Generator().manual_seed(seed)
    T = model.config.block_size
    starts = torch.randint(len(ids) - T, (windows,), generator=generator).tolist()
    x = torch.stack([ids[s: s + T] for s in starts])                                  # (windows, T)
    target = torch.stack([ids[s + T] for s in starts])                                # (windows,)
    shuffled = x.clone()
    for row in range(windows):
        shuffled[row, :-1] = x[row, torch.randperm(T - 1, generator=generator)]
    was_training = model.training
    model.eval()
    try:
        losses = tuple(F.cross_entropy(model(inputs)[0][:, -1], target).item() for inputs in (x, shuffled))
    finally:
        model.train(was_training)
    return losses


def _check_idx(idx) -> None:
    """A clear error unless ``idx`` is a non-empty int64 tensor of shape ``(B, T)``."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
        got = f"{idx.dtype} of shape {tuple(idx.shape)}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise TypeError(f"idx must be an int64 tensor of shape (B, T), e.g. torch.tensor([[1, 2, 3]]); got {got}")
    B, T = idx.shape
    if B == 0 or T == 0:
        raise ValueError(f"idx of shape ({B}, {T}) is empty: give at least one sequence (B >= 1) of at least "
                         "one token (T >= 1), e.g. torch.tensor([[0]])")


def _check_targets(targets, shape, vocab_size: int) -> None:
    """A clear error unless ``targets`` is an int64 tensor of ``idx``'s ``shape`` holding token ids
    (``0..vocab_size-1``) or ``-100`` (ignored)."""
    if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long:
        got = targets.dtype if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise TypeError(f"targets must be an int64 tensor of token ids, like idx; got {got}")
    if targets.shape != shape:
        raise ValueError(f"targets has shape {tuple(targets.shape)}, but idx has shape {tuple(shape)}: "
                         "there is one target (the next token) per position of idx")
    valid = (targets == -100) | ((targets >= 0) & (targets < vocab_size))
    if not valid.all():
        bad = int(targets[~valid][0])
        raise ValueError(f"targets must be token ids in 0..{vocab_size - 1} (vocab_size) or -100 (ignore this "
                         f"position); got {bad}")


def next_token_probs(logits, temperature: float, top_k) -> torch.Tensor:
    """``(B, V)`` sampling probabilities from the last position's ``logits``: divided by
    ``temperature``, cut to the ``top_k`` best, softmax. Rows where the division overflowed
    (a temperature near 0) get the limit instead: all the probability on the best token(s)."""
    if not torch.isfinite(logits).all():
        raise ValueError("the model's logits hold NaN or infinite values: its weights are broken "
                         "(a diverged training run, or a damaged checkpoint)")
    scaled = logits / temperature
    if top_k is not None:
        kth_best = torch.topk(scaled, min(top_k, scaled.size(-1))).values[:, [-1]]
        scaled = scaled.masked_fill(scaled < kth_best, float("-inf"))
    probs = F.softmax(scaled, dim=-1)
    too_cold = probs.isnan().any(dim=-1)                                # inf - inf inside the softmax
    if too_cold.any():
        best = logits[too_cold] == logits[too_cold].max(dim=-1, keepdim=True).values
        probs[too_cold] = best / best.sum(dim=-1, keepdim=True)
    return probs


# ---------------------------------------------------------------- sizes and costs (notebook 08)

def parameters_by_part(config: GPTConfig) -> dict[str, int]:
    """The model's parameters counted by part, in closed form (``C`` = n_embd, ``b`` = 1 with
    biases, else 0): token embedding ``V*C`` (shared with the head, so counted once), positions
    ``block_size*C``, and over the ``n_layer`` blocks attention ``4*C*C + 4*b*C`` each (query, key,
    value, proj), MLP ``8*C*C + 5*b*C`` each, and layer norms ``C + b*C`` each, two a block plus
    the final one. Notebook 08's size explorer draws these; they add up to :func:`count_parameters`.
    """
    C, b, L = config.n_embd, int(config.bias), config.n_layer
    return {"token embedding (= head)": config.vocab_size * C, "position embedding": config.block_size * C,
            "attention": L * (4 * C * C + 4 * b * C), "MLP": L * (8 * C * C + 5 * b * C),
            "layer norms": (2 * L + 1) * (C + b * C)}


def count_parameters(config: GPTConfig) -> int:
    """The model's parameter count in closed form: the sum of :func:`parameters_by_part`,

    token embedding ``V*C`` (shared with the head, so counted once) + positions ``block_size*C``
    + per block: attention ``4*C*C + 4*b*C`` (query, key, value, proj), MLP ``8*C*C + 5*b*C``,
    two LayerNorms ``2*(C + b*C)`` + final LayerNorm ``C + b*C``.
    Equals ``sum(p.numel() for p in GPT(config).parameters())``.
    """
    return sum(parameters_by_part(config).values())


def flops_per_token(config: GPTConfig, seq_len=None) -> int:
    """Training FLOPs (forward + backward) per token: ``6*N + 12*n_layer*n_embd*T``.

    The estimate of the PaLM paper's appendix B (also used by Chinchilla and nanoGPT): every
    parameter in a matrix multiply costs 2 FLOPs per token forward and 4 backward, hence
    ``6*N``; here ``N`` leaves out the position embeddings (a table look-up, no multiply) and
    counts the tied token matrix once, as the head. Attention's own multiplies (``Q K^T`` and
    ``weights @ V``, over ``T`` = ``seq_len`` positions, default ``block_size``) add
    ``2 * 2 * T * C`` per layer forward, times 3 for training. The causal mask's skipped half
    is counted anyway, as is customary; LayerNorm, softmax and GELU are left out.
    """
    T = config.block_size if seq_len is None else seq_len
    N = count_parameters(config) - config.block_size * config.n_embd
    return 6 * N + 12 * config.n_layer * config.n_embd * T
