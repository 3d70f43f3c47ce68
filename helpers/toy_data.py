"""Small 2-D datasets made by code, for notebooks 01, 02 and 04 (introduced in 01_neurons_and_layers).

Every dataset is generated from a seed, so it is the same on every machine. Each
function returns ``X`` with shape ``(n, 2)`` (float32 coordinates) and ``y`` with
shape ``(n,)`` (integer class labels 0 or 1).
"""

import numpy as np


def blobs(n: int = 200, noise: float = 0.6, seed: int = 0):
    """Two round clouds, one per class: separable by a straight line when ``noise`` is small."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centres = np.array([[-1.0, -1.0], [1.0, 1.0]])
    X = centres[y] + noise * rng.normal(size=(n, 2))
    return X.astype(np.float32), y.astype(np.int64)


def moons(n: int = 200, noise: float = 0.15, seed: int = 0):
    """Two interleaving half circles: no straight line separates them."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0.0, np.pi, size=n)
    X = np.where(y[:, None] == 0,
                 np.column_stack([np.cos(t), np.sin(t)]),
                 np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)]))
    X = X - np.array([0.5, 0.25]) + noise * rng.normal(size=(n, 2))
    return X.astype(np.float32), y.astype(np.int64)


def circles(n: int = 200, noise: float = 0.1, factor: float = 0.5, seed: int = 0):
    """A small ring (class 1) inside a large ring (class 0)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0.0, 2 * np.pi, size=n)
    radius = np.where(y == 1, factor, 1.0)
    X = radius[:, None] * np.column_stack([np.cos(t), np.sin(t)]) + noise * rng.normal(size=(n, 2))
    return X.astype(np.float32), y.astype(np.int64)


def xor(n: int = 200, noise: float = 0.25, seed: int = 0):
    """Four clusters at the corners of a square; opposite corners share a class (the XOR problem)."""
    rng = np.random.default_rng(seed)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    which = np.arange(n) % 4
    y = (which >= 2).astype(np.int64)
    X = corners[which] + noise * rng.normal(size=(n, 2))
    return X.astype(np.float32), y


def spirals(n: int = 200, noise: float = 0.2, turns: float = 1.5, seed: int = 0):
    """Two arms of a spiral wound around each other: hard for small networks."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.sqrt(rng.uniform(0.05, 1.0, size=n)) * turns * 2 * np.pi
    sign = np.where(y == 0, 1.0, -1.0)
    X = sign[:, None] * np.column_stack([t * np.cos(t), t * np.sin(t)]) / (turns * 2 * np.pi) * 2.0
    X = X + noise * rng.normal(size=(n, 2)) * 0.5
    return X.astype(np.float32), y.astype(np.int64)


def train_val_split(X, y, val_fraction: float = 0.25, seed: int = 0):
    """Shuffle with ``seed`` and split into ``(X_train, y_train, X_val, y_val)``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_val = max(1, int(round(len(X) * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    return X[train], y[train], X[val], y[val]


def train_val_test_split(X, y, n_val: int, n_test: int, seed: int = 0):
    """Shuffle with ``seed`` and split into ``(X_train, y_train, X_val, y_val, X_test, y_test)``
    with ``n_val`` validation and ``n_test`` test points (notebook 04's early stopping): the
    validation set picks (the epoch, the settings), the test set, kept out of every choice, reports."""
    if n_val < 1 or n_test < 1 or n_val + n_test >= len(X):
        raise ValueError(f"need n_val >= 1, n_test >= 1 and training points left over: got n_val={n_val}, "
                         f"n_test={n_test} for {len(X)} points")
    order = np.random.default_rng(seed).permutation(len(X))
    val, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    return X[train], y[train], X[val], y[val], X[test], y[test]
