"""Feeding a language model from the corpus (notebook 07_attention uses it for a few seconds of
training; notebook 08_the_transformer explains it).

A language model learns from **windows** of text: ``block_size`` tokens in, the same window
shifted by one token as the targets, so every position is a next-token prediction:

    text     T  o     b  e  ,
    x        T  o  ␣  b  e        (block_size = 5)
    y        o  ␣  b  e  ,        y[t] = the token after x[t]

A batch is ``batch_size`` such windows starting at random places: ``x`` and ``y`` are ``(B, T)``.
"""

import torch


def random_batch(ids: torch.Tensor, batch_size: int, block_size: int, generator=None):
    """``(x, y)``, each ``(batch_size, block_size)`` int64: random windows of ``ids`` and their next tokens."""
    if len(ids) <= block_size:
        raise ValueError(f"the text has {len(ids)} tokens, too few for windows of block_size={block_size} "
                         "plus one target token")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    x = torch.stack([ids[s: s + block_size] for s in starts.tolist()])
    y = torch.stack([ids[s + 1: s + block_size + 1] for s in starts.tolist()])
    return x, y


@torch.no_grad()
def estimate_loss(model, ids: torch.Tensor, batch_size: int = 32, batches: int = 20, seed: int = 1234) -> float:
    """Mean cross-entropy (nats per token) of ``model`` on ``batches`` random batches of ``ids``.

    The windows come from a generator seeded with ``seed``: every call scores the same windows,
    so two models (or one model before and after training) are compared on the same text.
    The model is put in eval mode for the measurement and back in the mode it was in.
    """
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    losses = []
    for _ in range(batches):
        x, y = random_batch(ids, batch_size, model.config.block_size, generator)
        losses.append(model(x, y)[1].item())
    model.train(was_training)
    return sum(losses) / len(losses)
