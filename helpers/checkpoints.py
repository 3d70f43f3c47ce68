"""Checkpoints: a GPT's weights, saved with how it was trained and loaded back with every entry
checked (notebook 09_pretraining; notebooks 10-12 load the shipped ones).

- :func:`save_checkpoint` writes atomically, in float32, float16 or int8; :func:`load_model`
  rebuilds the model from a file; :func:`load_checkpoint` reads the whole record, which
  ``helpers.training.train`` resumes from.
- Anything that does not fit (a missing, truncated or corrupted file, an unknown or missing
  entry, a weight of the wrong shape or holding NaN) is a :class:`CheckpointError` naming the
  file, never a raw unpickling error. Files load with ``weights_only=True``: data, never code.
"""

from dataclasses import asdict
from pathlib import Path

import torch

from helpers import gpt
from helpers.artefacts import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit; the message names the file."""


FORMAT = "behind-the-curtain/gpt-checkpoint/1"


def save_checkpoint(path, model, train_config=None, step: int = 0, history=None,
                    optimizer=None, generator=None, tokenizer_chars: str | None = None,
                    precision: str = "float32") -> Path:
    """Write a checkpoint **atomically**: to a temporary file in the same folder, then renamed over
    ``path``. A crash or Ctrl-C while writing never leaves a half-written checkpoint behind.
    ``train_config`` is the run's ``helpers.training.TrainConfig`` (or ``None``).

    Holds only tensors, numbers, strings, lists and dicts, so it loads with
    ``torch.load(..., weights_only=True)``. ``precision`` is how the weights are stored:
    ``"float32"`` (exact), ``"float16"`` (half the size, for shipping) or ``"int8"`` (a quarter:
    each row of a matrix as whole numbers from -127 to 127 times one float scale per row, for
    snapshots whose exact values matter little). Loading turns them back into float32.
    """
    if precision not in ("float32", "float16", "int8"):
        raise ValueError(f"precision must be 'float32', 'float16' or 'int8', got {precision!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {}
    for name, value in model.state_dict().items():
        if name == "lm_head.weight":
            continue                                             # tied to the token embedding: stored once
        value = value.detach().cpu().clone()
        if precision == "int8" and value.dim() == 2:
            scale = value.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            weights[name] = torch.round(value / scale).to(torch.int8)
            weights[name + ".scale"] = scale.half()
        elif precision != "float32" and value.is_floating_point():
            weights[name] = value.half()
        else:
            weights[name] = value
    state = {"format": FORMAT, "model_config": asdict(model.config), "model": weights, "step": step,
             "train_config": asdict(train_config) if train_config else None,
             "history": history or {"step": [], "train": [], "val": []},
             "tokenizer_chars": tokenizer_chars,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "generator": generator.get_state() if generator is not None else None}
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path) -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear :class:`CheckpointError` when the file
    is missing, truncated, corrupted or not a course checkpoint (never a raw unpickling error)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file. Train one first (see notebook 09), "
                              "or check the path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # zip, pickle and EOF errors all mean the same thing here
        raise CheckpointError(f"{path}: cannot be read as a checkpoint; it may be truncated or corrupted "
                              f"(an interrupted copy or download?). Delete it and train or copy it again. "
                              f"Details: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a course GPT checkpoint (expected format {FORMAT!r})")
    for key in ("model_config", "model", "step", "history"):
        if key not in state:
            raise CheckpointError(f"{path}: the checkpoint has no {key!r} entry; it is incomplete")
    _check_entries(path, state)
    return state


# What save_checkpoint writes besides the format, and the types each entry may have.
_NONE = type(None)
_ENTRIES = {"model_config": (dict,), "model": (dict,), "step": (int,), "history": (dict,),
            "train_config": (dict, _NONE), "tokenizer_chars": (str, _NONE), "optimizer": (dict, _NONE),
            "generator": (torch.Tensor, _NONE)}
_OPTIONAL = ("train_config", "tokenizer_chars", "optimizer", "generator")


def _check_entries(path, state: dict) -> None:
    """A :class:`CheckpointError` naming ``path`` when an entry is unknown or of the wrong type,
    or the model's configuration lacks a field or has an unknown one (a file edited by hand, or
    written by other code). Optional entries a file lacks are filled in as ``None``."""
    unknown = sorted(set(state) - set(_ENTRIES) - {"format"}, key=str)
    if unknown:
        raise CheckpointError(f"{path}: the checkpoint has unknown entries {unknown}; it was not written "
                              "by save_checkpoint")
    for key in _OPTIONAL:
        state.setdefault(key, None)
    for key, kinds in _ENTRIES.items():
        if not isinstance(state[key], kinds):
            expected = " or ".join("None" if kind is _NONE else kind.__name__ for kind in kinds)
            raise CheckpointError(f"{path}: the checkpoint's {key!r} entry is of type {type(state[key]).__name__}, "
                                  f"expected {expected}")
    try:
        gpt.whole_number(state["step"], "its step", 0, plain_int=True)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    fields = set(gpt.GPTConfig.__dataclass_fields__)
    missing = sorted(fields - set(state["model_config"]))
    unknown = sorted(set(state["model_config"]) - fields, key=str)
    if missing or unknown:
        raise CheckpointError(f"{path}: its model configuration does not fit GPTConfig: missing {missing}, "
                              f"unknown {unknown}")


def check_tensors(path, tensors, shapes: dict, what: str, fit: str) -> None:
    """A :class:`CheckpointError` naming ``path`` unless ``tensors`` (a file's ``what``: weights,
    LoRA matrices) is a dict with exactly the names of ``shapes``, each a floating-point tensor
    of that shape holding finite numbers. ``fit`` names what they must fit, for the message.
    Shared by :func:`load_model` and ``helpers.lora.load_adapter``."""
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{path}: its {what} are a {type(tensors).__name__}, not a dict of tensors")
    missing = [name for name in shapes if name not in tensors]
    unknown = sorted((name for name in tensors if name not in shapes), key=str)
    if missing or unknown:
        raise CheckpointError(f"{path}: its {what} do not fit {fit}: missing {missing}, unknown {unknown}")
    for name, shape in shapes.items():
        value = tensors[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path}: {name} in its {what} is a {kind}, not a floating-point tensor")
        if tuple(value.shape) != tuple(shape):
            raise CheckpointError(f"{path}: its {what} do not fit {fit}: {name} has shape "
                                  f"{tuple(value.shape)}, expected {tuple(shape)}")
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: {name} in its {what} holds NaN or infinite values; the file is "
                                  "damaged, or was saved after training diverged")


def _float32_weights(stored: dict) -> dict:
    """A state dict for ``GPT.load_state_dict`` from stored weights (any precision; head re-tied)."""
    weights = {}
    for name, value in stored.items():
        if name.endswith(".scale"):
            continue
        scale = stored.get(name + ".scale")
        weights[name] = value.float() * scale.float() if scale is not None else value.float()
    weights["lm_head.weight"] = weights.get("token_embedding.weight")
    return weights


def _check_storage(path, stored: dict) -> None:
    """A :class:`CheckpointError` naming ``path`` unless every stored weight is a tensor as
    :func:`save_checkpoint` writes them: floating point, or int8 with a float ``.scale`` per row."""
    for name, value in stored.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: its weights hold {name!r}: {type(value).__name__}, not a named tensor")
        if name == "lm_head.weight":
            raise CheckpointError(f"{path}: its weights hold lm_head.weight, which save_checkpoint never stores "
                                  "(the head is tied to token_embedding.weight)")
        scale = stored.get(name + ".scale")
        if name.endswith(".scale"):
            owner = stored.get(name[: -len(".scale")])
            if not isinstance(owner, torch.Tensor) or owner.dtype != torch.int8:
                raise CheckpointError(f"{path}: its weights hold {name} without the int8 matrix it scales")
        elif value.dtype == torch.int8:
            if not (isinstance(scale, torch.Tensor) and scale.is_floating_point() and value.dim() == 2
                    and tuple(scale.shape) == (value.shape[0], 1)):
                raise CheckpointError(f"{path}: {name} is stored as int8 without a valid {name}.scale "
                                      f"(one float per row, shape ({value.shape[0]}, 1))")
        elif not value.is_floating_point():
            raise CheckpointError(f"{path}: {name} in its weights is a {value.dtype}, not a floating-point tensor")


def load_weights(path, state: dict, model) -> None:
    """Load the checkpoint's weights into ``model`` after checking them: the tensors the model
    needs, each of its shape and finite (:func:`check_tensors`), or a :class:`CheckpointError`."""
    _check_storage(path, state["model"])
    weights = _float32_weights(state["model"])
    shapes = {name: value.shape for name, value in model.state_dict().items() if name != "lm_head.weight"}
    check_tensors(path, {name: value for name, value in weights.items() if name != "lm_head.weight"}, shapes,
                  what="weights", fit="its configuration")
    model.load_state_dict(weights)


def load_model(path, config=None):
    """``(model, checkpoint)``: a ``helpers.gpt.GPT`` built from the checkpoint's config (or from
    ``config``, which must then match) with its weights loaded, in eval mode, float32.

    A :class:`CheckpointError` naming the file for anything that does not fit: a missing or
    unknown entry, a configuration field that is missing, unknown or of the wrong type, a
    weight that is missing, unknown, of the wrong shape or type, or holds NaN or infinity."""
    state = load_checkpoint(path)
    try:
        saved = gpt.GPTConfig(**state["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its model configuration is not valid: {exc}") from None
    if config is not None and config != saved:
        different = {k: (v, getattr(saved, k)) for k, v in asdict(config).items() if getattr(saved, k) != v}
        raise CheckpointError(f"{path}: made for a different model; (yours, the file's): {different}")
    model = gpt.GPT(saved)
    load_weights(path, state, model)
    model.eval()
    return model, state
