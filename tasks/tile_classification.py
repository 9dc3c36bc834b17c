"""Tile / ROI classification: linear probe (5 seeds) and cosine kNN on frozen embeddings.

Protocol (docs/protocols.md): train on train, select on val, report on test; when the dataset has
no val split a stratified `val_fraction` of train is held out; with no test split, val is
reported and the selection split is held out of train. Headline: balanced accuracy. Beside it,
the calibration of the probe's probabilities (THUNDER's ECE, MCE, SCE, ACE and TACE, lower is
better; harness/scoring/calibration.py) and the data of a reliability diagram; and few-shot
SimpleShot at k = 1, 2, 4, 8, 16 images per class over 1,000 balanced draws of the support
(harness/scoring/simpleshot.py), a k skipped when a class has fewer training images.

`probe: logistic` replaces eva's early-stopped AdamW probe by UNI's and CONCH's: L2-regularised
logistic regression solved to its optimum on train and val together (harness/scoring/
logistic_probe.py; deterministic, so one fit stands for the seeds).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.scoring.bootstrap import N_RESAMPLES, bootstrap_ci
from harness.scoring.calibration import CALIBRATION_METRICS, N_BINS, confidence_bins
from harness.scoring.simpleshot import DRAWS, SHOTS, draw_supports, majority_vote, simpleshot_predictions
from harness.evaluation import (
    Counts, Decay, Evaluation, MetricInfo, MetricSummary, Rate, Resamples, SCORE, Seeds, SplitArrays, Steps,
    TaskData, TaskFamily, summarise,
)
from harness.scoring.linear_probe import LinearProbeConfig, fit_linear_probe
from harness.scoring.logistic_probe import fit_logistic_probe
from harness.scoring.parallel_fits import map_fits
from harness.scoring.metrics import (
    balanced_accuracy,
    balanced_accuracy_from_confusion,
    confusion_matrices,
    cosine_knn_predict,
    macro_auroc,
    macro_f1_from_confusion,
)


class TileClassificationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    probe: Literal["adamw", "logistic"] = "adamw"  # eva's early-stopped AdamW, or UNI's logistic regression
    logistic_cost: float | None = Field(None, gt=0)  # C; None: UNI's d * K / 100
    logistic_max_iter: Steps = 1000  # L-BFGS iterations (UNI: 1,000)
    lr: Rate = 3e-4
    weight_decay: Decay = 0.0
    batch_size: Steps = 256
    max_steps: Steps = 12_500
    eval_every: Steps = 250
    patience: Steps = 1_250
    knn_k: Counts = Field(default_factory=lambda: [1, 20])
    val_fraction: float = Field(0.1, gt=0, lt=1)
    bootstrap_resamples: Resamples = N_RESAMPLES
    fewshot_shots: Counts = Field(default_factory=lambda: list(SHOTS))  # images per class; [] turns it off
    fewshot_draws: int = Field(DRAWS, ge=1)  # balanced support draws per k


def _confusion(y, pred, weights):
    return confusion_matrices(y, pred, _n_classes_of(y, pred), weights)


def _n_classes_of(y: np.ndarray, pred: np.ndarray) -> int:
    return int(max(y.max(), pred.max())) + 1


# name -> metric(y, predictions, probabilities, weights) -> one value per weight row
PROBE_METRICS = {
    "balanced_accuracy": lambda y, pred, proba, w: balanced_accuracy_from_confusion(_confusion(y, pred, w)),
    "macro_f1": lambda y, pred, proba, w: macro_f1_from_confusion(_confusion(y, pred, w)),
    "macro_auroc": lambda y, pred, proba, w: np.atleast_1d(macro_auroc(y, proba, w)),
}


# calibration errors: 0 is perfect, lower is better; shown in the app's calibration panel
CALIBRATION = MetricInfo(higher_is_better=False, bounds=(0.0, 1.0), group="calibration")
FEW_SHOT = MetricInfo(group="few-shot")  # balanced accuracy of SimpleShot at k images per class


def balanced_accuracy_rows(y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each row of (draws, n) predictions: the mean recall of the classes in y."""
    return np.mean([(predictions[:, y == c] == c).mean(axis=1) for c in np.unique(y)], axis=0)


def few_shot(train: SplitArrays, test: SplitArrays, params: "TileClassificationParams"
             ) -> tuple[dict[str, MetricSummary], dict]:
    """SimpleShot per k: the mean balanced accuracy over the draws, their std and 2.5-97.5
    percentiles (the spread over support sets), and the majority vote's score in the details."""
    counts = np.bincount(train.labels)
    smallest = int(counts[counts > 0].min())
    metrics, votes, skipped = {}, {}, []
    for shots in params.fewshot_shots:
        if shots > smallest:
            skipped.append(shots)
            continue
        supports = draw_supports(train.labels, shots, params.fewshot_draws, seed=0)
        predictions = simpleshot_predictions(train.embeddings, train.labels, test.embeddings, supports)
        scores = balanced_accuracy_rows(test.labels, predictions)
        low, high = np.percentile(scores, [2.5, 97.5])
        metrics[f"fewshot{shots}_balanced_accuracy"] = MetricSummary(
            mean=float(scores.mean()), std=float(scores.std()), ci95=(float(low), float(high)))
        votes[shots] = float(balanced_accuracy(test.labels, majority_vote(predictions)))
    details = {"draws": params.fewshot_draws, "interval": "2.5-97.5 percentiles over the support draws",
               "vote_balanced_accuracy": votes,
               "skipped_shots": {"shots": skipped, "why": f"the smallest class has {smallest} training images"}
               if skipped else None}
    return metrics, details


def reliability_bins(probabilities: list[np.ndarray], y: np.ndarray, n_bins: int = N_BINS) -> dict:
    """A reliability diagram's data, the seeds pooled: per equal-width confidence bin (lower,
    upper], its items, their mean top-class confidence and their accuracy."""
    confidence = np.concatenate([p.max(axis=1) for p in probabilities])
    hits = np.concatenate([(p.argmax(axis=1) == y) for p in probabilities]).astype(np.float64)
    edges, bins = confidence_bins(confidence, n_bins)
    rows = {"lower": [], "upper": [], "items": [], "confidence": [], "accuracy": []}
    for b in range(n_bins):
        members = bins == b
        rows["lower"].append(float(edges[b]))
        rows["upper"].append(float(edges[b + 1]))
        rows["items"].append(int(members.sum()))
        rows["confidence"].append(float(confidence[members].mean()) if members.any() else None)
        rows["accuracy"].append(float(hits[members].mean()) if members.any() else None)
    return rows


class TileClassification(TaskFamily):
    name: ClassVar[str] = "tile_classification"
    title: ClassVar[str] = "tile classification"
    Params: ClassVar[type[BaseModel]] = TileClassificationParams

    @staticmethod
    def metrics(params: TileClassificationParams) -> dict[str, MetricInfo]:
        scores = {name: SCORE for name in [*PROBE_METRICS, *(f"knn{k}_balanced_accuracy" for k in params.knn_k)]}
        shots = {f"fewshot{k}_balanced_accuracy": FEW_SHOT for k in params.fewshot_shots}
        return {**scores, **{name: CALIBRATION for name in CALIBRATION_METRICS}, **shots}

    @staticmethod
    def scored_splits(params: TileClassificationParams, splits: Sequence[str]) -> list[str]:
        return [reported_split(splits)]

    def evaluate(self, data: TaskData, params: TileClassificationParams) -> Evaluation:
        from scipy.special import softmax

        train, val, test, eval_split = fit_val_test_splits(data.splits, params.val_fraction, data.class_names)
        n_classes = len(data.class_names)
        too_large = [k for k in params.knn_k if k > len(train.labels)]
        if too_large:  # scikit-learn refuses it; capped, every item would get the majority class
            fitting = [k for k in params.knn_k if k <= len(train.labels)] or [1]
            raise ValueError(f"kNN k={too_large[0]} is larger than the {len(train.labels)} training images: "
                             f"set the task's params to knn_k: {fitting} (a list of k), or add training images")
        config = LinearProbeConfig(
            lr=params.lr, weight_decay=params.weight_decay, batch_size=params.batch_size,
            max_steps=params.max_steps, eval_every=params.eval_every, patience=params.patience,
        )

        def fit_seed(k: int) -> tuple[np.ndarray, int]:
            probe = fit_linear_probe(train.embeddings, train.labels, val.embeddings, val.labels, n_classes, config,
                                     params.seeds[k])
            return probe.predict_logits(test.embeddings), probe.best_step

        if params.probe == "logistic":  # one deterministic fit on everything but the reported split
            logistic = fit_logistic_probe(np.concatenate([train.embeddings, val.embeddings]),
                                          np.concatenate([train.labels, val.labels]), n_classes,
                                          params.logistic_cost, params.logistic_max_iter)
            fits = [(logistic.predict_logits(test.embeddings), None)]
            seeds = list(params.seeds[:1])
            probe_details = {"probe": "logistic", "cost": logistic.cost, "objective": logistic.loss,
                             "max_abs_gradient": logistic.gradient, "lbfgs_evaluations": logistic.iterations,
                             "trained_on": len(train.labels) + len(val.labels)}
        else:
            fits = map_fits(fit_seed, len(params.seeds))
            seeds = list(params.seeds)
            probe_details = {"probe": "adamw", "probe_best_steps": [step for _, step in fits]}
        predictions, scores = [], []
        for logits, _ in fits:
            predictions.append(logits.argmax(1))
            scores.append(softmax(logits, axis=1))  # AUROC ranks probabilities, not raw logits

        y = test.labels
        metrics: dict[str, MetricSummary] = {}
        for metric_name, metric in PROBE_METRICS.items():
            per_seed = [float(metric(y, pred, score, None)[0]) for pred, score in zip(predictions, scores)]

            def over_seeds(weights: np.ndarray, metric=metric) -> np.ndarray:
                return np.mean([metric(y, p, s, weights) for p, s in zip(predictions, scores)], axis=0)

            ci = bootstrap_ci(over_seeds, len(y), n_resamples=params.bootstrap_resamples)
            metrics[metric_name] = summarise(per_seed, ci)

        for metric_name, error in CALIBRATION_METRICS.items():  # of the probe's softmax, per seed
            per_seed = [float(error(score, y)[0]) for score in scores]
            ci = bootstrap_ci(lambda w, error=error: np.mean([error(s, y, w) for s in scores], axis=0), len(y),
                              n_resamples=params.bootstrap_resamples)
            metrics[metric_name] = summarise(per_seed, ci)

        samples = [{"item": i, "head": "probe", "seed": seed, "label": int(y[i]), "prediction": int(pred[i])}
                   for seed, pred in zip(seeds, predictions) for i in range(len(y))]
        for k in params.knn_k:
            pred = cosine_knn_predict(train.embeddings, train.labels, test.embeddings, k)
            ci = bootstrap_ci(lambda w, pred=pred: balanced_accuracy_from_confusion(
                confusion_matrices(y, pred, n_classes, w)), len(y), n_resamples=params.bootstrap_resamples)
            metrics[f"knn{k}_balanced_accuracy"] = summarise([balanced_accuracy(y, pred)], ci)
            samples += [{"item": i, "head": f"knn{k}", "seed": None, "label": int(y[i]), "prediction": int(pred[i])}
                        for i in range(len(y))]

        shot_metrics, shot_details = few_shot(train, test, params)
        metrics.update(shot_metrics)

        return Evaluation(
            metrics=metrics,
            n_samples={"train": len(train.labels), "val": len(val.labels), "test": len(y)},
            seeds=seeds,
            details={"eval_split": eval_split, **probe_details, "knn_distance": "cosine",
                     "reliability": reliability_bins(scores, y), "few_shot": shot_details},
            samples=samples,
        )


def fit_val_test_splits(
    splits: dict[str, SplitArrays], val_fraction: float, class_names: list[str] | None = None
) -> tuple[SplitArrays, SplitArrays, SplitArrays, str]:
    """(train, selection, evaluation, evaluation split name) following the protocol above. The
    automatic hold-out keeps every class: at least one image of each, so at least as many images
    as classes; a training split too small for that is one line naming the class and the fix."""
    if "train" not in splits:
        raise ValueError("the dataset has no train split")
    train = splits["train"]
    val = splits.get("val")
    test = splits.get("test")
    eval_split = reported_split(list(splits))
    if test is None:
        if val is None:
            raise ValueError("the dataset needs a val or test split to report on")
        test, val = val, None
    if val is None:
        from sklearn.model_selection import train_test_split

        index = np.arange(len(train.labels))
        n_val = max(int(np.ceil(val_fraction * len(index))), len(np.unique(train.labels)))
        check_holdout(train.labels, n_val, val_fraction, class_names)
        fit_idx, val_idx = train_test_split(index, test_size=n_val, stratify=train.labels, random_state=0)
        val = SplitArrays(train.embeddings[val_idx], train.labels[val_idx])
        train = SplitArrays(train.embeddings[fit_idx], train.labels[fit_idx])
    return train, val, test, eval_split


def reported_split(splits: Sequence[str]) -> str:
    """The split the scores are reported on: `test`, or `val` where the dataset has no test split
    (its selection split is then held out of training instead)."""
    return "test" if "test" in splits or "val" not in splits else "val"


def check_holdout(labels: np.ndarray, n_val: int, val_fraction: float, class_names: list[str] | None) -> None:
    """The stratified hold-out needs two training images of every class (one stays, one is held
    out) and room for one of each on both sides; else one line naming what to change."""
    classes, counts = np.unique(labels, return_counts=True)
    name = lambda c: repr(class_names[c]) if class_names and 0 <= c < len(class_names) else f"#{c}"  # noqa: E731
    hold_out = (f"the dataset has no val split, so {val_fraction:.0%} of train (at least one image per class) is "
                "held out to select the probe")
    if counts.min() < 2:
        single = [name(int(c)) for c, n in zip(classes, counts) if n < 2]
        raise ValueError(f"{hold_out}, and class {', '.join(single)} has only one training image: add a val split "
                         "(<split>/<class>/ folders) or more training images of it")
    if len(labels) - n_val < len(classes):
        raise ValueError(f"{hold_out}: {len(labels)} training images are too few for {len(classes)} classes on both "
                         "sides; add a val split or more training images")

