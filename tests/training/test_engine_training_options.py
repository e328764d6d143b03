"""Training options: focal loss, class weights, gradient clipping, learning-rate schedulers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from ktrdr_core.errors import BadInputError
from ktrdr_core.training.losses import Loss, balanced_class_weights, focal_loss
from ktrdr_core.training.model import build_mlp
from ktrdr_core.training.trainer import ModelTrainer


def data(
    n: int = 240, seed: int = 0, learnable: bool = True, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (np.digitize(X[:, 0], [-0.5, 0.5]) if learnable else rng.integers(0, 3, n)).astype(np.int64)
    X = X * scale
    cut = int(n * 0.75)
    return X[:cut], y[:cut], X[cut:], y[cut:]


def model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_mlp(4, [16], "relu", 0.0)


# ------------------------------------------------------------------------------ focal loss


def test_focal_loss_is_cross_entropy_at_gamma_zero() -> None:
    torch.manual_seed(0)
    logits = torch.randn(50, 3) * 3
    target = torch.randint(0, 3, (50,))
    weight = torch.tensor([0.5, 2.0, 1.0])
    assert torch.allclose(
        focal_loss(logits, target, 0.0), torch.nn.functional.cross_entropy(logits, target), atol=1e-6
    )
    assert torch.allclose(
        focal_loss(logits, target, 0.0, weight),
        torch.nn.functional.cross_entropy(logits, target, weight=weight),
        atol=1e-6,
    )
    assert focal_loss(logits, target, 2.0) < focal_loss(logits, target, 0.0)


def test_focal_loss_matches_hand_values() -> None:
    # sample 1: equal logits, p = 1/3 -> (2/3)^2 * ln 3; sample 2: p_HOLD = 2/4 -> (1/2)^2 * ln 2
    logits = torch.tensor([[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0]])
    target = torch.tensor([0, 1])
    one, two = (2 / 3) ** 2 * math.log(3), 0.25 * math.log(2)
    assert float(focal_loss(logits, target, 2.0)) == pytest.approx((one + two) / 2, rel=1e-6)
    weight = torch.tensor([1.0, 3.0, 1.0])
    assert float(focal_loss(logits, target, 2.0, weight)) == pytest.approx((one + 3 * two) / 4, rel=1e-6)


def test_focal_loss_gradient_is_finite_for_a_certain_prediction() -> None:
    logits = torch.tensor([[60.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    focal_loss(logits, torch.tensor([0, 1]), 0.5).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_balanced_class_weights() -> None:
    weights = balanced_class_weights(torch.tensor([0, 0, 0, 1]), 3)
    # n / (classes present * n_c): 4 / (2 * 3), 4 / (2 * 1); an absent class weighs nothing
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])


def test_validation_loss_is_the_training_loss() -> None:
    config = {
        "epochs": 3,
        "batch_size": 32,
        "learning_rate": 0.02,
        "loss": "focal",
        "focal_gamma": 2.0,
        "class_weights": "balanced",
        "early_stopping": False,
    }
    X, y, Xv, yv = data()
    net = model()
    trainer = ModelTrainer(config)
    result = trainer.train(net, X, y, Xv, yv)
    loss = Loss(
        "focal",
        gamma=2.0,
        class_weights="balanced",
        y_train=torch.as_tensor(y),
        num_classes=3,
        device=torch.device("cpu"),
    )
    focal, _ = trainer.evaluate(net, torch.as_tensor(Xv), torch.as_tensor(yv), loss)
    plain, _ = trainer.evaluate(net, torch.as_tensor(Xv), torch.as_tensor(yv))
    assert result["val_loss"] == pytest.approx(focal, rel=1e-6)
    assert abs(focal - plain) > 1e-3  # a different quantity than cross-entropy
    again = ModelTrainer(config).train(model(), X, y, Xv, yv)
    assert again["history"] == result["history"]  # still deterministic


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(BadInputError, match="loss 'hinge' is not supported"):
        ModelTrainer({"epochs": 1, "loss": "hinge"}).train(model(), *data())


# ------------------------------------------------------------------------------ gradient clipping


def _grad_norms_per_step(config: dict[str, Any]) -> list[float]:
    """The total gradient norm each optimizer step sees (torch's global step pre-hook)."""
    norms: list[float] = []

    def before_step(optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        ModelTrainer(config).train(model(), *data(scale=50.0))
    finally:
        handle.remove()
    return norms


def test_gradient_clip_bounds_the_gradient_norm() -> None:
    config: dict[str, Any] = {"epochs": 2, "batch_size": 16, "learning_rate": 0.01, "early_stopping": False}
    unclipped = _grad_norms_per_step(config)
    clipped = _grad_norms_per_step({**config, "gradient_clip": 0.5})
    assert len(clipped) == len(unclipped) == 2 * 12
    assert max(unclipped) > 5.0  # large inputs: the raw gradients are far above the bound
    assert max(clipped) <= 0.5 * (1 + 1e-4)
    assert min(clipped) > 0.1  # clipped, not zeroed


# ------------------------------------------------------------------------------ schedulers


def test_reduce_on_plateau_lowers_the_learning_rate_down_to_min_lr() -> None:
    config = {
        "epochs": 12,
        "batch_size": 16,
        "learning_rate": 0.05,
        "early_stopping": False,
        "lr_scheduler": {"type": "reduce_on_plateau", "factor": 0.5, "patience": 0, "min_lr": 0.01},
    }
    result = ModelTrainer(config).train(model(), *data(learnable=False))
    rates = result["history"]["learning_rate"]
    assert rates[0] == 0.05
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))  # never raised
    assert min(rates) == pytest.approx(0.01)  # random labels: the plateau comes, down to min_lr
    assert set(np.round(rates, 10)) <= {0.05, 0.025, 0.0125, 0.01}
    # it lowered exactly after the epochs whose val_loss did not improve on the best so far
    val = result["history"]["val_loss"]
    for epoch in range(1, len(rates)):
        best_before = min(val[:epoch])
        if rates[epoch] < rates[epoch - 1]:
            assert val[epoch - 1] >= best_before * (1 - 1e-4)


def test_step_and_exponential_schedules() -> None:
    base = {"epochs": 4, "batch_size": 32, "learning_rate": 0.01, "early_stopping": False}
    step = ModelTrainer({**base, "lr_scheduler": {"type": "step", "step_size": 2, "gamma": 0.5}}).train(
        model(), *data()
    )
    assert step["history"]["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.005])
    exp = ModelTrainer({**base, "lr_scheduler": {"type": "exponential", "gamma": 0.9}}).train(
        model(), *data()
    )
    assert exp["history"]["learning_rate"] == pytest.approx([0.01, 0.009, 0.0081, 0.00729])
    plain = ModelTrainer(base).train(model(), *data())
    assert plain["history"]["learning_rate"] == [0.01] * 4


def test_lr_scheduler_true_is_reduce_on_plateau() -> None:
    trainer = ModelTrainer({"lr_scheduler": True})
    assert trainer.config["lr_scheduler"] == {
        "type": "reduce_on_plateau",
        "factor": 0.5,
        "patience": 5,
        "min_lr": 0.0,
    }
    with pytest.raises(BadInputError, match="lr_scheduler type 'cosine' is not supported"):
        ModelTrainer({"lr_scheduler": {"type": "cosine"}})
