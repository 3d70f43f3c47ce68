"""The course GPT exported in GPT-2 format (helpers/gpt2_export.py): transformers loads it offline as
GPT2LMHeadModel and computes the course model's logits, for the shipped model and for random ones
with and without biases; each setting the export states is needed."""

import importlib.util
import json

import pytest
import torch

from helpers import checkpoints, gpt, gpt2_export
from helpers.paths import DATA_DIR

pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None or
                                importlib.util.find_spec("safetensors") is None,
                                reason="needs transformers and safetensors (python -m pip install -r requirements.txt)")


def logits_of_both(model, folder, idx):
    exported = gpt2_export.load_exported(gpt2_export.export_gpt2(model, folder))
    with torch.no_grad():
        return model(idx)[0], exported(idx).logits


def test_the_shipped_model_has_the_same_logits_in_transformers(tmp_path):
    model, _ = checkpoints.load_model(DATA_DIR / "gpt_shakespeare.pt")
    idx = torch.randint(0, model.config.vocab_size, (3, model.config.block_size),
                        generator=torch.Generator().manual_seed(0))
    ours, theirs = logits_of_both(model, tmp_path, idx)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "config.json"}
    assert type(gpt2_export.load_exported(tmp_path)).__name__ == "GPT2LMHeadModel"


@pytest.mark.parametrize("bias", [True, False])
def test_random_models_with_and_without_biases_match(tmp_path, bias):
    torch.manual_seed(1)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=24, bias=bias)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.uniform_(-0.5, 1.5)                     # norms and biases that are not 1 and 0
    idx = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(2))
    ours, theirs = logits_of_both(model, tmp_path, idx)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)


def test_the_layouts_are_fused_and_transposed():
    model = gpt.GPT(gpt.GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=24))
    state = gpt2_export.gpt2_state_dict(model)
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (24, 72)       # (in, 3 out): q | k | v
    assert torch.equal(state["transformer.h.0.attn.c_attn.weight"][:, 24:48], model.blocks[0].attn.key.weight.T)
    assert state["transformer.h.0.mlp.c_fc.weight"].shape == (24, 96)
    assert "lm_head.weight" not in state                                        # tied: stored once


def test_tanh_gelu_would_not_match(tmp_path):
    """GPT-2's default activation ("gelu_new", tanh) is not the course's exact GELU."""
    model, _ = checkpoints.load_model(DATA_DIR / "gpt_shakespeare.pt")
    gpt2_export.export_gpt2(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "activation_function": "gelu_new"}))
    idx = torch.randint(0, model.config.vocab_size, (1, 64), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        gap = (gpt2_export.load_exported(tmp_path)(idx).logits - model(idx)[0]).abs().max()
    assert gap > 1e-4


def test_loading_an_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="export a model there first"):
        gpt2_export.load_exported(tmp_path)
