"""Scaled dot-product attention, from scratch (notebook 07_attention; used by ``helpers.gpt``).

Every token asks a **query**, every token offers a **key** and a **value**. A token's output is
an average of the values, weighted by how well its query matches each key:

    weights = softmax(Q K^T / sqrt(d_head))     over the positions the mask allows
    output  = weights V

Shapes: ``q`` ``(..., T_q, d)``, ``k`` ``(..., T_k, d)``, ``v`` ``(..., T_k, d_v)``; the leading
``...`` are batch and head dimensions. ``mask`` is boolean and broadcasts to ``(..., T_q, T_k)``:
``True`` = may attend. The result equals ``torch.nn.functional.scaled_dot_product_attention``.
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
