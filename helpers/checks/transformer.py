"""Checkers of part 3, the transformer: notebooks 07_attention and 08_the_transformer."""

import functools

from helpers.checks.compare import compare_naming_slips
from helpers.checks.engine import Case, CheckResult, check_prediction, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 07: attention
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _shipped_block_input(layer: int, text: str):
    """``(weights, x)``: the shipped model's (``data/gpt_shakespeare.pt``) attention weights of block
    ``layer`` (``{"query.weight": (C, C), "query.bias": (C,), ...}``, float32) and that attention's
    input for ``text`` (the block's first layer norm of the stream, ``(1, T, C)``)."""
    import torch

    from helpers import checkpoints, data, paths, tokenizers

    model, _ = checkpoints.load_model(paths.DATA_DIR / "gpt_shakespeare.pt")
    tok = tokenizers.CharTokenizer(data.corpus_text("train"))
    idx = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        x = model.token_embedding(idx) + model.position_embedding(torch.arange(idx.shape[1]))
        for block in model.blocks[:layer]:
            x, _ = block(x)
        block = model.blocks[layer]
        weights = {name: value.clone() for name, value in block.attn.state_dict().items()}
        return weights, block.ln_1(x)


def _mha_module(weights, n_head: int, x):
    """What ``helpers.gpt.SelfAttention`` (from-scratch path, float64) gives for ``x`` with ``weights``."""
    import torch

    from helpers import gpt

    C = x.shape[-1]
    layer = gpt.SelfAttention(gpt.GPTConfig(n_embd=C, n_head=n_head, use_sdpa=False)).double()
    layer.load_state_dict({name: value.double() for name, value in weights.items()})
    with torch.no_grad():
        return layer(x.double())[0].numpy()


def _mha_slip(weights, n_head: int, x, scale="sqrt(d)", mask="before", split=True, merge=True, project=True,
              transpose=True, bias=True):
    """Multi-head causal self-attention written out (float64), with one part done wrong on request."""
    import torch

    B, T, C = x.shape
    d = C // n_head
    w = {name: value.double() for name, value in weights.items()}
    x = x.double()

    def linear(name, inputs):
        W = w[f"{name}.weight"]
        return inputs @ (W.T if transpose else W) + (w[f"{name}.bias"] if bias else 0.0)

    def heads(t):
        return t.view(B, T, n_head, d).transpose(1, 2) if split else t.reshape(B, n_head, T, d)

    q, k, v = (heads(linear(name, x)) for name in ("query", "key", "value"))
    scores = q @ k.transpose(-2, -1) / {"sqrt(d)": d ** 0.5, "none": 1.0, "sqrt(C)": C ** 0.5, "d": d}[scale]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "before":
        scores = scores.masked_fill(~allowed, float("-inf"))
    attention = torch.softmax(scores, dim=-1)
    if mask == "after":
        attention = attention * allowed
    y = attention @ v                                                     # (B, n_head, T, d)
    y = y.transpose(1, 2).reshape(B, T, C) if merge else y.reshape(B, T, C)
    return (linear("proj", y) if project else y).numpy()


_MHA_SLIPS = [({"scale": "none"}, "forgot to divide the scores by sqrt(d), the head size"),
              ({"scale": "sqrt(C)"}, "divided the scores by sqrt(C), the whole width; each head divides by "
                                     "the square root of its own size, d = C / n_head"),
              ({"scale": "d"}, "divided the scores by d instead of sqrt(d)"),
              ({"mask": "after"}, "applied the mask after the softmax (the rows no longer sum to 1): set the "
                                  "future's scores to -inf before it"),
              ({"mask": "none"}, "left out the causal mask: each position also attended to the future"),
              ({"merge": False}, "merged the heads wrongly: (B, n_head, T, d) must go back to (B, T, n_head, d) "
                                 "with transpose(1, 2) before the reshape to (B, T, C)"),
              ({"split": False}, "split the heads wrongly: view (B, T, C) as (B, T, n_head, d), then "
                                 "transpose(1, 2); a plain reshape to (B, n_head, T, d) mixes tokens"),
              ({"project": False}, "forgot the output projection (weights['proj.weight'] and 'proj.bias') "
                                   "that mixes the heads"),
              ({"transpose": False}, "multiplied by W instead of W.T: nn.Linear computes x @ W.T + b"),
              ({"bias": False}, "left out the biases (weights['query.bias'] and the others)")]


@checker
def multi_head_attention(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(x, weights, n_head)`` is multi-head causal self-attention
    ``(B, T, C) -> (B, T, C)`` with the shipped model's attention ``weights`` (a dict of ``nn.Linear``
    weights and biases for query, key, value and proj); it must equal ``helpers.gpt.SelfAttention``
    (from-scratch path, float64; notebook 07 shows that equals ``F.scaled_dot_product_attention``).
    The checker loads the weights itself."""
    import torch

    weights, line = _shipped_block_input(0, "KING RICHARD:\nWhat news, cousin?")
    _, later = _shipped_block_input(2, "MACBETH:\nIs this a dagger which I see")
    g = torch.Generator().manual_seed(7)
    examples = [(line, 4, "the shipped model's layer 0 on 'KING RICHARD:\\nWhat news, cousin?' (B = 1, T = 32, "
                          "4 heads)"),
                (torch.randn(2, 20, 192, generator=g), 4, "a hidden random batch x of shape (2, 20, 192), 4 heads"),
                (later, 8, "a hidden input read as 8 heads of size 24 (n_head = 8)"),
                (torch.randn(3, 1, 192, generator=g), 4, "a hidden batch of 3 one-token texts (T = 1)")]
    cases = []
    for x, n_head, label in examples:
        slips = [(_mha_slip(weights, n_head, x, **change), words) for change, words in _MHA_SLIPS]
        cases.append(Case((x.double(), {n: v.double() for n, v in weights.items()}, n_head),
                          _mha_module(weights, n_head, x), label, compare_naming_slips(slips, atol=1e-4, rtol=1e-4)))
    return run_checks("multi_head_attention", fn, cases, success=(
        f"all {len(cases)} checks passed: your attention equals the course model's SelfAttention on the shipped "
        "weights (and so PyTorch's scaled_dot_product_attention, as \"Many heads\" showed)."), hint=[
        "four linear maps (query, key, value, then the output projection) with this notebook's attention in "
        "between, for all heads at once: keep the head axis next to the batch axis.",
        "q = x @ weights['query.weight'].T + weights['query.bias'] is (B, T, C); .view(B, T, n_head, d)"
        ".transpose(1, 2) makes it (B, n_head, T, d). Scores (B, n_head, T, T) / sqrt(d), -inf above the "
        "diagonal, softmax over the last axis, times v.",
        "then y.transpose(1, 2).reshape(B, T, C) puts the heads side by side again, and "
        "y @ weights['proj.weight'].T + weights['proj.bias'] mixes them; d = C // n_head."])


def _causal_reference(q, k, v, fill=float("-inf"), scale="sqrt(d)", mask="before"):
    import torch

    T, d = q.shape[-2], q.shape[-1]
    scores = q.double() @ k.double().transpose(-2, -1) / {"sqrt(d)": d ** 0.5, "none": 1.0, "d": d}[scale]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "before":
        scores = scores.masked_fill(~allowed, fill)
    weights = torch.softmax(scores, dim=-1)
    if mask == "after":
        weights = weights * allowed
    return (weights @ v.double()).numpy()


@checker
def causal_attention(fn) -> CheckResult:
    """Checker for notebook 07 (find the bug): ``fn(q, k, v)`` is causal scaled dot-product attention
    ``(..., T, d), (..., T, d), (..., T, d_v) -> (..., T, d_v)``, as
    ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``."""
    import torch

    g = torch.Generator().manual_seed(11)
    examples = [((1, 6, 8), 1.0, "a hidden sequence of 6 tokens, head size 8"),
                ((2, 3, 10, 16), 1.0, "a hidden batch (2, 3 heads, 10 tokens, head size 16)"),
                ((5, 4), 8.0, "large queries and keys (scores near 100)"),
                ((1, 1, 4), 1.0, "a single token (T = 1)")]
    cases = []
    for shape, size, label in examples:
        q, k, v = (torch.randn(*shape, generator=g, dtype=torch.float64) * (size if i < 2 else 1.0) for i in range(3))
        expected = torch.nn.functional.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                                                    is_causal=True).numpy()
        slips = [(_causal_reference(q, k, v, fill=0.0), "kept the bug: your function still gives what the broken "
                                                        "code gives (a future score set to 0 is not hidden: "
                                                        "exp(0) = 1 still gives it weight)"),
                 (_causal_reference(q, k, v, mask="none"), "left out the mask: every position sees the future"),
                 (_causal_reference(q, k, v, mask="after"), "hid the future after the softmax, so the rows no "
                                                            "longer sum to 1"),
                 (_causal_reference(q, k, v, scale="none"), "forgot to divide the scores by sqrt(d)"),
                 (_causal_reference(q, k, v, scale="d"), "divided the scores by d instead of sqrt(d)")]
        cases.append(Case((q, k, v), expected, label, compare_naming_slips(slips, atol=1e-5, rtol=1e-4)))
    return run_checks("causal_attention", fn, cases, hint=[
        "the output at position 0 should be v at position 0 exactly (it may only see itself): is it?",
        "look at what the masked scores become. After the softmax, does a hidden future position get "
        "weight 0?",
        "masked_fill(~mask, 0.0) leaves exp(0) = 1 for every future position: fill with float('-inf')."])


def _zero_query_row():
    import torch

    from helpers import attention

    q, k = torch.zeros(10, 16), torch.randn(10, 16, generator=torch.Generator().manual_seed(0))
    return attention.attention_weights(q, k, torch.ones(10, 10, dtype=torch.bool).tril())[4]


@checker
def predict_zero_query_weight(fn) -> CheckResult:
    """Checker for notebook 07 (predict, then run): the weight a zero query at position 4 of a
    causal attention over 10 tokens gives each key it may see."""
    row = _zero_query_row()
    answer = round(float(row[0]), 6)
    why = ("A query of zeros scores 0 against every key, so the softmax cannot prefer any: the mask leaves "
           "positions 0 to 4, five keys, and each gets 1/5 = 0.2 (the five future keys get 0). Attention that "
           "has not learnt what to look for is an average of everything it may see.")
    return check_prediction("predict_zero_query_weight", fn, answer, why, rel=0.02, hint=[
        "what is the dot product of a vector of zeros with any key? What does a softmax do with equal scores?",
        "count the keys position 4 may see, itself included (positions start at 0)."])


# ---------------------------------------------------------------------------
# Notebook 08: the transformer
# ---------------------------------------------------------------------------

# --- notebook 08: the GPT forward written by the learner (build), a block (find the bug), a size (predict)

def _compare_briefly(slips, what: str, atol: float, rtol: float):
    """``compare_arrays`` within ``atol + rtol |expected|``; a wrong answer that is a known slip is told
    in one sentence ("returned logits that differ ...: it left out ..."), not by printing the arrays."""
    from helpers.checks.compare import compare_arrays, named_slip, nearly

    def compare(got, expected):
        problem = compare_arrays(got, expected, atol=atol, rtol=rtol)
        if problem is None:
            return None
        words = named_slip(got, expected, slips, nearly(atol, rtol))
        return f"returned {what} that differ from the expected ones: it {words}" if words else problem

    return compare


def _shipped_weights():
    """``(weights, config, characters)`` of the shipped model ``data/gpt_shakespeare.pt``: its tensors
    by name, float32 (``lm_head.weight`` is the token embedding, tied), its ``GPTConfig`` and its
    tokenizer's characters. Loaded once."""
    global _SHIPPED
    if _SHIPPED is None:
        from helpers import checkpoints
        from helpers.paths import DATA_DIR

        model, state = checkpoints.load_model(DATA_DIR / "gpt_shakespeare.pt")
        _SHIPPED = ({name: t.detach().clone() for name, t in model.state_dict().items()}, model.config,
                    state["tokenizer_chars"])
    return _SHIPPED


_SHIPPED = None


def gpt_reference(idx, weights, n_layer, n_head, post_ln=False, attention_residual=True, mlp_residual=True,
                  final_ln=True, activation="gelu", positions=True, causal=True):
    """The course GPT's logits ``(B, T, V)`` from ``weights`` (a state dict) written out with torch
    functions; the defaults give ``helpers.gpt.GPT``'s output, each switch one usual slip."""
    import torch
    import torch.nn.functional as F

    w = weights
    B, T = idx.shape
    C = w["token_embedding.weight"].shape[1]

    def norm(x, name):
        return F.layer_norm(x, (C,), w[name + ".weight"], w[name + ".bias"], 1e-5)

    def linear(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def heads(t):
        return t.view(B, T, n_head, C // n_head).transpose(1, 2)                # (B, n_head, T, d)

    act = {"gelu": F.gelu, "relu": F.relu, "tanh-gelu": lambda z: F.gelu(z, approximate="tanh")}[activation]
    with torch.no_grad():
        x = w["token_embedding.weight"][idx]
        if positions:
            x = x + w["position_embedding.weight"][:T]
        for i in range(n_layer):
            p = f"blocks.{i}."
            h = x if post_ln else norm(x, p + "ln_1")
            q, k, v = (heads(linear(h, p + "attn." + name)) for name in ("query", "key", "value"))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            a = linear(y.transpose(1, 2).reshape(B, T, C), p + "attn.proj")
            x = x + a if attention_residual else a
            if post_ln:
                x = norm(x, p + "ln_1")
            h = x if post_ln else norm(x, p + "ln_2")
            m = linear(act(linear(h, p + "mlp.fc")), p + "mlp.proj")
            x = x + m if mlp_residual else m
            if post_ln:
                x = norm(x, p + "ln_2")
        if final_ln:
            x = norm(x, "ln_f")
        return x @ w["token_embedding.weight"].T


GPT_FORWARD_SLIPS = {
    "post_ln": "normalised after each residual addition (post-LN, the 2017 order); the course GPT normalises "
               "each sub-layer's input: x = x + attention(LN(x)), then x = x + mlp(LN(x))",
    "attention_residual": "left out the residual around attention: x = x + attention(...), not x = attention(...)",
    "mlp_residual": "left out the residual around the MLP: x = x + mlp(...), not x = mlp(...)",
    "final_ln": "left out the final layer norm (ln_f) before the head",
    "relu": "used ReLU in the MLP; the course GPT uses GELU (F.gelu)",
    "tanh-gelu": "used GELU's tanh approximation; the course GPT uses the exact F.gelu",
    "positions": "did not add the position embeddings (the first T rows of position_embedding.weight)",
    "causal": "let every position attend to the future: the attention must be causal (is_causal=True)",
}


def _gpt_forward_slips(idx, weights, n_layer, n_head):
    changes = {"post_ln": dict(post_ln=True), "attention_residual": dict(attention_residual=False),
               "mlp_residual": dict(mlp_residual=False), "final_ln": dict(final_ln=False),
               "relu": dict(activation="relu"), "tanh-gelu": dict(activation="tanh-gelu"),
               "positions": dict(positions=False), "causal": dict(causal=False)}
    return [(gpt_reference(idx, weights, n_layer, n_head, **change).numpy(), GPT_FORWARD_SLIPS[key])
            for key, change in changes.items()]


def _random_weights(config, seed):
    """A small GPT's weights with every layer norm's gain and bias random too (so a forgotten norm shows)."""
    import torch

    from helpers import gpt

    torch.manual_seed(seed)
    model = gpt.GPT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("blocks.") or name.startswith("ln_f"):
                p.add_(torch.randn_like(p) * (0.3 if "ln" in name else 0.05))
    return model


def _logits(model, idx):
    import torch

    with torch.no_grad():
        return model(idx)[0].numpy()


@checker
def gpt_forward(fn) -> CheckResult:
    """Checker for notebook 08 (build): ``fn(idx, weights, n_layer, n_head)`` is the course GPT's forward
    pass written out (embeddings + positions, pre-LN blocks, final layer norm, tied head): the logits
    ``(B, T, V)`` of ``helpers.gpt.GPT`` with those weights, on the shipped model and a small random one."""
    import torch

    from helpers import gpt

    weights, config, chars = _shipped_weights()
    shipped = gpt.GPT(config)
    shipped.load_state_dict(weights)
    shipped.eval()
    rng = torch.Generator().manual_seed(8)
    romeo = torch.tensor([[chars.index(ch) for ch in "ROMEO:\n"]])
    small_config = gpt.GPTConfig(vocab_size=11, block_size=16, n_layer=3, n_head=2, n_embd=8)
    small = _random_weights(small_config, 8).eval()
    examples = [(romeo, shipped, "the shipped model on 'ROMEO:\\n'"),
                (torch.randint(0, config.vocab_size, (2, 40), generator=rng), shipped,
                 "the shipped model on a hidden batch of 2 sequences of 40 characters"),
                (torch.randint(0, config.vocab_size, (1, config.block_size), generator=rng), shipped,
                 "the shipped model on a whole context of 128 characters"),
                (torch.randint(0, 11, (3, 16), generator=rng), small,
                 "a hidden small GPT (3 blocks, 2 heads, width 8, random layer norms)")]
    cases = []
    for idx, model, label in examples:
        w = {name: t.detach().clone() for name, t in model.state_dict().items()}
        n_layer, n_head = model.config.n_layer, model.config.n_head
        slips = _gpt_forward_slips(idx, w, n_layer, n_head)
        cases.append(Case((idx, w, n_layer, n_head), _logits(model, idx), label,
                          _compare_briefly(slips, "logits", atol=2e-4, rtol=1e-4)))
    return run_checks("gpt_forward", fn, cases, hint=[
        "follow the plan at the top of the notebook: embeddings and positions, then each block, then the "
        "final norm and the head; every Linear is x @ W.T + b with the weights named as in "
        "model.state_dict().",
        "a block reads its input through a layer norm and ADDS what it computes to the stream: x = x + "
        "attention(LN(x)), then x = x + mlp(LN(x)); split q, k, v into n_head heads of size C // n_head "
        "and use F.scaled_dot_product_attention(q, k, v, is_causal=True).",
        "x = w['token_embedding.weight'][idx] + w['position_embedding.weight'][:T]; per block i: "
        "h = LN(x, ln_1); q, k, v = linear(h, attn.query/key/value) as (B, n_head, T, C // n_head); "
        "y = sdpa(q, k, v, is_causal=True); x = x + linear(y merged back to (B, T, C), attn.proj); "
        "x = x + linear(F.gelu(linear(LN(x, ln_2), mlp.fc)), mlp.proj); finally LN(x, ln_f) @ "
        "w['token_embedding.weight'].T."])


def _block_reference(x, block, broken=False, post_ln=False):
    import torch

    with torch.no_grad():
        if post_ln:
            x = block.ln_1(x + block.attn(x)[0])
            return (block.ln_2(x + block.mlp(x))).numpy()
        h = block.ln_1(x)
        x = (h if broken else x) + block.attn(h)[0]
        return (x + block.mlp(block.ln_2(x))).numpy()


def _checked_block(block, config):
    """A copy of ``block`` (a ``gpt.Block``) that compares equal to another with the same weights, so
    the engine can tell whether the learner's function changed it."""
    import torch

    from helpers import gpt

    class CheckedBlock(gpt.Block):
        def __eq__(self, other):
            mine, theirs = self.state_dict(), getattr(other, "state_dict", dict)()
            return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)

        __hash__ = gpt.Block.__hash__

    copy = CheckedBlock(config)
    copy.load_state_dict(block.state_dict())
    return copy.eval().requires_grad_(False)


@checker
def block_forward(fn) -> CheckResult:
    """Checker for notebook 08 (find the bug): ``fn(x, block)`` is ``helpers.gpt.Block``'s output for the
    stream ``x`` ``(B, T, C)``: ``x + attention(LN(x))``, then ``+ mlp(LN(.))``, with ``block``'s own layers."""
    import torch

    from helpers import gpt

    weights, config, _ = _shipped_weights()
    shipped = gpt.GPT(config)
    shipped.load_state_dict(weights)
    shipped.eval()
    rng = torch.Generator().manual_seed(9)
    with torch.no_grad():
        idx = torch.randint(0, config.vocab_size, (2, 24), generator=rng)
        stream = shipped.token_embedding(idx) + shipped.position_embedding(torch.arange(24))
        after_two = shipped.blocks[1](shipped.blocks[0](stream)[0])[0]
    small = _random_weights(gpt.GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=8), 9).eval()
    examples = [(stream, shipped.blocks[0], "block 0 of the shipped model, on 2 embedded sequences of 24 "
                                            "characters"),
                (after_two, shipped.blocks[2], "block 2 of the shipped model, on what blocks 0 and 1 made"),
                (torch.randn(3, 8, 8, generator=rng) * 3, small.blocks[0],
                 "a hidden small block (width 8, 2 heads, random layer norms)")]
    cases = []
    for x, block, label in examples:
        block = _checked_block(block, config if block is not small.blocks[0] else small.config)
        slips = [(_block_reference(x, block, broken=True), "still gives what the broken code gives: which vector "
                  "does the residual connection add attention's output to, the stream or its normalised copy?"),
                 (_block_reference(x, block, post_ln=True), "normalised after the residual addition (post-LN); "
                  "this block normalises each sub-layer's input")]
        cases.append(Case((x, block), _block_reference(x, block), label,
                          _compare_briefly(slips, "outputs", atol=1e-4, rtol=1e-4)))
    return run_checks("block_forward", fn, cases, hint=[
        "the function runs and returns the right shape; compare what each line adds to what the residual "
        "stream is.",
        "h = block.ln_1(x) is a normalised copy for attention to read, and the stream itself is x: "
        "the broken line puts the normalised copy into the stream, a little like post-LN.",
        "x = x + block.attn(h)[0], not h + block.attn(h)[0]; the MLP line is already right."])


WIDER_PARAMETERS = 3_195_904      # the notebook's GPT (4 blocks, width 128, context 64, 78 characters) at width 256


@checker
def predict_wider_parameters(fn) -> CheckResult:
    """Checker for notebook 08 (predict, then run): ``fn()`` is a guess, within 10%, of the parameters of the
    notebook's GPT with its width doubled from 128 to 256."""
    from helpers import gpt

    answer = gpt.count_parameters(gpt.GPTConfig(vocab_size=78, block_size=64, n_layer=4, n_head=4, n_embd=256))
    assert answer == WIDER_PARAMETERS
    return check_prediction(
        "predict_wider_parameters", fn, answer,
        "Almost all parameters sit in C x C matrices (12 C^2 a block), so doubling C multiplies them by 4: "
        "811,520 becomes about 3.2 million (3.94 times); the embeddings, V C and block_size C, only double.",
        rel=0.1, hint=["which parts of the count grow with C, and which with C squared?",
                       "a block holds 12 C^2 + 13 C parameters; the embeddings (78 + 64) x C.",
                       "4 blocks x (12 x 256^2 + 13 x 256) + (78 + 64) x 256 + 2 x 256: about 3.2 million."])


# ---------------------------------------------------------------------------
