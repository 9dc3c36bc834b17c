"""A linear probe on frozen embeddings: one linear layer, AdamW, early stopping on validation.

Defaults are eva's protocol (docs/protocols.md): lr 3e-4, batch 256, up to 12,500 steps, the
checkpoint with the best validation balanced accuracy is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from harness.scoring.metrics import balanced_accuracy
from harness.scoring.torch_threads import single_thread
from harness.scoring.head_optimiser import head_adamw

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LinearProbeConfig:
    lr: float = 3e-4
    weight_decay: float = 0.0
    batch_size: int = 256
    max_steps: int = 12_500
    eval_every: int = 250
    patience: int = 1_250  # steps without a better validation score before stopping


@dataclass
class FittedProbe:
    layer: nn.Linear
    steps: int
    best_step: int
    val_balanced_accuracy: float

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.layer(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()


def fit_linear_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: LinearProbeConfig,
    seed: int,
) -> FittedProbe:
    with single_thread():
        return _fit(x_train, y_train, x_val, y_val, n_classes, config, seed)


def _fit(x_train, y_train, x_val, y_val, n_classes: int, config: LinearProbeConfig, seed: int) -> FittedProbe:
    import torch  # imported here so `harness list` and the registry stay fast
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt = torch.from_numpy(np.array(x_train, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.int64)
    xv = torch.from_numpy(np.array(x_val, dtype=np.float32))
    layer = nn.Linear(xt.shape[1], n_classes)
    optimiser = head_adamw(layer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()

    best = (-1.0, 0)  # (val balanced accuracy, step)
    best_state = {k: v.clone() for k, v in layer.state_dict().items()}
    order = torch.randperm(len(xt), generator=generator)
    cursor = 0
    step = 0
    while step < config.max_steps:
        if cursor >= len(order):  # next epoch
            order, cursor = torch.randperm(len(xt), generator=generator), 0
        batch = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        optimiser.zero_grad(set_to_none=True)
        loss_fn(layer(xt[batch]), yt[batch]).backward()
        optimiser.step()
        step += 1
        if step % config.eval_every == 0 or step == config.max_steps:
            with torch.no_grad():
                score = balanced_accuracy(y_val, layer(xv).argmax(1).numpy())
            if score > best[0]:
                best = (score, step)
                best_state = {k: v.clone() for k, v in layer.state_dict().items()}
            elif step - best[1] >= config.patience:
                break
    layer.load_state_dict(best_state)
    return FittedProbe(layer=layer, steps=step, best_step=best[1], val_balanced_accuracy=best[0])
