"""What a distillation method is, and the table of methods by name.

A method is a class that declares its settings (`Params`, a pydantic model: the keys it adds to a
distillation config), how many teachers it takes, how it gets its training items and targets
(`prepare`), and the loss the shared training loop minimises (`heads`, `observe`, `loss`).
Adding one is a module and one call, `register_method(MyMethod)`; distillers/__init__.py
registers the built-in ones.

The loop (training_loop.py) calls, per step: `observe(tiles)` with the batch's view when
`observes_batches` is true (online teachers embed it), then `loss(heads, summary, index, grid, codes)` where `heads` are the modules
`heads(student_dim)` built, `summary` the student's embedding, `index` the items' positions among
the training items, and, when `uses_patch_grid` is true, `grid` the student's token map (B, D, h, w)
and `codes` the batch's rot90/flip codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from harness.plugins import register_plugin


@dataclass
class DistillationRun:
    """Everything a method's `prepare` may read."""

    config: Any  # DistillConfig (its `method_params` are this method's Params)
    registry: Any  # the harness Registry
    context: Any  # DataContext
    extract: Any  # ExtractOptions
    source: Any  # the opened, prepared source of config.dataset


@dataclass
class Prepared:
    """A method's training data: items, the held-out ones, each teacher's targets."""

    images: Any  # map-style sequence of every item (training and held out)
    held_out: np.ndarray  # positions of the held-out items (fidelity is measured on them)
    description: dict  # what the distillation record says about the data
    targets: list  # one TeacherTargets per teacher
    online: Any = None  # online teachers (they embed each batch), when the method runs them
    extra: dict | None = None  # anything else `build` needs (e.g. the region grid)


class DistillationMethod:
    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    teachers: ClassVar[Literal["one", "several"]] = "one"  # "several": one or more
    fidelity: ClassVar[bool] = True  # whether the student's adaptors reproduce each teacher (measured on held-out items)
    uses_patch_grid: bool = False  # the loop then hands loss() the student's token map and augmentation codes
    observes_batches: bool = False  # the loop then calls observe() with each batch's view (online teachers)

    @classmethod
    def prepare(cls, run: DistillationRun) -> Prepared:
        """The training items and the teachers' targets on them."""
        raise NotImplementedError

    @classmethod
    def build(cls, run: DistillationRun, prepared: Prepared, keep: np.ndarray) -> "DistillationMethod":
        """The loss object; `keep` are the training items' positions (the loss indexes 0..len(keep)-1)."""
        raise NotImplementedError

    @classmethod
    def nested_dims(cls, params: BaseModel) -> list[int]:
        """The Matryoshka dims the student is trained at besides its full one (scored by --dims)."""
        return []

    @classmethod
    def card(cls, params: BaseModel) -> dict:
        """Keys the student's card.yaml gains from this method (e.g. the magnification it reads)."""
        return {}

    def heads(self, student_dim: int) -> nn.ModuleDict:
        raise NotImplementedError

    def observe(self, tiles: torch.Tensor) -> None:
        """With `observes_batches`: each batch's view, before the student's forward (on the device)."""

    def loss(self, heads: nn.ModuleDict, summary: torch.Tensor, index: np.ndarray, grid=None, codes=None
             ) -> torch.Tensor:
        raise NotImplementedError


METHODS: dict[str, type[DistillationMethod]] = {}  # `method:` of a distillation config -> its class


def register_method(method: type[DistillationMethod]) -> type[DistillationMethod]:
    """Make `method: <method.name>` valid in distillation configs (usable as a class decorator)."""
    return register_plugin(METHODS, method, DistillationMethod, "distillation method")
