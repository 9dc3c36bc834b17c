"""Spatial gene-expression prediction from tile embeddings (the HEST-Bench protocol).

Each item is a spot: the tile around it and the counts of its genes. Per fold (patient-level; the
dataset's own folds when it has them, as HEST-Bench's split files give them):
  1. genes: the `genes` most variable genes of log1p counts over the fold's training spots (the
     default; HEST ships a list chosen on all samples, test ones included, usable with
     `gene_selection: given`);
  2. targets: log1p of the counts (HEST's `normalize`, which applies log1p only);
  3. features: the embeddings, or their first `pca` principal components after standardisation,
     both fitted on the training spots (HEST's README protocol: PCA to 256; `pca: null` is the
     paper's protocol without it);
  4. ridge regression without intercept, solver lsqr, at most 1,000 iterations, alpha =
     100 / (n_features x n_genes) (HEST's rule; `alpha: <number>` sets it, and is recorded);
  5. Pearson correlation per gene on the test spots, averaged over genes; then over folds.
The 95% CI is a bootstrap over each fold's test spots (the same resamples for every model).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.evaluation import (
    Decay, Evaluation, Folds, MetricInfo, Resamples, SplitArrays, Steps, TaskData, TaskFamily, summarise,
)
from harness.scoring.bootstrap import N_RESAMPLES, BootstrapInterval, percentile_interval, resample_weights
from harness.scoring.patient_folds import patient_folds

HEST_ALPHA_NUMERATOR = 100.0  # alpha = 100 / (n_features * n_genes), HEST-Bench's trainer


class GeneExpressionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    genes: int = Field(50, ge=1, le=5000)  # how many highly variable genes are predicted
    gene_selection: Literal["train", "given"] = "train"  # chosen on each fold's training spots, or the dataset's list
    pca: int | None = Field(256, ge=1)  # principal components of the standardised embeddings; None: no PCA
    alpha: Decay | Literal["hest"] = "hest"  # ridge penalty: HEST's rule, or a number
    folds: Folds = 5  # patient-level folds when the dataset defines none
    seed: int = 0  # of PCA and of the folds
    max_iter: Steps = 1000
    split: str = "all"  # the split holding the spots
    bootstrap_resamples: Resamples = N_RESAMPLES


PEARSON = MetricInfo(bounds=(-1.0, 1.0))


class GeneExpression(TaskFamily):
    name: ClassVar[str] = "gene_expression"
    title: ClassVar[str] = "gene expression"
    Params: ClassVar[type[BaseModel]] = GeneExpressionParams

    @staticmethod
    def scored_splits(params: GeneExpressionParams, splits: Sequence[str]) -> list[str] | None:
        return [params.split] if params.split in splits else None  # `all`: every split, folded

    @staticmethod
    def metrics(params: GeneExpressionParams) -> dict[str, MetricInfo]:
        return {"pearson": PEARSON, "mse": MetricInfo(higher_is_better=False, bounds=(0.0, None))}

    @staticmethod
    def reads_given_targets_only(params: GeneExpressionParams) -> bool:
        return params.gene_selection == "given"

    def evaluate(self, data: TaskData, params: GeneExpressionParams) -> Evaluation:
        spots = spot_split(data, params.split)
        if spots.targets is None or spots.groups is None:
            raise ValueError("gene expression needs each spot's counts and patient (a dataset with expression)")
        folds = patient_folds(list(spots.groups), np.zeros(len(spots.groups)), params.folds,
                              predefined=spots.folds, seed=params.seed)
        names = np.asarray(data.target_names or [f"gene{i}" for i in range(spots.targets.shape[1])])
        per_fold, mse, replicates, gene_scores, samples = [], [], [], {}, []
        for fold, (train, test) in enumerate(folds):
            genes = choose_genes(spots.targets, train, names, params, data.given_targets)
            columns = [int(np.flatnonzero(names == g)[0]) for g in genes]
            # the fold's genes first: no copy of every gene's counts. Column-major, as taking the rows and
            # then the columns gave it (and the ridge's and Pearson's sums run in that order: the same numbers)
            chosen = spots.targets[:, columns]
            y_train = np.log1p(np.asfortranarray(chosen[train]).astype(np.float64))
            y_test = np.log1p(np.asfortranarray(chosen[test]).astype(np.float64))
            x_train, x_test = features(spots.embeddings[train], spots.embeddings[test], params)
            predicted = ridge_predict(x_train, y_train, x_test, params)
            correlations = pearson_per_gene(y_test, predicted)
            per_fold.append(float(np.nanmean(correlations)))
            mse.append(float(np.mean((predicted - y_test) ** 2)))
            for gene, value in zip(genes, correlations):
                gene_scores.setdefault(gene, []).append(float(value))
            weights = np.concatenate(list(resample_weights(len(test), params.bootstrap_resamples, seed=fold)))
            replicates.append(np.nanmean(weighted_pearson(weights, y_test, predicted), axis=1))
            samples += [{"item": int(i), "fold": fold} for i in test]
        draws = np.mean(replicates, axis=0)
        interval = BootstrapInterval(*percentile_interval(draws), replicates=draws)
        return Evaluation(
            metrics={"pearson": summarise(per_fold, interval), "mse": summarise(mse, None)},
            n_samples={"spots": len(spots.groups), "patients": len(set(spots.groups)), "folds": len(folds)},
            seeds=[params.seed],
            details={"per_gene_pearson": {g: round(float(np.mean(v)), 4) for g, v in sorted(gene_scores.items())},
                     "alpha": params.alpha, "pca": params.pca, "gene_selection": params.gene_selection,
                     "genes_nan": int(sum(np.isnan(v).sum() for v in gene_scores.values()))},
            samples=samples,
        )


def spot_split(data: TaskData, split: str) -> SplitArrays:
    """The spots to fold over: the named split, or with `all` (and no split of that name) every
    split concatenated (a dataset generated with train/val/test splits is folded by patient here)."""
    if split in data.splits:
        return data.splits[split]
    if split != "all":
        raise ValueError(f"gene expression needs a '{split}' split of spots; the dataset has {sorted(data.splits)}")
    parts = list(data.splits.values())
    if any(p.targets is None for p in parts):
        raise ValueError("gene expression needs each spot's counts and patient (a dataset with expression)")
    folds = None if any(p.folds is None for p in parts) else np.concatenate([p.folds for p in parts])
    return SplitArrays(np.concatenate([p.embeddings for p in parts]), None,
                       targets=np.concatenate([p.targets for p in parts]),
                       groups=np.concatenate([p.groups for p in parts]), folds=folds)


# genes whose variance is computed at once: a HEST table has tens of thousands of genes, and a float64
# copy of every training spot's counts would be several times the table
VARIANCE_BLOCK_VALUES = 4_000_000


def choose_genes(counts: np.ndarray, train: np.ndarray, names: np.ndarray, params: GeneExpressionParams,
                 given: list[str] | None) -> list[str]:
    """The genes predicted in one fold: the dataset's list, or the most variable of log1p counts on
    the fold's training spots (`counts[train]`; ties broken by name, so the choice is deterministic),
    computed a block of genes at a time."""
    if params.gene_selection == "given":
        if not given:
            raise ValueError("gene_selection 'given': the dataset has no gene list (use gene_selection: train)")
        missing = [g for g in given if g not in set(names)]
        if missing:
            raise ValueError(f"gene_selection 'given': the dataset's gene list names {missing[:3]}, which its "
                             "expression tables do not have")
        return list(given)[: params.genes]
    block = max(1, VARIANCE_BLOCK_VALUES // max(len(train), 1))
    variance = np.concatenate([np.log1p(counts[train, start : start + block].astype(np.float64)).var(axis=0)
                               for start in range(0, counts.shape[1], block)])
    order = sorted(range(len(names)), key=lambda i: (-variance[i], names[i]))
    return [str(names[i]) for i in order[: params.genes]]


def features(train: np.ndarray, test: np.ndarray, params: GeneExpressionParams) -> tuple[np.ndarray, np.ndarray]:
    """As HEST feeds its ridge: float32 embeddings, or StandardScaler + PCA fitted on the training
    spots, cast to float32. PCA keeps at most min(pca, features, training spots) components
    (HEST's PCA(256) fails below 256 dims or spots)."""
    train, test = np.asarray(train, np.float32), np.asarray(test, np.float32)
    if params.pca is None:
        return train, test
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    components = min(params.pca, train.shape[1], train.shape[0])
    pipe = Pipeline([("scaler", StandardScaler()), ("PCA", PCA(n_components=components, random_state=params.seed))])
    return pipe.fit_transform(train).astype(np.float32), pipe.transform(test).astype(np.float32)


def ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  params: GeneExpressionParams) -> np.ndarray:
    from sklearn.linear_model import Ridge

    alpha = hest_alpha(x_train.shape[1], y_train.shape[1]) if params.alpha == "hest" else float(params.alpha)
    model = Ridge(solver="lsqr", alpha=alpha, random_state=0, fit_intercept=False, max_iter=params.max_iter)
    return model.fit(x_train, y_train).predict(x_test)


def hest_alpha(n_features: int, n_genes: int) -> float:
    return HEST_ALPHA_NUMERATOR / (n_features * n_genes)


def pearson_per_gene(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Pearson r of each column (scipy.stats.pearsonr per gene); NaN where either side is constant."""
    t = np.asarray(truth, np.float64) - np.mean(truth, axis=0)
    p = np.asarray(predicted, np.float64) - np.mean(predicted, axis=0)
    norms = np.sqrt((t * t).sum(axis=0) * (p * p).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (t * p).sum(axis=0) / norms
    r[norms <= 1e-12] = np.nan
    return np.clip(r, -1.0, 1.0)


def weighted_pearson(weights: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(b, genes) Pearson r of each gene under each row of resample weights (counts of each spot)."""
    truth = np.asarray(truth, np.float64) - np.mean(truth, axis=0)  # centred first: the moments stay well conditioned
    predicted = np.asarray(predicted, np.float64) - np.mean(predicted, axis=0)
    total = weights.sum(axis=1, keepdims=True)
    mean_t, mean_p = weights @ truth / total, weights @ predicted / total
    cov = weights @ (truth * predicted) / total - mean_t * mean_p
    var_t = weights @ (truth * truth) / total - mean_t**2
    var_p = weights @ (predicted * predicted) / total - mean_p**2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_t * var_p)
    r[(var_t <= 1e-12) | (var_p <= 1e-12)] = np.nan
    return np.clip(r, -1.0, 1.0)
