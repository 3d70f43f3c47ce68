"""Scaled dot-product attention, from scratch (notebook 07_attention; used by ``helpers.gpt``).

Every token asks a **query**, every token offers a **key** and a **value**. A token's output is
an average of the values, weighted by how well its query matches each key:

    weights = softmax(Q K^T / sqrt(d_head))     over the positions the mask allows
    output  = weights V

Shapes: ``q`` ``(..., T_q, d)``, ``k`` ``(..., T_k, d)``, ``v`` ``(..., T_k, d_v)``; the leading
``...`` are batch and head dimensions. ``mask`` is boolean and broadcasts to ``(..., T_q, T_k)``:
``True`` = may attend. The result equals ``torch.nn.functional.scaled_dot_product_attention``.

:func:`look_back` and :func:`weight_on_latest` measure, from a model's attention maps, how far
back each head looks and how much of its weight lands on one kind of character (notebook 07
reads the shipped model's heads with them).
"""

import math

import torch
from torch.nn import functional as F


def attention_weights(q, k, mask=None, scale: bool = True):
    """``(..., T_q, T_k)`` weights, each row a probability distribution over the allowed keys.

    ``scale=False`` leaves out the division by ``sqrt(d)``: notebook 07 shows how that makes the
    softmax saturate (one weight near 1, the rest near 0) as the head size grows.
    """
    scores = q @ k.transpose(-2, -1)                                  # (..., T_q, T_k)
    if scale:
        scores = scores / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))             # forbidden -> weight exactly 0
    return F.softmax(scores, dim=-1)


def attention(q, k, v, mask=None, scale: bool = True):
    """``(output (..., T_q, d_v), weights (..., T_q, T_k))``: the weighted average of the values."""
    weights = attention_weights(q, k, mask, scale)
    return weights @ v, weights


def head_weights(model, idx, layer: int, head: int, scale: bool = True, causal: bool = True):
    """Where one head of a ``helpers.gpt.GPT`` attends, for the token ids ``idx`` ``(T,)``: ``(T, T)``.

    Runs the model up to ``layer``, takes that block's queries and keys for ``head`` and
    recomputes the weights, optionally without the ``sqrt(d_head)`` scaling or without the
    causal mask (a model trained with the mask never saw those: the toggles show what the
    mask and the scaling do, not what an unmasked model would learn).
    """
    from helpers import gpt

    T = len(idx)
    if not 1 <= T <= model.config.block_size:
        raise ValueError(f"give between 1 and block_size={model.config.block_size} token ids, got {T}")
    idx = torch.as_tensor(idx, dtype=torch.long)[None]                # (1, T)
    blocks = model.blocks
    if not 0 <= layer < len(blocks) or not 0 <= head < blocks[0].attn.n_head:
        raise ValueError(f"layer must be in 0..{len(blocks) - 1} and head in 0..{blocks[0].attn.n_head - 1}, "
                         f"got layer={layer}, head={head}")
    mask = gpt.causal_mask(T)
    with torch.no_grad():
        x = model.token_embedding(idx) + model.position_embedding(torch.arange(T))
        for block in blocks[:layer]:
            x, _ = block(x, mask)
        block = blocks[layer]
        h = block.ln_1(x)                                             # (1, T, C)
        n_head = block.attn.n_head
        d_head = h.size(-1) // n_head
        q = block.attn.query(h).view(T, n_head, d_head)[:, head]      # (T, d_head)
        k = block.attn.key(h).view(T, n_head, d_head)[:, head]
        return attention_weights(q, k, mask if causal else None, scale)


def look_back(maps, first_query: int = 0) -> torch.Tensor:
    """How far back each head looks: ``sum_j weight[i, j] * (i - j)``, the attention-weighted mean
    distance from a query to its keys, averaged over the batch and the queries ``i >= first_query``.
    ``maps``: ``(n_layer, B, n_head, T, T)`` (``GPT.attention_maps``) -> ``(n_layer, n_head)``."""
    T = maps.shape[-1]
    if not 0 <= first_query < T:
        raise ValueError(f"first_query must be in 0..{T - 1}, got {first_query}")
    distance = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).clamp(min=0).to(maps.dtype)
    return (maps[..., first_query:, :] * distance[first_query:]).sum(-1).mean(dim=(1, 3))


def latest(idx, token: int) -> torch.Tensor:
    """``(B, T)``: for every position of ``idx`` ``(B, T)``, the position of the latest ``token`` at
    or before it (``-1`` where there is none yet)."""
    T = idx.shape[-1]
    where = torch.where(idx == token, torch.arange(T), torch.full_like(idx, -1))
    return torch.cummax(where, dim=-1).values


def weight_on_latest(maps, idx, token: int, first_query: int = 0) -> torch.Tensor:
    """``(n_layer, n_head)``: the average weight each head puts on the latest ``token`` at or before
    the query (for ``token`` = a new line: the start of the current line), over the batch and the
    queries ``i >= first_query`` that have one. ``maps`` as in :func:`look_back`, ``idx`` ``(B, T)``."""
    last = latest(idx, token)[:, first_query:]                            # (B, T_q)
    found = last >= 0
    picked = maps[..., first_query:, :].gather(-1, last.clamp(min=0)[None, :, None, :, None].expand(
        maps.shape[0], -1, maps.shape[2], -1, 1)).squeeze(-1)            # (L, B, H, T_q)
    return (picked * found[None, :, None]).sum(dim=(1, 3)) / found.sum().clamp(min=1)
