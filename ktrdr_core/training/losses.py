"""The training losses: cross-entropy and multi-class focal loss, optionally class-weighted.

Focal loss (Lin et al., 2017) for a sample of true class ``y`` with predicted
probability ``p_y`` is ``-w_y (1 - p_y)^gamma log p_y``: ``gamma`` 0 is
cross-entropy; a larger ``gamma`` lowers the weight of samples the model
already gets right, so rare classes are not drowned out by easy majority-class
ones. torchvision ships only the binary (sigmoid) form, hence this one.

Means are weighted means, ``sum(w_y * loss) / sum(w_y)``, as torch's
``cross_entropy(weight=...)`` computes them, so that focal loss at ``gamma``
0 equals cross-entropy with the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["Loss", "balanced_class_weights", "focal_loss"]

# (1 - p) is kept at or above this so that (1 - p) ** gamma has a finite gradient
# for gamma < 1 when a sample is predicted with probability 1.0 in float32.
_MIN_MISS = 1e-12


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-class focal loss of ``logits`` (N, C) against class indices ``target`` (N,)."""
    log_p = nn.functional.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    miss = (-torch.expm1(log_p)).clamp_min(_MIN_MISS)  # 1 - p, accurately for p near 1
    losses = -miss.pow(gamma) * log_p
    if weight is not None:
        sample_weight = weight[target]
        losses = losses * sample_weight
        if reduction == "mean":
            return losses.sum() / sample_weight.sum()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    return losses.mean()


def balanced_class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's ``"balanced"`` weights, ``n / (k * n_c)``; a class with no samples gets 0."""
    counts = torch.bincount(y.long().cpu(), minlength=num_classes).to(torch.float32)
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float32)
    weights[present] = len(y) / (int(present.sum()) * counts[present])
    return weights


class Loss:
    """The configured loss, as a weighted mean (training) or a sum plus its weight (evaluation).

    ``kind`` is ``cross_entropy`` or ``focal``; ``class_weights`` is ``None``,
    ``"balanced"`` (from the training labels) or one weight per class.
    """

    def __init__(
        self,
        kind: str,
        *,
        gamma: float = 2.0,
        class_weights: Any = None,
        y_train: torch.Tensor,
        num_classes: int,
        device: torch.device,
    ) -> None:
        if kind not in ("cross_entropy", "focal"):
            from ktrdr_core.errors import BadInputError

            raise BadInputError(f"loss {kind!r} is not supported (use cross_entropy or focal)")
        self.kind = kind
        self.gamma = float(gamma)
        self.weight: torch.Tensor | None = None
        if isinstance(class_weights, str) and class_weights.lower() == "balanced":
            self.weight = balanced_class_weights(y_train, num_classes).to(device)
        elif isinstance(class_weights, Sequence) and not isinstance(class_weights, str):
            self.weight = torch.as_tensor(
                [float(w) for w in class_weights], dtype=torch.float32, device=device
            )

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "focal":
            return focal_loss(logits, target, self.gamma, self.weight)
        return nn.functional.cross_entropy(logits, target, weight=self.weight)

    def total(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
        """``(summed loss, summed sample weight)``: add these over chunks, then divide."""
        if self.kind == "focal":
            loss = focal_loss(logits, target, self.gamma, self.weight, reduction="sum")
        else:
            loss = nn.functional.cross_entropy(logits, target, weight=self.weight, reduction="sum")
        weight = float(len(target)) if self.weight is None else float(self.weight[target].sum())
        return float(loss), weight
