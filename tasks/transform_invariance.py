"""Transform invariance (THUNDER style): how far a perturbation moves a tile's embedding.

The dataset has a `clean` split and one split per transform, item i being the same tile. Per
transform: mean over tiles of cos(clean_i, transformed_i), with a bootstrap CI over tiles;
`mean_cosine` averages the transforms. A model that ignores the perturbation scores 1.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.scoring.bootstrap import N_RESAMPLES, bootstrap_mean_ci
from harness.evaluation import Evaluation, MetricInfo, Resamples, TaskData, TaskFamily, summarise
from harness.perturbations import PERTURBATIONS


class TransformInvarianceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    reference_split: str = "clean"
    bootstrap_resamples: Resamples = N_RESAMPLES


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class TransformInvariance(TaskFamily):
    name: ClassVar[str] = "transform_invariance"
    title: ClassVar[str] = "transform invariance"
    Params: ClassVar[type[BaseModel]] = TransformInvarianceParams

    @staticmethod
    def scored_splits(params: TransformInvarianceParams, splits: Sequence[str]) -> list[str] | None:
        return None  # every split is the same tiles, transformed

    @staticmethod
    def metrics(params: TransformInvarianceParams) -> dict[str, MetricInfo]:
        cosine = MetricInfo(bounds=(-1.0, 1.0), group="robustness")
        return {name: cosine for name in ["mean_cosine", *(f"cosine_{name}" for name in PERTURBATIONS)]}

    def evaluate(self, data: TaskData, params: TransformInvarianceParams) -> Evaluation:
        if params.reference_split not in data.splits:
            raise ValueError(f"transform invariance needs a '{params.reference_split}' split; "
                             f"the dataset has {sorted(data.splits)}")
        clean = _unit(data.splits[params.reference_split].embeddings)
        metrics, per_transform, samples = {}, [], []
        for split, arrays in data.splits.items():
            if split == params.reference_split:
                continue
            cosine = np.einsum("ij,ij->i", clean, _unit(arrays.embeddings))
            per_transform.append(cosine)
            samples += [{"item": i, "transform": split, "cosine": float(c)} for i, c in enumerate(cosine)]
            metrics[f"cosine_{split}"] = summarise([cosine.mean()],
                                                   bootstrap_mean_ci(cosine, n_resamples=params.bootstrap_resamples))
        if not per_transform:
            raise ValueError("the dataset has no transformed split")
        mean = np.mean(per_transform, axis=0)  # per tile, over transforms
        metrics["mean_cosine"] = summarise([mean.mean()], bootstrap_mean_ci(mean, n_resamples=params.bootstrap_resamples))
        return Evaluation(metrics=metrics, n_samples={"tiles": len(clean), "transforms": len(per_transform)},
                          seeds=[], details={"transforms": [s for s in data.splits if s != params.reference_split]},
                          samples=samples)
