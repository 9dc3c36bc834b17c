"""Slide-level classification: gated ABMIL on tile embeddings, and a mean-pooled linear probe.

Protocol (docs/protocols.md): patient-grouped k folds (5 unless the dataset defines folds); ABMIL with
class-balanced cross-entropy; the baseline is a linear probe (tile protocol) on the mean of each
slide's tile embeddings. Each metric's mean and std are over folds; the 95% CI is a bootstrap
over slides of the pooled out-of-fold predictions (every slide is predicted once, by the fold
that held it out).
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.scoring.abmil import AbmilConfig, train_abmil
from harness.scoring.parallel_fits import map_fits
from harness.scoring.bootstrap import N_RESAMPLES, bootstrap_ci
from harness.evaluation import (
    Evaluation, Folds, MetricInfo, Resamples, SCORE, Steps, TaskData, TaskFamily, TestFolds, embedded,
    summarise,
)
from harness.scoring.linear_probe import LinearProbeConfig, fit_linear_probe
from harness.scoring.metrics import balanced_accuracy_from_confusion, confusion_matrices, macro_auroc, macro_f1_from_confusion
from harness.scoring.patient_folds import patient_folds


class SlideClassificationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    folds: Folds = 5
    test_folds: TestFolds | None = None
    seed: int = 0
    abmil: AbmilConfig = Field(default_factory=AbmilConfig)
    probe_max_steps: Steps = 2000
    bootstrap_resamples: Resamples = N_RESAMPLES


METRICS = {
    "balanced_accuracy": lambda y, proba, w, k: balanced_accuracy_from_confusion(
        confusion_matrices(y, proba.argmax(1), k, w)),
    "macro_f1": lambda y, proba, w, k: macro_f1_from_confusion(confusion_matrices(y, proba.argmax(1), k, w)),
    "macro_auroc": lambda y, proba, w, k: np.atleast_1d(macro_auroc(y, proba, w)),
}


class SlideClassification(TaskFamily):
    name: ClassVar[str] = "slide_classification"
    title: ClassVar[str] = "slide classification"
    Params: ClassVar[type[BaseModel]] = SlideClassificationParams

    @staticmethod
    def scored_splits(params: SlideClassificationParams, splits: Sequence[str]) -> list[str] | None:
        return None  # cross-validation over the dataset's slides

    @staticmethod
    def metrics(params: SlideClassificationParams) -> dict[str, MetricInfo]:
        return {name: SCORE for name in [*METRICS, *(f"meanpool_{m}" for m in METRICS)]}

    def evaluate(self, data: TaskData, params: SlideClassificationParams) -> Evaluation:
        from scipy.special import softmax

        slides = embedded(data.slides)
        y, k = slides.labels, len(data.class_names)
        folds = patient_folds(slides.patients, y, params.folds, slides.folds, params.seed,
                              params.test_folds)
        config = params.abmil
        pooled = np.stack([bag.mean(axis=0) for bag in slides.features])
        out_of_fold = {"abmil": np.zeros((len(y), k)), "meanpool": np.zeros((len(y), k))}
        per_fold = {f"{prefix}{m}": [] for prefix in ("", "meanpool_") for m in METRICS}
        fold_of = np.zeros(len(y), int)  # the fold each slide is tested in

        def fit_fold(f: int) -> dict[str, np.ndarray]:
            train, test = folds[f]
            weights, labels = _balanced_weights(y[train], k), y[train]

            def loss_of(logits, i):
                import torch

                return torch.nn.functional.cross_entropy(logits[None], torch.tensor([labels[i]]), weight=weights)

            predict = train_abmil([slides.features[i] for i in train], loss_of, k, config, seed=params.seed + f)
            return {"abmil": softmax(np.stack([predict(slides.features[i]) for i in test]), axis=1),
                    "meanpool": _mean_pool_probe(pooled, y, train, test, k, params, seed=params.seed + f)}

        for f, ((_, test), predicted) in enumerate(zip(folds, map_fits(fit_fold, len(folds)))):
            fold_of[test] = f
            for kind, prefix in (("abmil", ""), ("meanpool", "meanpool_")):
                out_of_fold[kind][test] = predicted[kind]
                for m, metric in METRICS.items():
                    per_fold[prefix + m].append(float(metric(y[test], out_of_fold[kind][test], None, k)[0]))
        names = slides.slide_names()
        tested = np.sort(np.concatenate([test for _, test in folds]))  # all slides, unless test_folds leaves some out
        samples = [{"slide": names[i], "patient": str(slides.patients[i]), "fold": int(fold_of[i]), "label": int(y[i]),
                    "prediction": int(out_of_fold["abmil"][i].argmax()),
                    "prediction_meanpool": int(out_of_fold["meanpool"][i].argmax()),
                    "probabilities": out_of_fold["abmil"][i].round(6).tolist()} for i in tested]
        metrics = {}
        for kind, prefix in (("abmil", ""), ("meanpool", "meanpool_")):
            for m, metric in METRICS.items():
                ci = bootstrap_ci(lambda w, metric=metric, p=out_of_fold[kind][tested]: metric(y[tested], p, w, k),
                                  len(tested), n_resamples=params.bootstrap_resamples)
                metrics[prefix + m] = summarise(per_fold[prefix + m], ci)
        return Evaluation(
            metrics=metrics, n_samples={"slides": len(y), "patients": len(set(slides.patients)),
                                        "tested_slides": len(tested), "failed_slides": len(slides.failed),
                                        "folds": len(folds)},
            seeds=[params.seed + f for f in range(len(folds))],
            details={"head": "gated ABMIL", "per_fold": per_fold, "failed_slides": slides.failed,
                     "tiles_per_slide": float(np.mean([len(b) for b in slides.features]))},
            samples=samples,
        )


def _balanced_weights(y: np.ndarray, k: int):
    import torch

    counts = np.bincount(y, minlength=k).astype(np.float32)
    weights = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def _mean_pool_probe(pooled, y, train, test, k, params, seed) -> np.ndarray:
    from scipy.special import softmax
    from sklearn.model_selection import train_test_split

    n_val = max(k, round(0.2 * len(train)))
    if np.bincount(y[train], minlength=k).min() >= 2 and len(train) - n_val >= k:
        fit, val = train_test_split(train, test_size=n_val, stratify=y[train], random_state=seed)
    else:  # too few slides to hold some out: select on the training slides themselves
        fit, val = train, train
    mean, std = pooled[fit].mean(axis=0), pooled[fit].std(axis=0) + 1e-6
    scale = lambda idx: (pooled[idx] - mean) / std  # noqa: E731
    probe = fit_linear_probe(scale(fit), y[fit], scale(val), y[val], k,
                             LinearProbeConfig(lr=1e-3, max_steps=params.probe_max_steps, eval_every=50, patience=500),
                             seed)
    return softmax(probe.predict_logits(scale(test)), axis=1)
