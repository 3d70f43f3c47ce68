"""The course GPT in Hugging Face's GPT-2 format (notebook 14_a_real_llm).

Notebook 14 reads a real model with the course's code; this goes the other way: the course's
own model, saved so that Hugging Face ``transformers`` loads it as ``GPT2LMHeadModel`` and
computes the same logits. The course GPT (``helpers/gpt.py``) *is* a GPT-2: pre-LayerNorm
blocks, learned positions, a 4x MLP, biases, the head tied to the embedding. Only the way the
weights are laid out differs:

* **Fused QKV.** GPT-2 computes queries, keys and values with one matrix, ``c_attn``, that
  produces ``3C`` numbers per token: ``[q | k | v]`` side by side. The course keeps three
  ``C x C`` matrices (clearer, and what LoRA wraps in notebook 11); stacking them is exact.
* **Conv1D, transposed.** GPT-2's layers are ``Conv1D`` (a name from the original TensorFlow
  code): ``y = x @ W + b`` with ``W`` of shape ``(in, out)``. PyTorch's ``nn.Linear`` computes
  ``y = x @ W.T + b`` with ``W`` of shape ``(out, in)``. So every matrix is transposed.
* **Names**: ``token_embedding`` is ``wte``, ``position_embedding`` ``wpe``, ``ln_1`` ``ln_1``,
  ``attn.proj`` ``attn.c_proj``, ``mlp.fc`` ``mlp.c_fc``, ``mlp.proj`` ``mlp.c_proj``, ``ln_f``
  ``ln_f``, all under ``transformer.``.
* **Settings** the configuration must state because GPT-2's defaults differ: the course uses
  the exact GELU (``F.gelu``, with ``erf``), GPT-2 a tanh approximation (``"gelu_new"``), so
  ``activation_function="gelu"``; LayerNorm's ``eps`` 1e-5 (GPT-2's default too); no dropout;
  the head tied to the embedding (stored once: ``tie_word_embeddings=True``). A model built
  without biases (``bias=False``) gets zero biases, which compute the same.

:func:`export_gpt2` writes ``model.safetensors`` and ``config.json`` into a folder;
:func:`load_exported` loads it with ``transformers``, offline. The tokenizer stays the course's
(character ids): the exported model reads the same ids.
"""

import json
from pathlib import Path

import torch

from helpers.artefacts import atomic_write, write_json


def gpt2_config(config) -> dict:
    """The ``config.json`` of a ``transformers`` GPT-2 with the course ``GPTConfig``'s sizes."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_embd": config.n_embd,
            "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": 4 * config.n_embd,
            "activation_function": "gelu",            # exact GELU, as F.gelu; GPT-2's own is "gelu_new"
            "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "scale_attn_weights": True, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": None}


def gpt2_state_dict(model) -> dict[str, torch.Tensor]:
    """The course GPT's weights under GPT-2's names and layouts (the head is left out: it is tied)."""
    state = {name: p.detach().float() for name, p in model.state_dict().items()}
    C = model.config.n_embd

    def bias(name, size):
        return state.get(name, torch.zeros(size))   # bias=False: a zero bias computes the same

    out = {"transformer.wte.weight": state["token_embedding.weight"],
           "transformer.wpe.weight": state["position_embedding.weight"]}
    norms = [("ln_1", "ln_1"), ("ln_2", "ln_2")]
    for i in range(model.config.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b in norms:
            out[theirs + b + ".weight"] = state[ours + a + ".weight"]
            out[theirs + b + ".bias"] = bias(ours + a + ".bias", C)
        parts = ("query", "key", "value")
        out[theirs + "attn.c_attn.weight"] = torch.cat([state[f"{ours}attn.{p}.weight"].T for p in parts], dim=1)
        out[theirs + "attn.c_attn.bias"] = torch.cat([bias(f"{ours}attn.{p}.bias", C) for p in parts])
        for a, b, width in (("attn.proj", "attn.c_proj", C), ("mlp.fc", "mlp.c_fc", 4 * C),
                            ("mlp.proj", "mlp.c_proj", C)):
            out[theirs + b + ".weight"] = state[ours + a + ".weight"].T     # Conv1D: (in, out)
            out[theirs + b + ".bias"] = bias(ours + a + ".bias", width)
    out["transformer.ln_f.weight"] = state["ln_f.weight"]
    out["transformer.ln_f.bias"] = bias("ln_f.bias", C)
    return {name: t.contiguous() for name, t in out.items()}


def export_gpt2(model, folder) -> Path:
    """Write the course GPT ``model`` as a GPT-2 checkpoint in ``folder`` (made if needed):
    ``model.safetensors`` (the weights, :func:`gpt2_state_dict`) and ``config.json``
    (:func:`gpt2_config`), each written atomically. Returns the folder."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = save(gpt2_state_dict(model), metadata={"format": "pt"})
    atomic_write(folder / "model.safetensors", weights)
    write_json(folder / "config.json", gpt2_config(model.config))
    return folder


def load_exported(folder):
    """``transformers``' ``GPT2LMHeadModel`` from a folder :func:`export_gpt2` wrote, offline, in eval mode."""
    from helpers.llama import offline_transformers

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json: export a model there first (export_gpt2)")
    json.loads((folder / "config.json").read_text(encoding="utf-8"))     # a clear error if it is not JSON
    transformers = offline_transformers()
    return transformers.GPT2LMHeadModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
