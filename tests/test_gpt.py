"""helpers/gpt.py: shapes, causality, masks, both attention paths, parameter and FLOP formulas,
LayerNorm, the loss at initialisation, generation and a tiny overfit."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from helpers import gpt
from helpers.gpt import GPT, GPTConfig


def tiny(**overrides):
    """A small model (seeded) for fast tests; ``overrides`` change the config."""
    params = {"vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}
    params.update(overrides)
    torch.manual_seed(0)
    return GPT(GPTConfig(**params))


def twin(model, **overrides):
    """A copy of ``model`` with the same weights but some config fields changed (e.g. use_sdpa)."""
    config = GPTConfig(**{**model.config.__dict__, **overrides})
    other = GPT(config)
    other.load_state_dict(model.state_dict())
    return other


configs = st.builds(
    GPTConfig,
    vocab_size=st.integers(1, 40), block_size=st.integers(1, 12), n_layer=st.integers(1, 3),
    n_head=st.sampled_from([1, 2, 4]), n_embd=st.sampled_from([4, 8, 12, 16]), bias=st.booleans(),
    use_sdpa=st.booleans(),
)


# ---------------------------------------------------------------- shapes and parameter counts

@settings(max_examples=40)
@given(configs, st.integers(1, 3), st.data())
def test_shapes_for_many_configs(config, batch, data):
    T = data.draw(st.integers(1, config.block_size))
    model = GPT(config)
    idx = torch.randint(0, config.vocab_size, (batch, T))
    (logits, loss), attention = model(idx, targets=idx), model.attention_maps(idx)
    assert logits.shape == (batch, T, config.vocab_size)
    assert loss.shape == () and torch.isfinite(loss)
    assert attention.shape == (config.n_layer, batch, config.n_head, T, T)
    assert model(idx)[1] is None


@settings(max_examples=60)
@given(configs)
def test_parameter_formula_equals_real_count(config):
    model = GPT(config)
    assert gpt.count_parameters(config) == sum(p.numel() for p in model.parameters())


@settings(max_examples=40)
@given(configs)
def test_parameters_by_part_count_each_part_of_the_real_model(config):
    parts = gpt.parameters_by_part(config)
    assert sum(parts.values()) == gpt.count_parameters(config)
    real = {"token embedding (= head)": 0, "position embedding": 0, "attention": 0, "MLP": 0, "layer norms": 0}
    for name, p in GPT(config).named_parameters():          # the tied head is listed once, as the embedding
        part = ("token embedding (= head)" if name.startswith("token_embedding") else
                "position embedding" if name.startswith("position_embedding") else
                "attention" if ".attn." in name else "MLP" if ".mlp." in name else "layer norms")
        assert part != "layer norms" or "ln_" in name, name
        real[part] += p.numel()
    assert parts == real


def test_head_is_tied_to_token_embedding():
    model = tiny()
    assert model.lm_head.weight is model.token_embedding.weight
    # the default config: nanoGPT's character model, 0.81 M parameters
    assert gpt.count_parameters(GPTConfig()) == 809_856


def test_initialisation_like_gpt2():
    model = tiny(n_layer=4, n_embd=256, vocab_size=300, block_size=64)
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.query.weight.std().item() == pytest.approx(0.02, rel=0.05)
    scaled = 0.02 / math.sqrt(2 * 4)
    assert model.blocks[1].attn.proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert model.blocks[1].mlp.proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert torch.all(model.blocks[0].mlp.fc.bias == 0) and torch.all(model.ln_f.weight == 1)


@pytest.mark.parametrize("bias", [True, False])
def test_flops_formula_matches_counted_matmul_flops(bias):
    """6N + 12*L*C*T against PyTorch's own count of a forward+backward pass (matmuls only)."""
    config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, bias=bias, use_sdpa=False)
    model = GPT(config)
    idx = torch.randint(0, 65, (2, 32))
    with FlopCounterMode(display=False) as counter:
        model(idx, targets=idx)[1].backward()
    counted_per_token = counter.get_total_flops() / idx.numel()
    assert gpt.flops_per_token(config) == pytest.approx(counted_per_token, rel=0.02)


# ---------------------------------------------------------------- causality and masks

@pytest.mark.parametrize("use_sdpa", [True, False])
def test_causal_mask_past_logits_ignore_the_future(use_sdpa):
    model = tiny(use_sdpa=use_sdpa)
    idx = torch.randint(0, 11, (2, 8))
    for t in range(1, 8):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 11
        before, after = model(idx)[0], model(changed)[0]
        torch.testing.assert_close(before[:, :t], after[:, :t])
        assert not torch.allclose(before[:, t:], after[:, t:])


@pytest.mark.parametrize("use_sdpa", [True, False])
def test_bidirectional_mask_lets_the_future_change_the_past(use_sdpa):
    model = tiny(use_sdpa=use_sdpa)
    idx = torch.randint(0, 11, (1, 8))
    changed = idx.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 11
    mask = gpt.bidirectional_mask(8)
    before, after = model(idx, mask=mask)[0], model(changed, mask=mask)[0]
    assert not torch.allclose(before[:, 0], after[:, 0])


def test_default_mask_is_causal_mask():
    model = tiny()
    idx = torch.randint(0, 11, (3, 6))
    torch.testing.assert_close(model(idx)[0], model(idx, mask=gpt.causal_mask(6))[0])


def random_mask(batch, T, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, T, T, generator=g) < 0.5) | torch.eye(T, dtype=torch.bool)


@pytest.mark.parametrize("mask_name", ["causal", "bidirectional", "permutation", "random (T, T)", "random (B, T, T)"])
def test_from_scratch_attention_equals_sdpa(mask_name):
    sdpa_model = tiny(n_embd=32, n_head=4)
    scratch_model = twin(sdpa_model, use_sdpa=False)
    idx = torch.randint(0, 11, (3, 8))
    mask = {
        "causal": gpt.causal_mask(8),
        "bidirectional": gpt.bidirectional_mask(8),
        "permutation": gpt.permutation_mask([3, 7, 0, 5, 1, 6, 2, 4]),
        "random (T, T)": random_mask(1, 8, 1)[0],
        "random (B, T, T)": random_mask(3, 8, 2),
    }[mask_name]
    expected, _ = sdpa_model(idx, mask=mask)
    actual, _ = scratch_model(idx, mask=mask)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    # the weights come from the from-scratch path whichever path the model's forward uses
    attention = sdpa_model.attention_maps(idx, mask=mask)
    torch.testing.assert_close(attention, scratch_model.attention_maps(idx, mask=mask))
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:-1]))
    forbidden = ~mask.expand(3, 8, 8)[None, :, None]            # (1, B, 1, T, T)
    assert torch.all(attention.masked_select(forbidden.expand_as(attention)) == 0)


def test_permutation_mask_properties():
    order = [3, 7, 0, 5, 1, 6, 2, 4]
    mask = gpt.permutation_mask(order)
    assert mask.dtype == torch.bool and mask.shape == (8, 8)
    assert torch.all(mask.diagonal())                       # every position sees itself
    first = torch.zeros(8, dtype=torch.bool)
    first[3] = True
    assert torch.equal(mask[3], first)                      # the first in the order sees only itself
    assert torch.all(mask[4])                               # the last sees everything
    # a valid DAG: re-indexed in the factorisation order it is exactly the causal mask
    o = torch.tensor(order)
    assert torch.equal(mask[o][:, o], gpt.causal_mask(8))
    assert torch.equal(gpt.permutation_mask(range(8)), gpt.causal_mask(8))


@settings(max_examples=50)
@given(st.permutations(list(range(10))))
def test_permutation_mask_is_acyclic(order):
    strict = gpt.permutation_mask(order) & ~torch.eye(10, dtype=torch.bool)
    assert not torch.any(strict & strict.T)                 # never both i->j and j->i
    assert sorted(strict.sum(1).tolist()) == list(range(10))  # k-th in order sees k others


@pytest.mark.parametrize("order", [[0, 0, 1], [1, 2, 3], []])
def test_permutation_mask_rejects_non_permutations(order):
    with pytest.raises(ValueError, match="permutation"):
        gpt.permutation_mask(order)


@pytest.mark.parametrize("mask, error, phrase", [
    (torch.ones(5, 5, dtype=torch.bool), ValueError, r"mask has shape \(5, 5\), expected \(T, T\) = \(6, 6\)"),
    (torch.ones(4, 6, 6, dtype=torch.bool), ValueError, "mask has shape"),
    (torch.ones(6, dtype=torch.bool), ValueError, "mask has shape"),
    (torch.ones(6, 6), TypeError, "torch.bool"),
    ([[True] * 6] * 6, TypeError, "torch.bool"),
    (torch.zeros(6, 6, dtype=torch.bool), ValueError, "attend to nothing"),
])
def test_bad_mask_gives_a_clear_error(mask, error, phrase):
    model = tiny()
    with pytest.raises(error, match=phrase):
        model(torch.zeros(2, 6, dtype=torch.long), mask=mask)


def test_bad_inputs_give_clear_errors():
    model = tiny(block_size=8)
    with pytest.raises(ValueError, match="block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[0, 11]]))
    with pytest.raises(TypeError, match=r"shape \(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(n_layer=0)


# ---------------------------------------------------------------- LayerNorm

def layernorm_pair(width, bias, dtype):
    """Our LayerNorm and nn.LayerNorm with the same (non-trivial) weight and bias."""
    ours, theirs = gpt.LayerNorm(width, bias=bias), nn.LayerNorm(width, bias=bias)
    with torch.no_grad():
        for layer in (ours, theirs):
            layer.weight.copy_(torch.linspace(0.5, 1.5, width))
            if bias:
                layer.bias.copy_(torch.linspace(-1, 1, width))
    return ours.to(dtype), theirs.to(dtype)


def assert_layernorms_agree(ours, theirs, x, **tolerance):
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = ours(x1), theirs(x2)
    torch.testing.assert_close(out, expected, **tolerance)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(x1.grad, x2.grad, **tolerance)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, **tolerance)
    if ours.bias is None:
        assert theirs.bias is None
    else:
        torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, **tolerance)


# float64 so that the comparison tests the formula, not float32 cancellation (x = 3 +- 0.01).
# Width 1 is left out: x - mean is 0 and PyTorch's kernel returns rounding noise / sqrt(eps).
@settings(max_examples=50)
@given(st.integers(1, 4), st.integers(2, 40), st.floats(0.01, 100), st.booleans())
def test_layernorm_equals_torch_values_and_gradients(rows, width, scale, bias):
    torch.manual_seed(rows * 100 + width)
    ours, theirs = layernorm_pair(width, bias, torch.float64)
    x = torch.randn(rows, 3, width, dtype=torch.float64) * scale + 3.0
    assert_layernorms_agree(ours, theirs, x, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_equals_torch_in_float32(bias):
    torch.manual_seed(0)
    ours, theirs = layernorm_pair(128, bias, torch.float32)
    assert_layernorms_agree(ours, theirs, torch.randn(4, 16, 128) * 2 + 1)


def test_model_uses_the_fused_twin_of_our_layernorm():
    model = tiny()
    norms = [model.ln_f] + [block.ln_1 for block in model.blocks] + [block.ln_2 for block in model.blocks]
    assert all(type(norm) is gpt.FusedLayerNorm and isinstance(norm, gpt.LayerNorm) for norm in norms)
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())


def fused_pair(width, bias, dtype):
    """Our written-out LayerNorm and its fused twin with the same (non-trivial) weight and bias."""
    ours, _ = layernorm_pair(width, bias, dtype)
    fused = gpt.FusedLayerNorm(width, bias=bias).to(dtype)
    fused.load_state_dict(ours.state_dict())
    return ours, fused


@settings(max_examples=50)
@given(st.integers(1, 4), st.integers(2, 40), st.floats(0.01, 100), st.booleans())
def test_fused_layernorm_equals_the_written_out_one_values_and_gradients(rows, width, scale, bias):
    torch.manual_seed(rows * 100 + width)
    ours, fused = fused_pair(width, bias, torch.float64)
    x = torch.randn(rows, 3, width, dtype=torch.float64) * scale + 3.0
    assert_layernorms_agree(ours, fused, x, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_layernorm_equals_the_written_out_one_in_float32(bias):
    torch.manual_seed(0)
    assert_layernorms_agree(*fused_pair(128, bias, torch.float32), torch.randn(4, 16, 128) * 2 + 1)


def written_out(model):
    """A copy of ``model`` with every fast kernel swapped for its written-out twin: layer norms
    computed op by op, attention from scratch with a mask tensor."""
    other = twin(model, use_sdpa=False)
    for module in other.modules():
        if type(module) is gpt.FusedLayerNorm:
            module.__class__ = gpt.LayerNorm
    return other


def test_the_fast_model_equals_its_written_out_twin_values_and_gradients():
    fast = tiny(n_embd=32, n_head=4, dropout=0.0)
    slow = written_out(fast)
    assert not any(type(m) is gpt.FusedLayerNorm for m in slow.modules())
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    for mask in (None, gpt.permutation_mask([3, 7, 0, 5, 1, 6, 2, 4])):
        (a, loss_a), (b, loss_b) = fast(idx, idx, mask=mask), slow(idx, idx, mask=mask)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        fast.zero_grad(), slow.zero_grad()
        loss_a.backward(), loss_b.backward()
        for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
            torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_shipped_checkpoints_give_the_written_out_models_logits():
    """data/*.pt load unchanged (same parameter names) and the fast kernels give their logits."""
    from helpers import checkpoints
    from helpers.paths import DATA_DIR

    for name in ("gpt_shakespeare.pt", "family_permutation.pt"):
        model, _ = checkpoints.load_model(DATA_DIR / name)
        idx = torch.randint(0, model.config.vocab_size, (2, model.config.block_size),
                            generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(model(idx)[0], written_out(model).eval()(idx)[0], atol=1e-4, rtol=1e-5)


def test_the_causal_mask_takes_the_causal_kernel_and_other_masks_are_passed_on(monkeypatch):
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        calls.append((attn_mask is None, is_causal))
        return original(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = tiny()                                           # 2 layers
    idx = torch.randint(0, 11, (2, 8))
    for mask, expected in [(None, (True, True)), (gpt.causal_mask(8), (True, True)),
                           (gpt.bidirectional_mask(8), (False, False)),
                           (gpt.causal_mask(8).expand(2, 8, 8), (False, False))]:
        calls.clear()
        model(idx, mask=mask)
        assert calls == [expected] * 2, mask


def test_no_dropout_layer_is_called_when_dropout_is_zero():
    assert not any(isinstance(m, nn.Dropout) for m in tiny(dropout=0.0).modules())
    assert sum(isinstance(m, nn.Dropout) for m in tiny(dropout=0.1).modules()) == 1 + 2 * 3   # embeddings + 3 a block


# ---------------------------------------------------------------- loss

def test_loss_at_initialisation_is_close_to_log_vocab_size():
    torch.manual_seed(0)
    model = GPT(GPTConfig())                                 # vocab 65: ln 65 = 4.174
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 65, (8, 64), generator=g)
    targets = torch.randint(0, 65, (8, 64), generator=g)
    loss = model(idx, targets)[1].item()
    assert abs(loss - math.log(65)) < 0.15


def test_ignore_index_skips_positions():
    model = tiny()
    idx = torch.randint(0, 11, (2, 8))
    targets = torch.randint(0, 11, (2, 8))
    masked = targets.clone()
    masked[:, :5] = -100
    logits, loss = model(idx, masked)
    expected = nn.functional.cross_entropy(logits[:, 5:].reshape(-1, 11), targets[:, 5:].reshape(-1))
    torch.testing.assert_close(loss, expected)


def test_dropout_is_active_in_training_only():
    model = tiny(dropout=0.5)
    idx = torch.randint(0, 11, (2, 8))
    model.train()
    assert not torch.allclose(model(idx)[0], model(idx)[0])
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])


def test_tiny_model_memorises_a_sequence():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, block_size=32, n_layer=1, n_head=2, n_embd=32))
    sequence = torch.randint(0, 16, (1, 33), generator=torch.Generator().manual_seed(0))
    x, y = sequence[:, :-1], sequence[:, 1:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(100):
        loss = model(x, y)[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model(x, y)[1].item() < 0.1


# ---------------------------------------------------------------- generation

def test_generate_length_and_prefix():
    model = tiny()
    idx = torch.randint(0, 11, (3, 4))
    out = model.generate(idx, 7, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 11) and out.dtype == torch.long
    assert torch.equal(out[:, :4], idx)
    assert out.min() >= 0 and out.max() < 11


def test_generate_is_deterministic_with_a_seeded_generator():
    model = tiny()
    idx = torch.zeros(2, 1, dtype=torch.long)
    first = model.generate(idx, 20, generator=torch.Generator().manual_seed(5))
    again = model.generate(idx, 20, generator=torch.Generator().manual_seed(5))
    other = model.generate(idx, 20, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_top_k_one_is_greedy_decoding():
    model = tiny()
    idx = torch.randint(0, 11, (2, 3))
    greedy = idx
    for _ in range(10):
        logits = model(greedy[:, -8:])[0]
        greedy = torch.cat([greedy, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    sampled = model.generate(idx, 10, temperature=2.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, greedy)


def test_top_k_larger_than_vocab_is_clipped():
    model = tiny()
    idx = torch.zeros(1, 1, dtype=torch.long)
    a = model.generate(idx, 10, top_k=1000, generator=torch.Generator().manual_seed(0))
    b = model.generate(idx, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan")])
def test_non_positive_temperature_is_a_clear_error(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        tiny().generate(torch.zeros(1, 1, dtype=torch.long), 3, temperature=temperature)


def test_top_k_below_one_is_a_clear_error():
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        tiny().generate(torch.zeros(1, 1, dtype=torch.long), 3, top_k=0)


def test_generate_crops_context_to_block_size():
    model = tiny(block_size=8)
    long_idx = torch.randint(0, 11, (2, 20))
    out = model.generate(long_idx, 5, generator=torch.Generator().manual_seed(3))
    cropped = model.generate(long_idx[:, -8:], 5, generator=torch.Generator().manual_seed(3))
    assert out.shape == (2, 25)
    assert torch.equal(out[:, 20:], cropped[:, 8:])


# ---------------------------------------------------------------- generation with a KV cache

@pytest.mark.parametrize("use_sdpa", [True, False])
def test_the_kv_cache_gives_the_same_tokens_as_recomputing(use_sdpa):
    model = tiny(n_embd=32, n_head=4, use_sdpa=use_sdpa).eval()            # block_size 8
    for prompt_length, new, top_k in [(1, 20, None), (3, 4, 2), (8, 3, None), (12, 6, 5)]:
        idx = torch.randint(0, 11, (3, prompt_length), generator=torch.Generator().manual_seed(prompt_length))
        cached, recomputed = (model.generate(idx, new, temperature=1.5, top_k=top_k, use_cache=use_cache,
                                             generator=torch.Generator().manual_seed(7)) for use_cache in (True, False))
        assert torch.equal(cached, recomputed), (prompt_length, new)


def test_the_cached_logits_equal_the_whole_windows_logits():
    model = tiny(n_embd=32, n_head=4).eval()
    idx = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(0))
    logits, caches = model._last_logits_cached(idx[:, :3], 0, [None, None])          # the prompt
    torch.testing.assert_close(logits, model(idx[:, :3])[0][:, -1], atol=1e-5, rtol=1e-5)
    for t in range(3, 8):                                                               # then one at a time
        logits, caches = model._last_logits_cached(idx[:, t:t + 1], t, caches)
        assert caches[0][0].shape == (2, 4, t + 1, 8)                                   # (B, heads, seen, d)
        torch.testing.assert_close(logits, model(idx[:, :t + 1])[0][:, -1], atol=1e-5, rtol=1e-5)


def test_with_the_cache_each_step_feeds_one_token_until_the_window_slides():
    model = tiny(block_size=8).eval()
    fed = []
    model.token_embedding.register_forward_hook(lambda module, args, out: fed.append(args[0].shape[1]))
    model.generate(torch.zeros(1, 3, dtype=torch.long), 8)
    assert fed == [3, 1, 1, 1, 1, 1, 8, 8]            # the prompt, then one token each, then whole windows
    fed.clear()
    model.generate(torch.zeros(1, 3, dtype=torch.long), 8, use_cache=False)
    assert fed == [3, 4, 5, 6, 7, 8, 8, 8]


def test_the_shipped_model_samples_the_same_text_with_the_cache():
    from helpers import checkpoints
    from helpers.paths import DATA_DIR

    model, _ = checkpoints.load_model(DATA_DIR / "gpt_shakespeare.pt")                # block_size 128
    prompt = torch.randint(0, model.config.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    cached, recomputed = (model.generate(prompt, 140, temperature=0.8, use_cache=use_cache,
                                         generator=torch.Generator().manual_seed(1)) for use_cache in (True, False))
    assert torch.equal(cached, recomputed)


def test_a_model_training_with_dropout_generates_without_the_cache():
    model = tiny(dropout=0.5).train()
    fed = []
    model.token_embedding.register_forward_hook(lambda module, args, out: fed.append(args[0].shape[1]))
    model.generate(torch.zeros(1, 2, dtype=torch.long), 3)
    assert fed == [2, 3, 4]


def test_model_moves_with_to():
    model = tiny().to("cpu", torch.float64)
    logits, loss = model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    assert logits.dtype == torch.float64 and torch.isfinite(loss)


# ---------------------------------------------------------------- bad inputs to generate and forward

@pytest.mark.parametrize("temperature", [1e-50, 1e-40, 5e-324])
def test_a_vanishing_temperature_is_greedy_decoding(temperature):
    model = tiny()
    idx = torch.randint(0, 11, (3, 2), generator=torch.Generator().manual_seed(1))
    greedy = model.generate(idx, 6, top_k=1, generator=torch.Generator().manual_seed(0))
    cold = model.generate(idx, 6, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, greedy)


def test_huge_logits_at_a_tiny_temperature_are_greedy_too():
    model = tiny()
    with torch.no_grad():
        model.token_embedding.weight.mul_(1e3)                     # logits of order 1e5: overflow at 1e-34
    idx = torch.zeros(2, 1, dtype=torch.long)
    greedy = model.generate(idx, 5, top_k=1)
    assert torch.equal(model.generate(idx, 5, temperature=1e-34), greedy)


def test_small_temperatures_that_do_not_overflow_are_unchanged():
    """The greedy limit replaces only rows whose softmax would be NaN: the draws of any ordinary
    temperature are those of the plain formula (same random numbers, same tokens)."""
    model = tiny()
    idx = torch.zeros(2, 1, dtype=torch.long)
    for temperature, top_k in [(0.05, None), (0.8, 3), (1e-3, None), (5.0, 2)]:
        out = model.generate(idx, 12, temperature=temperature, top_k=top_k, generator=torch.Generator().manual_seed(4))
        by_hand, g = idx, torch.Generator().manual_seed(4)
        for _ in range(12):
            logits = model(by_hand[:, -8:])[0][:, -1, :] / temperature
            if top_k is not None:
                kth = torch.topk(logits, top_k).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=g)
            by_hand = torch.cat((by_hand, nxt), dim=1)
        assert torch.equal(out, by_hand), (temperature, top_k)


@settings(max_examples=30, deadline=None)
@given(st.floats(1e-300, 1e3), st.one_of(st.none(), st.integers(1, 20)), st.integers(0, 2**16))
def test_generate_gives_valid_ids_at_any_positive_temperature(temperature, top_k, seed):
    model = tiny()
    out = model.generate(torch.zeros(2, 1, dtype=torch.long), 4, temperature=temperature, top_k=top_k,
                         generator=torch.Generator().manual_seed(seed))
    assert out.shape == (2, 5) and out.min() >= 0 and out.max() < 11


@pytest.mark.parametrize("top_k", [2.0, 2.5, True, "3", -1, 0, float("nan")])
def test_top_k_that_is_not_a_whole_number_of_at_least_one_is_refused(top_k):
    with pytest.raises(ValueError, match=r"top_k must be at least 1 \(or None for all tokens\) and a whole number"):
        tiny().generate(torch.zeros(1, 1, dtype=torch.long), 3, top_k=top_k)


def test_top_k_accepts_numpy_and_tensor_integers():
    import numpy as np

    model = tiny()
    idx = torch.zeros(1, 1, dtype=torch.long)
    expected = model.generate(idx, 5, top_k=2, generator=torch.Generator().manual_seed(0))
    for top_k in (np.int64(2), torch.tensor(2)):
        assert torch.equal(model.generate(idx, 5, top_k=top_k, generator=torch.Generator().manual_seed(0)), expected)


@pytest.mark.parametrize("max_new_tokens", [-1, 2.0, None])
def test_max_new_tokens_must_be_a_whole_number(max_new_tokens):
    with pytest.raises(ValueError, match="max_new_tokens must be at least 0 and a whole number"):
        tiny().generate(torch.zeros(1, 1, dtype=torch.long), max_new_tokens)


@pytest.mark.parametrize("shape", [(0, 3), (2, 0), (0, 0)])
def test_an_empty_batch_or_prompt_is_a_clear_error(shape):
    model = tiny()
    idx = torch.zeros(shape, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"idx of shape \({shape[0]}, {shape[1]}\) is empty"):
        model(idx)
    with pytest.raises(ValueError, match="is empty"):
        model.generate(idx, 3)


def test_generate_refuses_a_prompt_that_is_not_an_id_tensor():
    with pytest.raises(TypeError, match=r"idx must be an int64 tensor of shape \(B, T\)"):
        tiny().generate([[1, 2]], 3)
    with pytest.raises(ValueError, match="token ids must be in 0..10"):
        tiny().generate(torch.tensor([[-1]]), 3)


@pytest.mark.parametrize("targets, error, phrase", [
    (torch.zeros(2, 5, dtype=torch.long), ValueError, r"targets has shape \(2, 5\), but idx has shape \(2, 6\)"),
    (torch.zeros(12, dtype=torch.long), ValueError, r"targets has shape \(12,\)"),
    (torch.zeros(6, 2, dtype=torch.long), ValueError, "targets has shape"),
    (torch.zeros(2, 6), TypeError, "targets must be an int64 tensor"),
    (torch.zeros(2, 6, dtype=torch.int32), TypeError, "targets must be an int64 tensor"),
    ([[0] * 6] * 2, TypeError, "targets must be an int64 tensor"),
    (torch.full((2, 6), 11), ValueError, r"targets must be token ids in 0..10 .* or -100 .*got 11"),
    (torch.full((2, 6), -1), ValueError, "got -1"),
    (torch.full((2, 6), -101), ValueError, "got -101"),
])
def test_bad_targets_give_clear_errors(targets, error, phrase):
    with pytest.raises(error, match=phrase):
        tiny()(torch.zeros(2, 6, dtype=torch.long), targets)


@settings(max_examples=50)
@given(st.lists(st.integers(-200, 200), min_size=4, max_size=4))
def test_targets_are_accepted_exactly_when_they_are_ids_or_ignored(values):
    model = tiny()
    targets = torch.tensor([values])
    if all(v == -100 or 0 <= v < 11 for v in values):
        model(torch.zeros(1, 4, dtype=torch.long), targets)
    else:
        with pytest.raises(ValueError, match="targets must be token ids"):
            model(torch.zeros(1, 4, dtype=torch.long), targets)


def test_broken_weights_stop_generation_with_a_sentence():
    model = tiny()
    with torch.no_grad():
        model.ln_f.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="logits hold NaN or infinite values"):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 3)


@pytest.mark.parametrize("overrides, phrase", [({"vocab_size": True}, "vocab_size must be at least 1 and a whole"),
                                               ({"n_embd": 16.0}, "n_embd must be at least 1 and a whole number"),
                                               ({"bias": "yes"}, "bias must be True or False"),
                                               ({"use_sdpa": 1}, "use_sdpa must be True or False"),
                                               ({"dropout": "0.1"}, "dropout must be a number"),
                                               ({"dropout": True}, "dropout must be a number")])
def test_config_fields_of_the_wrong_type_are_refused(overrides, phrase):
    with pytest.raises(ValueError, match=phrase):
        GPTConfig(**overrides)
