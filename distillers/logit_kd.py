"""logit_kd: Hinton KD from teachers' task heads into a student head. A teacher's task head is a
linear probe on its embeddings of a labelled dataset's train split; an ensemble is the mean of
the teachers' tempered softmaxes. Loss alpha CE + (1 - alpha) tau^2 KL (without labels: pure KD).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness.distillers.losses import hinton_kd_loss
from harness.distillers.method import DistillationMethod, DistillationRun, Prepared, register_method
from harness.distillers.training_items import training_items
from harness.errors import HarnessError


class LogitKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tau: float = Field(2.0, gt=0)  # temperature
    alpha: float = Field(0.5, ge=0, le=1)  # weight of the label cross-entropy
    label_dataset: str = "synth-tiles"  # where the teachers' task heads are fitted (its train split)


@register_method
class LogitKD(DistillationMethod):
    name = "logit_kd"
    Params = LogitKDParams
    teachers = "several"  # an ensemble: the mean of the teachers' tempered softmaxes
    fidelity = False  # one classifier head, no adaptor per teacher

    @classmethod
    def prepare(cls, run: DistillationRun) -> Prepared:
        label_dataset = run.config.method_params.label_dataset
        if label_dataset not in run.registry.datasets:
            raise HarnessError(f"label_dataset '{label_dataset}' is not in the registry (see `harness list`)")
        return training_items(run)

    @classmethod
    def build(cls, run: DistillationRun, prepared: Prepared, keep: np.ndarray) -> "LogitKD":
        """The teachers' task heads, fitted on the labelled dataset's train split, applied to the items."""
        from harness.embedding_cache import EmbeddingCache
        from harness.models.loading import load_encoder
        from harness.models.model_spec import LoadOptions
        from harness.sources import open_source
        from harness.tile_embedding import embed_split

        config, source, params = run.config, run.source, run.config.method_params
        labelled = open_source(params.label_dataset, run.registry.datasets[params.label_dataset], run.context,
                               run.registry.datasets)
        labelled.prepare()
        cache = EmbeddingCache.of(run.context)
        fit = []
        for spec in config.teachers:
            encoder = load_encoder(spec.model, LoadOptions(device=run.extract.device))
            x = np.asarray(embed_split(encoder, labelled, labelled.split_fingerprint("train"), "train", cache, run.extract)[0]
                           .embeddings)
            fit.append((x, labelled.labels("train")))
        probs = teacher_probabilities(config, prepared.targets, fit, len(labelled.class_names()))[keep]
        labels = None
        splits = config.splits or (source.split_names() if source.kind == "tiles" else [])
        if source.kind == "tiles" and all(source.labels(s) is not None for s in splits) \
                and source.class_names() == labelled.class_names():
            labels = np.concatenate([source.labels(s) for s in splits])[keep]
        return cls(config, prepared.targets, probs, labels)

    def __init__(self, config, targets, teacher_probs: np.ndarray, labels: np.ndarray | None):
        self.config, self.targets, self.params = config, targets, config.method_params
        self.teacher_probs, self.labels = teacher_probs, labels

    def heads(self, student_dim: int) -> nn.ModuleDict:
        return nn.ModuleDict({"classifier": nn.Linear(student_dim, self.teacher_probs.shape[1])})

    def loss(self, heads: nn.ModuleDict, summary: torch.Tensor, index: np.ndarray, grid=None, codes=None
             ) -> torch.Tensor:
        probs = torch.from_numpy(self.teacher_probs[index]).to(summary.device)
        y = torch.from_numpy(self.labels[index]).to(summary.device) if self.labels is not None else None
        return hinton_kd_loss(heads["classifier"](summary), probs, y, tau=self.params.tau, alpha=self.params.alpha)


def teacher_probabilities(config, targets, fit_embeddings: list[tuple[np.ndarray, np.ndarray]], n_classes: int):
    """Each teacher's task head (a linear probe on its embeddings of the labelled train split),
    applied to the distillation tiles at temperature tau; the ensemble is the mean of softmaxes."""
    from scipy.special import softmax

    from harness.scoring.linear_probe import LinearProbeConfig, fit_linear_probe

    probs = []
    for t, (x, y) in zip(targets, fit_embeddings):
        mean, std = x.mean(0), x.std(0) + 1e-6
        probe = fit_linear_probe((x - mean) / std, y, (x - mean) / std, y, n_classes,
                                 LinearProbeConfig(lr=1e-2, max_steps=500, eval_every=100, patience=500), config.seed)
        probs.append(softmax(probe.predict_logits((t.raw - mean) / std) / config.method_params.tau, axis=1))
    return np.mean(probs, axis=0).astype(np.float32)
