"""Reproducibility and devices (introduced in notebook 00_start_here).

``seed_everything`` fixes every random number generator the course uses, so a
notebook gives the same numbers each time it runs on the same machine.
``pick_device`` uses a GPU when one is present and the CPU otherwise.
"""

import os
import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch; return a fresh NumPy ``Generator`` for this seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return np.random.default_rng(seed)


def pick_device() -> torch.device:
    """The best device available: CUDA, then Apple's MPS, then the CPU (always works)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
