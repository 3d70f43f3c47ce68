"""A small multi-layer perceptron and its training loop (introduced in notebook 04_training_networks).

Notebook 04 shows one training step in full and has the learner write the loop around it (an
exercise); :func:`train_classifier` is that loop, so that explorers and later cells can train
in one line. Measurements run in eval mode without gradients (``training.evaluating`` and
``torch.no_grad``, :func:`evaluate`). The models here are tiny, so they train on the CPU:
moving a few thousand numbers to a GPU costs more than it saves.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import toy_data
from helpers.training import evaluating


class MLP(nn.Module):
    """Fully connected layers with ReLUs between them; the last layer gives one logit per example.

    ``sizes=(2, 16, 16, 1)`` means 2 inputs, two hidden layers of 16 neurons, 1 output.
    ``forward``: ``(n, sizes[0]) -> (n,)`` logits (apply a sigmoid for probabilities).
    ``dropout > 0`` adds an ``nn.Dropout(dropout)`` after each hidden ReLU (active in train mode only).
    """

    def __init__(self, sizes=(2, 16, 16, 1), dropout: float = 0.0):
        super().__init__()
        layers = []
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        hidden_extras = 2 if dropout > 0 else 1
        self.net = nn.Sequential(*layers[:-hidden_extras])  # no ReLU (or dropout) after the output layer

    def forward(self, x):
        return self.net(x).squeeze(-1)


def to_tensors(X, y):
    """NumPy data -> float32 tensors ``(n, d)`` and ``(n,)`` ready for the model and the loss."""
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)


def accuracy(logits, y) -> float:
    """Fraction of examples where ``logits > 0`` (probability > 0.5) matches the label 0/1."""
    return float(((logits > 0).float() == y).float().mean())


def make_optimizer(model, name: str = "adam", lr: float = 0.01, weight_decay: float = 0.0):
    """``"sgd"``, ``"adam"`` or ``"adamw"`` over the model's parameters.

    ``weight_decay`` means two different things: for SGD and Adam it adds ``weight_decay * w`` to
    each gradient (an L2 penalty, which Adam then divides by its running gradient size); AdamW
    shrinks every weight by ``lr * weight_decay * w`` at each step, apart from the gradient
    (decoupled weight decay, notebook 09's optimizer).
    """
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose 'sgd', 'adam' or 'adamw'")


def evaluate(model, X, y) -> tuple[float, float]:
    """Mean binary cross-entropy and accuracy of ``model`` on NumPy (or tensor) data ``X (n, d)``,
    ``y (n,)``, measured in eval mode (no dropout) without gradients; the model is left in the
    mode it was in."""
    Xt, yt = to_tensors(X, y)
    with evaluating(model), torch.no_grad():
        logits = model(Xt)
        return nn.functional.binary_cross_entropy_with_logits(logits, yt).item(), accuracy(logits, yt)


def train_classifier(model, X_train, y_train, X_val, y_val, epochs: int = 100, batch_size: int | None = 32,
                     lr: float = 0.01, optimizer: str = "adam", weight_decay: float = 0.0, seed: int = 0,
                     progress: bool = False, drop_last: bool = False, keep_best: bool = False) -> dict:
    """Train ``model`` with binary cross-entropy, mini-batches and the chosen optimizer.

    ``batch_size=None`` uses the whole training set as one batch; ``drop_last=True`` skips each
    epoch's last, short batch. Returns a history with one entry per epoch: ``train_loss``,
    ``val_loss`` (measured after the epoch, on all the data, in eval mode without gradients),
    ``train_acc``, ``val_acc``. ``keep_best=True`` is early stopping: at the end the model gets
    back the weights of the epoch with the lowest validation loss, and the history says which
    (``best_epoch``, counted from 1). ``progress=True`` shows a tqdm bar with the current losses.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    Xt, yt = to_tensors(X_train, y_train)
    Xv, yv = to_tensors(X_val, y_val)
    loader = DataLoader(TensorDataset(Xt, yt), batch_size=batch_size or len(Xt), shuffle=True,
                        generator=torch.Generator().manual_seed(seed), drop_last=drop_last)
    loss_fn = nn.BCEWithLogitsLoss()
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    history = {"train_loss": [], "val_loss": [], "train_acc": [], "val_acc": []}
    best_state, best_loss = None, math.inf
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="training", unit="epoch")
    for _ in epochs_iter:
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with evaluating(model), torch.no_grad():
            train_logits, val_logits = model(Xt), model(Xv)
            history["train_loss"].append(loss_fn(train_logits, yt).item())
            history["val_loss"].append(loss_fn(val_logits, yv).item())
            history["train_acc"].append(accuracy(train_logits, yt))
            history["val_acc"].append(accuracy(val_logits, yv))
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError("the training loss became NaN or infinite: try a smaller learning rate")
        if keep_best and history["val_loss"][-1] < best_loss:
            best_loss = history["val_loss"][-1]
            best_state = {name: value.clone() for name, value in model.state_dict().items()}
            history["best_epoch"] = len(history["val_loss"])
        if progress:
            epochs_iter.set_postfix(train=f"{history['train_loss'][-1]:.3f}", val=f"{history['val_loss'][-1]:.3f}")
    if keep_best and best_state is not None:  # None only if every validation loss was NaN
        model.load_state_dict(best_state)
    return history


def predict_proba(model, X) -> np.ndarray:
    """Probabilities of class 1 for NumPy points ``X (m, d)``: returns ``(m,)``."""
    with evaluating(model), torch.no_grad():
        return torch.sigmoid(model(torch.as_tensor(X, dtype=torch.float32))).numpy()


def train_on_moons(hidden: int = 32, noise: float = 0.3, epochs: int = 100) -> dict:
    """Notebook 04's explorer experiment: 100 moons points with ``noise``, half held out, and an
    MLP with two hidden layers of ``hidden`` neurons (seeded) trained for ``epochs`` full-batch
    Adam steps at rate 0.01. Returns ``{"model", "history", "train": (X, y), "validation": (X, y)}``."""
    X, y = toy_data.moons(n=100, noise=noise, seed=0)
    X_train, y_train, X_val, y_val = toy_data.train_val_split(X, y, val_fraction=0.5, seed=0)
    torch.manual_seed(0)
    model = MLP((2, hidden, hidden, 1))
    history = train_classifier(model, X_train, y_train, X_val, y_val, epochs=epochs, batch_size=None, lr=0.01)
    return {"model": model, "history": history, "train": (X_train, y_train), "validation": (X_val, y_val)}
