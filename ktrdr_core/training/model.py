"""The neural network: a plain multi-layer perceptron over the feature vector."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATION_LAYERS", "NUM_CLASSES", "build_mlp", "select_device"]

NUM_CLASSES = 3  # BUY, HOLD, SELL (see ktrdr_core.training.labels)

ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
}


def build_mlp(
    input_size: int,
    hidden_layers: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    num_classes: int = NUM_CLASSES,
) -> nn.Sequential:
    """``Linear → activation → Dropout`` per hidden layer, then a ``Linear`` to the logits.

    The layout is fixed so that :func:`~ktrdr_core.training.storage.load_model`
    can rebuild the network from ``config.json`` and load ``model.pt`` into it.
    """
    if input_size < 1:
        raise ValueError("an MLP needs at least one input feature")
    layers: list[nn.Module] = []
    width = input_size
    for size in hidden_layers:
        layers.append(nn.Linear(width, int(size)))
        layers.append(ACTIVATION_LAYERS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def select_device(requested: str | None = None) -> torch.device:
    """``"auto"``/``None``: CUDA when available, else CPU; otherwise the device named."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        from ktrdr_core.errors import BadInputError

        raise BadInputError(f"device {requested!r} was requested but CUDA is not available")
    return device
