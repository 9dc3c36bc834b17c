"""Gated attention-based MIL (Ilse et al., 2018): a bag of tile embeddings -> one prediction.

Training follows docs/protocols.md: AdamW (lr 1e-3, weight decay 1e-5), 20 epochs, cosine schedule,
one bag per step with at most 2,048 tiles sampled per bag, inputs standardised with the training
bags' tile mean and std. The loss is the caller's (class-balanced cross-entropy, survival NLL).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.evaluation import Decay, Dropout, Rate, Steps, Width
from harness.scoring.torch_threads import single_thread
from harness.scoring.head_optimiser import head_adamw


class AbmilConfig(BaseModel):
    """The ABMIL head and its training; a slide family's `params: {abmil: {...}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    hidden: Width = 128
    dropout: Dropout = 0.25
    lr: Rate = 1e-3
    weight_decay: Decay = 1e-5
    epochs: Steps = 20
    max_bag: Width = 2048


def make_abmil(in_dim: int, n_out: int, config: AbmilConfig):
    import torch
    from torch import nn

    class GatedAttentionMIL(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Sequential(nn.Linear(in_dim, config.hidden), nn.ReLU(), nn.Dropout(config.dropout))
            self.attention_v = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.Tanh())
            self.attention_u = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.Sigmoid())
            self.attention_w = nn.Linear(config.hidden, 1)
            self.head = nn.Linear(config.hidden, n_out)

        def forward(self, bag: torch.Tensor) -> torch.Tensor:  # (n, in_dim) -> (n_out,)
            h = self.embed(bag)
            attention = torch.softmax(self.attention_w(self.attention_v(h) * self.attention_u(h)).squeeze(1), dim=0)
            return self.head(attention @ h)

    return GatedAttentionMIL()


class Standardiser:
    def __init__(self, bags: Sequence[np.ndarray]):
        tiles = np.concatenate(bags).astype(np.float64)
        self.mean, self.std = tiles.mean(axis=0), tiles.std(axis=0) + 1e-6

    def __call__(self, bag: np.ndarray) -> np.ndarray:
        return ((bag - self.mean) / self.std).astype(np.float32)


def train_abmil(bags: Sequence[np.ndarray], loss_of: Callable, n_out: int, config: AbmilConfig, seed: int):
    """Fit on `bags`; loss_of(output, bag index) -> scalar loss. Returns predict(bag) -> output."""
    with single_thread():
        import torch

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        scale = Standardiser(bags)
        tensors = [torch.from_numpy(scale(b)) for b in bags]
        model = make_abmil(tensors[0].shape[1], n_out, config)
        optimiser = head_adamw(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps = config.epochs * len(tensors)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(steps, 1))
        model.train()
        for _ in range(config.epochs):
            for i in rng.permutation(len(tensors)):
                bag = tensors[i]
                if len(bag) > config.max_bag:
                    bag = bag[torch.from_numpy(rng.choice(len(bag), config.max_bag, replace=False))]
                optimiser.zero_grad(set_to_none=True)
                loss_of(model(bag), int(i)).backward()
                optimiser.step()
                schedule.step()
        model.eval()

    def predict(bag: np.ndarray) -> np.ndarray:
        with single_thread(), torch.no_grad():
            return model(torch.from_numpy(scale(bag))).numpy()

    return predict
