"""Stain / scanner robustness on aligned slides (plismbench), plus the cross-domain task drop.

Each split is one slide (a staining x scanner domain) holding the same tiles in the same order.
plismbench metrics (harness/scoring/plism_metrics.py) run over every slide pair; a group's value is the
median over its pairs (q1/q3 in details), and `plism_score` is the mean of four medians.

Cross-domain drop (beyond the anchors): a linear probe is trained on one domain's tiles (half of
the tile indices, the other half held out) and tested on the held-out tiles of every domain;
the drop is in-domain balanced accuracy minus the mean over the other domains.
"""

from __future__ import annotations

import re
from typing import ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.evaluation import (
    Counts, Evaluation, MetricInfo, MetricSummary, Rate, SCORE, Seeds, SplitArrays, Steps, TaskData, TaskFamily,
    summarise,
)
from harness.scoring.linear_probe import LinearProbeConfig, fit_linear_probe
from harness.scoring.metrics import balanced_accuracy
from harness.scoring.plism_metrics import (GROUPS, KS, all_pair_metrics, leaderboard_score, metrics_device, pair_groups,
                                           summarise_groups)


class StainRobustnessParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ks: Counts = Field(default_factory=lambda: list(KS), min_length=1)
    domain_pattern: str = r"(?P<staining>.+)@(?P<scanner>.+)"  # split name -> staining, scanner
    cross_domain: bool = True  # needs labels
    train_domain: str | None = None  # default: the first split
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2])
    lr: Rate = 3e-4
    max_steps: Steps = 12_500
    patience: Steps = 1_250


CROSS_DOMAIN_METRICS = ("in_domain_balanced_accuracy", "cross_domain_balanced_accuracy", "cross_domain_drop")


class StainRobustness(TaskFamily):
    name: ClassVar[str] = "stain_robustness"
    title: ClassVar[str] = "stain/scanner robustness"
    Params: ClassVar[type[BaseModel]] = StainRobustnessParams

    @staticmethod
    def scored_splits(params: StainRobustnessParams, splits: Sequence[str]) -> list[str] | None:
        return None  # every domain's tiles enter the all-pairs metrics

    @staticmethod
    def metrics(params: StainRobustnessParams) -> dict[str, MetricInfo]:
        cosine = MetricInfo(bounds=(-1.0, 1.0))
        panel = {"cosine_all", "top_10_inter_scanner", "top_10_inter_staining", "top_10_both"}  # plismbench's four
        info = {"plism_score": MetricInfo(bounds=(-1.0, 1.0), group="robustness")}
        for group in GROUPS:
            for metric in ["cosine", *(f"top_{k}" for k in params.ks)]:
                name = f"{metric}_{group}"
                described = cosine if metric == "cosine" else SCORE
                info[name] = described.model_copy(update={"group": "robustness"}) if name in panel else described
        if params.cross_domain:
            info["in_domain_balanced_accuracy"] = MetricInfo(group="robustness")
            info["cross_domain_balanced_accuracy"] = SCORE
            # in-domain minus cross-domain accuracy: a drop, so lower is better
            info["cross_domain_drop"] = MetricInfo(higher_is_better=False, bounds=(-1.0, 1.0), group="robustness")
        return info

    def evaluate(self, data: TaskData, params: StainRobustnessParams) -> Evaluation:
        slides = list(data.splits)
        domains = [_domain(name, params.domain_pattern) for name in slides]
        groups = pair_groups(domains)
        per_pair = all_pair_metrics([data.splits[name].embeddings for name in slides], groups["all"], ks=params.ks,
                                    device=metrics_device())
        summary = summarise_groups(per_pair, groups)
        metrics: dict[str, MetricSummary] = {}
        if all(g in summary for g in GROUPS) and 10 in params.ks:
            metrics["plism_score"] = summarise([leaderboard_score(summary)], None)
        for group, by_metric in summary.items():
            for metric, stats in by_metric.items():
                metrics[f"{metric}_{group}"] = summarise([stats["median"]], None)
        details = {"summary": "median over slide pairs; q1/q3 and pair counts under groups",
                   "groups": summary, "slides": slides}
        n_tiles = len(data.splits[slides[0]].embeddings)
        if params.cross_domain and all(s.labels is not None for s in data.splits.values()):
            drop_metrics, drop_details = cross_domain_drop(data.splits, params, data.class_names)
            metrics.update(drop_metrics)
            details["cross_domain"] = drop_details
        # plismbench's unit is the slide pair: one row per pair, with its metrics
        samples = [{"slide_a": slides[i], "slide_b": slides[j], **values} for (i, j), values in per_pair.items()]
        return Evaluation(metrics=metrics, n_samples={"slides": len(slides), "tiles_per_slide": n_tiles,
                                                       "pairs": len(groups["all"])},
                          seeds=list(params.seeds) if "cross_domain" in details else [], details=details,
                          samples=samples)


def _domain(split: str, pattern: str) -> tuple[str, str]:
    match = re.fullmatch(pattern, split)
    if match is None:
        raise ValueError(f"slide '{split}' does not match domain_pattern {pattern!r} (staining, scanner)")
    return match["staining"], match["scanner"]


def cross_domain_drop(splits: dict[str, SplitArrays], params: StainRobustnessParams,
                      class_names: list[str] | None = None):
    """Probe trained on one domain (even tile indices, 10% of them for early stopping), tested on
    the odd tile indices of every domain."""
    from sklearn.model_selection import train_test_split

    names = list(splits)
    train_domain = params.train_domain or names[0]
    if train_domain not in splits:
        raise ValueError(f"train_domain '{train_domain}' is not a slide of this dataset ({', '.join(names)})")
    source = splits[train_domain]
    n = len(source.labels)
    fit_pool, held_out = np.arange(0, n, 2), np.arange(1, n, 2)
    n_classes = int(max(s.labels.max() for s in splits.values())) + 1
    classes, counts = np.unique(source.labels[fit_pool], return_counts=True)
    if counts.min() < 2:
        names = [repr(class_names[c]) if class_names and c < len(class_names) else f"#{c}"
                 for c, k in zip(classes, counts) if k < 2]
        raise ValueError(f"cross-domain probe: slide '{train_domain}' has one tile of class {', '.join(names)} among "
                         f"its {len(fit_pool)} even-indexed tiles (the probe trains on the even tile indices, holding "
                         "one in ten out to select it, and is tested on the odd ones): use more tiles per slide, or "
                         "set cross_domain: false")
    n_val = max(int(round(0.1 * len(fit_pool))), len(classes))  # a stratified split needs one per class
    fit_idx, val_idx = train_test_split(fit_pool, test_size=n_val, stratify=source.labels[fit_pool], random_state=0)
    config = LinearProbeConfig(lr=params.lr, max_steps=params.max_steps, patience=params.patience)
    per_domain = {name: [] for name in names}
    for seed in params.seeds:
        probe = fit_linear_probe(source.embeddings[fit_idx], source.labels[fit_idx], source.embeddings[val_idx],
                                 source.labels[val_idx], n_classes, config, seed)
        for name, split in splits.items():
            predicted = probe.predict_logits(split.embeddings[held_out]).argmax(1)
            per_domain[name].append(balanced_accuracy(split.labels[held_out], predicted))
    in_domain = np.array(per_domain[train_domain])
    cross = np.array([per_domain[name] for name in names if name != train_domain]).mean(axis=0)
    metrics = {"in_domain_balanced_accuracy": summarise(in_domain, None),
               "cross_domain_balanced_accuracy": summarise(cross, None),
               "cross_domain_drop": summarise(in_domain - cross, None)}
    details = {"train_domain": train_domain, "train_tiles": len(fit_idx), "test_tiles_per_domain": len(held_out),
               "balanced_accuracy_per_domain": {name: float(np.mean(v)) for name, v in per_domain.items()}}
    return metrics, details
