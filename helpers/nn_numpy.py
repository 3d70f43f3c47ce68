"""Neurons and layers in plain NumPy (introduced in notebook 01_neurons_and_layers).

Conventions used throughout the course:

* a batch of inputs ``X`` has shape ``(n, d_in)``: one row per example;
* a layer's weights ``W`` have shape ``(d_in, d_out)`` and its bias ``b`` shape ``(d_out,)``,
  so a layer computes ``X @ W + b`` with shape ``(n, d_out)``.
  (PyTorch's ``nn.Linear`` stores the transpose, ``weight`` of shape ``(d_out, d_in)``.)
"""

import numpy as np


def sigmoid(z):
    """The S-shaped squashing function 1 / (1 + e^-z), computed without overflow for any z."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))  # never overflows: |z| >= 0 so e is in (0, 1]
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(z):
    """Hyperbolic tangent: like sigmoid, but centred on 0 with outputs in (-1, 1)."""
    return np.tanh(np.asarray(z, dtype=float))


def relu(z):
    """Rectified linear unit: max(0, z), element by element."""
    return np.maximum(0.0, np.asarray(z, dtype=float))


def dense(X, W, b):
    """One fully connected layer: ``X (n, d_in) @ W (d_in, d_out) + b (d_out,) -> (n, d_out)``."""
    return np.asarray(X, dtype=float) @ np.asarray(W, dtype=float) + np.asarray(b, dtype=float)


def two_layer_forward(X, W1, b1, W2, b2, activation=relu):
    """A 2-layer network: hidden ``h = activation(X @ W1 + b1)``, output ``sigmoid(h @ W2 + b2)``.

    Shapes: ``X (n, d_in)``, ``W1 (d_in, d_hidden)``, ``W2 (d_hidden, d_out)``; returns ``(n, d_out)``
    probabilities.
    """
    hidden = activation(dense(X, W1, b1))
    return sigmoid(dense(hidden, W2, b2))


def count_parameters(layer_sizes) -> int:
    """Weights plus biases of a fully connected network with these layer sizes, e.g. ``[2, 3, 1] -> 13``."""
    return sum(d_in * d_out + d_out for d_in, d_out in zip(layer_sizes[:-1], layer_sizes[1:]))


def forward_layers(X, params, activation=relu):
    """A forward pass through any number of layers, one after the other.

    ``params`` lists ``(W, b)`` for each layer from input to output, ``W`` of shape
    ``(d_in, d_out)``; every layer but the last applies ``activation``, the last a sigmoid.
    Returns the list of every layer's output, ``[a_1, ..., a_L]``, each of shape ``(n, d_k)``;
    the last one is the network's output. (Notebook 01's build exercise.)
    """
    outputs = []
    a = np.asarray(X, dtype=float)
    for k, (W, b) in enumerate(params):
        z = dense(a, W, b)
        a = sigmoid(z) if k == len(params) - 1 else activation(z)
        outputs.append(a)
    return outputs
