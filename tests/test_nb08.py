"""Notebook 08: the transformer's sizes and costs, batches, the size explorer and the checkers."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, gpt, plots, training, widgets
from checker_cases import assert_redraws, checker_tests, stub


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.sampled_from([1, 2, 4]), st.sampled_from([4, 8, 16]), st.integers(1, 40), st.integers(2, 300))
def test_model_size_parts_add_up_to_the_real_model(n_layer, n_head, width, block_size, vocab_size):
    n_embd = n_head * width
    size = plots.model_size(n_layer, n_head, n_embd, block_size, vocab_size)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                                  n_embd=n_embd))
    assert size["total"] == sum(p.numel() for p in model.parameters())
    assert size["parts"]["MLP"] == sum(p.numel() for n, p in model.named_parameters() if ".mlp." in n)
    assert size["training_bytes"] == 4 * size["inference_bytes"] == 16 * size["total"]


@pytest.mark.parametrize("knobs", [dict(), dict(n_layer=48, n_head=32, n_embd=2048, block_size=4096, vocab_size=100_000),
                                   dict(n_layer=1, n_head=1, n_embd=16, block_size=8, vocab_size=2),
                                   dict(n_head=3, n_embd=128)])
def test_size_explorer_figure_at_extremes(knobs):
    fig = plots.make_size_explorer(**knobs)
    title = fig.axes[0].get_title()
    if knobs.get("n_head") == 3:
        assert "not a valid architecture" in title
        assert "not divisible" in fig.axes[0].texts[0].get_text()
    else:
        assert "parameters" in title and "FLOPs per token" in title
    plt.close(fig)


def test_size_explorer_redraws():
    explorer = widgets.Explorer(plots.make_size_explorer, {"n_layer": widgets.slider(4, 1, 48),
                                                           "n_embd": widgets.slider(128, 16, 2048, step=16)})
    assert_redraws(explorer, [("n_layer", 12), ("n_embd", 768)])


@given(st.integers(1, 8), st.integers(1, 20), st.integers(0, 2**31))
def test_random_batch_targets_are_the_inputs_shifted_by_one(batch_size, block_size, seed):
    ids = torch.arange(100) * 7 % 31
    x, y = training.random_batch(ids, batch_size, block_size, torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch_size, block_size) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    starts = [int(np.flatnonzero([torch.equal(ids[s:s + block_size], row) for s in range(100 - block_size)])[0])
              for row in x]
    assert all(torch.equal(ids[s + 1: s + block_size + 1], row) for s, row in zip(starts, y))


def test_random_batch_and_estimate_loss_edge_cases():
    with pytest.raises(ValueError, match="too few"):
        training.random_batch(torch.arange(5), 2, 5)
    ids = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(0))
    model = gpt.GPT(gpt.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.1))
    model.train()
    first = training.estimate_loss(model, ids, batch_size=4, batches=3)
    assert model.training                                      # the mode is restored
    assert training.estimate_loss(model, ids, batch_size=4, batches=3) == first   # same windows, no dropout
    assert abs(first - np.log(10)) < 0.2


# --- notebook 08's exercises: the GPT forward (build), a block (find the bug), a size (predict) ------

import torch.nn.functional as F  # noqa: E402

from helpers.checks import transformer as transformer_checks  # noqa: E402


def gpt_forward(idx, w, n_layer, n_head, post_ln=False, attention_residual=True, mlp_residual=True,
                final_ln=True, act=F.gelu, positions=True, causal=True, dtype=torch.float32):
    """The GPT forward written out as a learner would, with switches for the slips."""
    w = {k: v.to(dtype) for k, v in w.items()}
    B, T = idx.shape
    x = w["token_embedding.weight"][idx] + (w["position_embedding.weight"][:T] if positions else 0)
    C = x.shape[-1]

    def norm(x, name):
        mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + 1e-5) * w[name + ".weight"] + w[name + ".bias"]

    def linear(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def heads(t):
        return t.view(B, T, n_head, C // n_head).transpose(1, 2)

    for i in range(n_layer):
        p = f"blocks.{i}."
        h = x if post_ln else norm(x, p + "ln_1")
        q, k, v = (heads(linear(h, p + "attn." + name)) for name in ("query", "key", "value"))
        scores = q @ k.transpose(-2, -1) / (C // n_head) ** 0.5
        if causal:
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        a = linear(y.transpose(1, 2).reshape(B, T, C), p + "attn.proj")
        x = x + a if attention_residual else a
        x = norm(x, p + "ln_1") if post_ln else x
        m = linear(act(linear(x if post_ln else norm(x, p + "ln_2"), p + "mlp.fc")), p + "mlp.proj")
        x = x + m if mlp_residual else m
        x = norm(x, p + "ln_2") if post_ln else x
    x = norm(x, "ln_f") if final_ln else x
    return x @ w["token_embedding.weight"].T


def gpt_forward_sdpa(idx, w, n_layer, n_head):
    """The model solution: F.layer_norm and F.scaled_dot_product_attention."""
    B, T = idx.shape
    x = w["token_embedding.weight"][idx] + w["position_embedding.weight"][:T]
    C = x.shape[-1]
    for i in range(n_layer):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        q, k, v = (F.linear(h, w[f"{p}attn.{n}.weight"], w[f"{p}attn.{n}.bias"]).view(B, T, n_head, -1).transpose(1, 2)
                   for n in ("query", "key", "value"))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"])
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        x = x + F.linear(F.gelu(F.linear(h, w[p + "mlp.fc.weight"], w[p + "mlp.fc.bias"])), w[p + "mlp.proj.weight"],
                         w[p + "mlp.proj.bias"])
    return F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"]) @ w["lm_head.weight"].T


def gpt_forward_hard_coded(idx, w, n_layer, n_head):
    """Right on the visible example only: the shipped model's logits for 'ROMEO:\\n', whatever it is given."""
    weights, config, chars = transformer_checks._shipped_weights()
    model = gpt.GPT(config)
    model.load_state_dict(weights)
    with torch.no_grad():
        return model.eval()(torch.tensor([[chars.index(c) for c in "ROMEO:\n"]]))[0]


def block_right(x, block):
    x = x + block.attn(block.ln_1(x))[0]
    return x + block.mlp(block.ln_2(x))


def block_broken(x, block):                       # the code the notebook gives
    h = block.ln_1(x)
    x = h + block.attn(h)[0]
    x = x + block.mlp(block.ln_2(x))
    return x


def block_post_ln(x, block):
    x = block.ln_1(x + block.attn(x)[0])
    return block.ln_2(x + block.mlp(x))


RIGHT_08 = [(checks.gpt_forward, gpt_forward), (checks.gpt_forward, gpt_forward_sdpa),
            (checks.gpt_forward, lambda *a: gpt_forward(*a, dtype=torch.float64)),
            (checks.gpt_forward, lambda *a: gpt_forward(*a).tolist()),
            (checks.block_forward, block_right), (checks.block_forward, lambda x, b: b(x)[0].numpy()),
            (checks.predict_wider_parameters, lambda: 3_195_904), (checks.predict_wider_parameters, lambda: 3.2e6)]

BROKEN_08 = [
    (checks.gpt_forward, lambda *a: gpt_forward(*a, post_ln=True), "post-LN"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, attention_residual=False), "residual around attention"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, mlp_residual=False), "residual around the MLP"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, final_ln=False), "final layer norm"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, act=F.relu), "ReLU"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, act=lambda z: F.gelu(z, approximate="tanh")), "tanh"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, positions=False), "position embeddings"),
    (checks.gpt_forward, lambda *a: gpt_forward(*a, causal=False), "causal"),
    (checks.gpt_forward, gpt_forward_hard_coded, "hidden batch"),
    (checks.gpt_forward, stub, "not implemented yet"),
    (checks.block_forward, block_broken, "still gives what the broken code gives"),
    (checks.block_forward, block_post_ln, "post-LN"),
    (checks.block_forward, lambda x, b: b.attn(b.ln_1(x))[0], "expected"),
    (checks.block_forward, stub, "not implemented yet"),
    (checks.predict_wider_parameters, lambda: 2 * 811_520, "the answer is 3195904"),
    (checks.predict_wider_parameters, lambda: "four times", "not a number"),
]

test_right_08_answers_pass, test_broken_08_answers_rejected = checker_tests(RIGHT_08, BROKEN_08)


def test_gpt_reference_is_the_model():
    """The checker's written-out reference equals helpers.gpt's logits, pre-LN and post-LN."""
    torch.manual_seed(3)
    for norm in ("pre", "post"):
        model = gpt.GPT(gpt.GPTConfig(vocab_size=9, block_size=10, n_layer=3, n_head=2, n_embd=8), norm=norm).eval()
        w = model.state_dict()
        idx = torch.randint(0, 9, (2, 10))
        ours = transformer_checks.gpt_reference(idx, w, 3, 2, post_ln=norm == "post", final_ln=norm == "pre")
        torch.testing.assert_close(ours, model(idx)[0].detach(), atol=1e-5, rtol=0)


def test_remove_positions_and_the_order_test():
    """No positions: one causal layer cannot see the order of the context, two can."""
    ids = torch.randint(0, 12, (400,), generator=torch.Generator().manual_seed(0))
    losses = {}
    for n_layer in (1, 2):
        torch.manual_seed(0)
        model = gpt.remove_positions(gpt.GPT(gpt.GPTConfig(vocab_size=12, block_size=16, n_layer=n_layer, n_head=2,
                                                            n_embd=16)))
        assert not model.position_embedding.weight.requires_grad and not model.position_embedding.weight.any()
        with torch.no_grad():                         # make the weights large enough for order to show
            for p in model.parameters():
                if p.dim() == 2 and p.requires_grad:
                    p.mul_(20)
        losses[n_layer] = gpt.shuffled_context_losses(model, ids, windows=64)
    assert abs(losses[1][0] - losses[1][1]) < 1e-4
    assert abs(losses[2][0] - losses[2][1]) > 1e-3


def test_post_ln_model_trains_and_generates():
    torch.manual_seed(0)
    config = gpt.GPTConfig(vocab_size=7, block_size=8, n_layer=2, n_head=2, n_embd=8)
    post = gpt.GPT(config, norm="post")
    assert isinstance(post.blocks[0], gpt.PostLNBlock) and isinstance(post.ln_f, torch.nn.Identity)
    assert gpt.count_parameters(config) - sum(p.numel() for p in post.parameters()) == 2 * 8   # no final norm
    out = post.eval().generate(torch.tensor([[1, 2]]), 10, generator=torch.Generator().manual_seed(0))
    again = post.generate(torch.tensor([[1, 2]]), 10, generator=torch.Generator().manual_seed(0), use_cache=False)
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match="norm must be"):
        gpt.GPT(config, norm="middle")


def _architecture():
    import json

    from helpers.paths import DATA_DIR
    return json.loads((DATA_DIR / "architecture.json").read_text(encoding="utf-8"))


def test_architecture_file_holds_the_plan():
    """data/architecture.json holds every run of scripts/make_architecture.py with its settings."""
    from dataclasses import asdict

    from scripts import make_architecture as make

    record = _architecture()
    positions, norm = record["positions"], record["norm"]
    assert positions["model"] == make.POSITIONS_MODEL and positions["train"] == asdict(make.POSITIONS_TRAIN)
    assert set(positions["runs"]) == {"learned", "none"}
    assert all(run["history"]["step"] == list(range(100, 1201, 100)) for run in positions["runs"].values())
    assert norm["train"] == asdict(make.NORM_TRAIN) and norm["width"] == make.NORM_WIDTH
    assert set(norm["runs"]) == set(make.NORM_RUNS) and norm["live_check"] in norm["runs"]
    for name, (n_layer, kind, warmup, lr) in make.NORM_RUNS.items():
        run = norm["runs"][name]
        assert (run["n_layer"], run["norm"], run["warmup_steps"], run["lr"]) == (n_layer, kind, warmup, lr)
    assert "make_architecture.py" in positions["provenance"]["command"]
    assert "make_architecture.py" in norm["provenance"]["command"]


def test_architecture_figures():
    import json

    from helpers.paths import DATA_DIR

    record = _architecture()
    sweeps = json.loads((DATA_DIR / "sweeps.json").read_text(encoding="utf-8"))
    compute = json.loads((DATA_DIR / "sweeps_compute.json").read_text(encoding="utf-8"))["runs"]
    for fig in (plots.make_positions_experiment(record["positions"]),
                plots.make_norm_experiment(record["norm"], unigram=3.31), plots.make_fair_race(sweeps)):
        assert fig.axes and any(ax.lines or ax.patches for ax in fig.axes)
        plt.close(fig)
    fig = plots.make_fair_race(sweeps, compute=compute)
    stars = [line for line in fig.axes[1].lines if line.get_marker() == "*" and len(line.get_xdata())]
    assert sorted(float(line.get_ydata()[0]) for line in stars) == sorted(run["history"]["val"][-1]
                                                                      for run in compute.values())
    assert "one 1,200-step schedule" in fig.axes[1].get_title()
    plt.close(fig)
