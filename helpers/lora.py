"""LoRA from scratch (taught in notebook 11_fine_tuning, reused in 12 for the dialogue adapter).

- :class:`LoRAConfig`: rank, alpha and which attention layers get an adapter.
- :class:`LoRALinear`: a frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al., 2021).
- :func:`add_lora` wraps a GPT's linear layers (by default query and value, as in the paper;
  :data:`ALL_LINEAR` for all six of a block); :func:`merge_lora` folds the updates back in.
- :func:`save_adapter` / :func:`load_adapter`: only the LoRA matrices, a file of a few tens of kB.
"""

import dataclasses
import math
from pathlib import Path

import torch
from torch import nn

from helpers import checkpoints
from helpers.artefacts import atomic_write
from helpers.checkpoints import CheckpointError

# The linear layers of a block an adapter may wrap: the attention's four, then the MLP's two
# (named "mlp.fc" and "mlp.proj": the attention's output layer is also called "proj").
LAYERS = ("query", "key", "value", "proj", "mlp.fc", "mlp.proj")
ALL_LINEAR = LAYERS                               # QLoRA's advice: every linear layer of every block


def _owner(block, name: str):
    """``(module, attribute)`` of the layer ``name`` (one of :data:`LAYERS`) in ``block``."""
    return (block.mlp, name[4:]) if name.startswith("mlp.") else (block.attn, name)


def _layer(block, name: str):
    module, attribute = _owner(block, name)
    return getattr(module, attribute)


def _set_layer(block, name: str, layer) -> None:
    module, attribute = _owner(block, name)
    setattr(module, attribute, layer)


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    """LoRA's settings: the ``rank`` of the update, its scale ``alpha`` (the update is multiplied by
    ``alpha / rank``) and the linear layers of every block it wraps (some of :data:`LAYERS`; the
    default is the original paper's query and value, :data:`ALL_LINEAR` wraps all six)."""
    rank: int = 4
    alpha: float = 8.0
    targets: tuple = ("query", "value")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al., 2021):
    ``y = base(x) + (alpha / rank) * x A^T B^T``, with ``A`` ``(rank, in)`` and ``B`` ``(out, rank)``.

    ``B`` starts at zero, so at first the layer computes exactly what the base layer did; training
    moves only ``A`` and ``B``: ``rank * (in + out)`` numbers instead of ``in * out``.
    """

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float = 8.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if not 1 <= rank <= min(base.in_features, base.out_features):
            raise ValueError(f"rank must be between 1 and {min(base.in_features, base.out_features)}, got {rank}")
        self.base = base.requires_grad_(False)          # frozen: only A and B train
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T

    def merged(self) -> nn.Linear:
        """One plain ``nn.Linear`` computing the same function: ``W + scale * B A``. No extra cost
        at inference time."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.B @ self.A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def add_lora(model, config: LoRAConfig = LoRAConfig()) -> nn.Module:
    """Freeze every parameter of the GPT ``model`` and wrap the layers named in ``config.targets``
    (of :data:`LAYERS`: ``query``, ``key``, ``value``, ``proj`` in the attention, ``mlp.fc`` and
    ``mlp.proj`` in the MLP) of every block in :class:`LoRALinear` of ``config.rank`` and
    ``config.alpha``; returns the model. Only the LoRA matrices are then trainable."""
    targets = config.targets
    if not targets or set(targets) - set(LAYERS) or len(set(targets)) != len(targets):
        raise ValueError(f"targets must be some of {list(LAYERS)}, each once, got {targets!r}")
    model.requires_grad_(False)
    for block in model.blocks:
        for name in targets:
            _set_layer(block, name, LoRALinear(_layer(block, name), config.rank, config.alpha))
    return model


def merge_lora(model) -> nn.Module:
    """Replace every :class:`LoRALinear` of ``model`` by its merged ``nn.Linear``; returns the model."""
    for block in model.blocks:
        for name in LAYERS:
            layer = _layer(block, name)
            if isinstance(layer, LoRALinear):
                _set_layer(block, name, layer.merged())
    return model


def config_of(model) -> LoRAConfig:
    """The :class:`LoRAConfig` ``model``'s LoRA layers were made with (targets in :data:`LAYERS`
    order); a ``ValueError`` when it has none or its blocks differ."""
    found = {(name, layer.rank, layer.alpha) for block in model.blocks for name in LAYERS
             if isinstance(layer := _layer(block, name), LoRALinear)}
    if not found:
        raise ValueError("the model has no LoRA matrices to save; call add_lora first")
    if len({(rank, alpha) for _, rank, alpha in found}) > 1:
        raise ValueError(f"the model's LoRA layers differ in rank or alpha: {sorted(found, key=str)}")
    names = {name for name, _, _ in found}
    _, rank, alpha = found.pop()
    return LoRAConfig(rank=rank, alpha=alpha, targets=tuple(n for n in LAYERS if n in names))


# ---------------------------------------------------------------- saving a LoRA adapter

ADAPTER_FORMAT = "behind-the-curtain lora adapter v1"


def save_adapter(model, path, **info) -> None:
    """Write only the LoRA matrices of ``model``, its :class:`LoRAConfig` (as a dict) and ``info``
    to ``path``, atomically: a file a few tens of kB beside the base model's megabytes."""
    weights = {name: p.detach().clone() for name, p in model.named_parameters() if name.endswith((".A", ".B"))}
    if not weights:
        raise ValueError("the model has no LoRA matrices to save; call add_lora first")
    state = {"format": ADAPTER_FORMAT, "lora": dataclasses.asdict(config_of(model)), "weights": weights, "info": info}
    atomic_write(path, lambda f: torch.save(state, f))


def _check_lora_settings(path, settings) -> None:
    """A :class:`helpers.checkpoints.CheckpointError` naming ``path`` unless ``settings`` is a dict
    of the fields of :class:`LoRAConfig`: exactly ``rank`` (a whole number, at least 1), ``alpha``
    (a finite number) and ``targets`` (a list or tuple of layer names)."""
    from helpers import gpt

    fields = sorted(f.name for f in dataclasses.fields(LoRAConfig))
    if not isinstance(settings, dict) or sorted(settings, key=str) != fields:
        got = sorted(settings, key=str) if isinstance(settings, dict) else type(settings).__name__
        raise CheckpointError(f"{path}: its LoRA settings must be a dict of {fields}, got {got}")
    rank, alpha, targets = settings["rank"], settings["alpha"], settings["targets"]
    try:
        gpt.whole_number(rank, "its LoRA rank", 1, plain_int=True)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise CheckpointError(f"{path}: its LoRA alpha must be a finite number, got {alpha!r}")
    if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
        raise CheckpointError(f"{path}: its LoRA targets must be a list of layer names, got {targets!r}")


def load_adapter(path):
    """``(model, tokenizer, info)``: the pretrained GPT (``helpers.finetune.load_pretrained``) with
    the LoRA adapter saved in ``path``.

    A clear :class:`helpers.checkpoints.CheckpointError` (a ``ValueError``) naming the file when it
    is missing, corrupt or does not fit: an entry missing, LoRA settings missing, unknown or of
    the wrong type (rank 0, say), matrices missing, unknown, of the wrong shape or holding NaN
    or infinity. Loads with ``weights_only=True``: a file can hold data, never code."""
    from helpers.finetune import load_pretrained      # finetune builds on this module, not the other way

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such adapter file; make it with python scripts/make_finetune.py")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read as an adapter (truncated or corrupted?): "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != ADAPTER_FORMAT:
        raise CheckpointError(f"{path}: not a course LoRA adapter (expected format {ADAPTER_FORMAT!r})")
    if set(state) != {"format", "lora", "weights", "info"}:
        raise CheckpointError(f"{path}: an adapter holds 'format', 'lora', 'weights' and 'info'; this one "
                              f"holds {sorted(state, key=str)}")
    _check_lora_settings(path, state["lora"])
    if not isinstance(state["info"], dict):
        raise CheckpointError(f"{path}: its info is a {type(state['info']).__name__}, not a dict")
    model, tok = load_pretrained()
    settings = state["lora"]
    try:
        add_lora(model, LoRAConfig(rank=settings["rank"], alpha=settings["alpha"], targets=tuple(settings["targets"])))
    except (TypeError, ValueError) as exc:            # e.g. a rank above the layers' width, a target twice
        raise CheckpointError(f"{path}: its LoRA settings do not fit the pretrained model: {exc}") from None
    shapes = {name: p.shape for name, p in model.named_parameters() if name.endswith((".A", ".B"))}
    checkpoints.check_tensors(path, state["weights"], shapes, what="LoRA matrices", fit="the pretrained model")
    model.load_state_dict(state["weights"], strict=False)
    return model.eval(), tok, state["info"]
