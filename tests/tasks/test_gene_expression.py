"""Gene-expression prediction against HEST-Bench's protocol, rebuilt from the calls its benchmark
makes (mahmoodlab/HEST src/hest/bench/benchmark.py and trainer.py: StandardScaler + PCA(256,
random_state=seed), the result cast to float32, Ridge(solver='lsqr', alpha=100 / (n_features x
n_genes), fit_intercept=False, max_iter=1000, random_state=0), scipy.stats.pearsonr per gene, the
mean over genes per split, then the mean over splits), on the same arrays."""

import numpy as np
import pytest
from scipy.stats import pearsonr

from harness.evaluation import SplitArrays, TaskData
from harness.tasks.gene_expression import GeneExpression, GeneExpressionParams, pearson_per_gene, weighted_pearson


def spots(n_patients=6, per_patient=60, dim=384, n_genes=80, seed=0):
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    embeddings = rng.normal(size=(n, dim)).astype(np.float32)
    programme = rng.normal(size=(dim, n_genes)) / np.sqrt(dim)
    rate = np.exp(1.0 + 0.8 * embeddings @ programme)
    counts = rng.poisson(rate).astype(np.float32)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    folds = np.repeat(np.arange(n_patients) % 3, per_patient)  # three predefined folds, two patients each
    names = [f"G{i:03d}" for i in range(n_genes)]
    return embeddings, counts, groups, folds, names


def hest_reference(embeddings, counts, folds, names, genes, pca: bool, seed=0) -> float:
    """HEST-Bench's steps on each predefined fold, written as its benchmark calls them."""
    import torch
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    columns = [names.index(g) for g in genes]
    split_means = []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        X_train, X_test = embeddings[train], embeddings[test]
        y_train = np.log1p(counts[train][:, columns].astype(np.float64))  # normalize_adata: log1p only
        y_test = np.log1p(counts[test][:, columns].astype(np.float64))
        if pca:
            pipe = Pipeline([("scaler", StandardScaler()), ("PCA", PCA(n_components=256, random_state=seed))])
            X_train, X_test = torch.Tensor(pipe.fit_transform(X_train)), torch.Tensor(pipe.transform(X_test))
            X_train, X_test = X_train.numpy(), X_test.numpy()
        alpha = 100 / (X_train.shape[1] * y_train.shape[1])
        reg = Ridge(solver="lsqr", alpha=alpha, random_state=0, fit_intercept=False, max_iter=1000)
        predictions = reg.fit(X_train, y_train).predict(X_test)
        split_means.append(np.mean([pearsonr(y_test[:, g], predictions[:, g])[0] for g in range(len(genes))]))
    return float(np.mean(split_means))


@pytest.mark.parametrize("pca", [256, None], ids=["readme-pca256", "paper-no-pca"])
def test_equals_hest_benchmark_on_the_same_arrays(pca):
    embeddings, counts, groups, folds, names = spots(per_patient=100)  # 400 training spots: HEST's PCA(256) needs 256
    given = names[::2][:40]  # a shipped gene list (HEST's var_50genes.json), so both choose the same genes
    data = TaskData(splits={"all": SplitArrays(embeddings, None, targets=counts, groups=groups, folds=folds)},
                    class_names=[], target_names=names, given_targets=given)
    params = GeneExpressionParams(gene_selection="given", genes=40, pca=pca, bootstrap_resamples=50)
    result = GeneExpression().evaluate(data, params)
    expected = hest_reference(embeddings, counts, folds, names, given, pca=pca is not None)
    assert result.metrics["pearson"].mean == pytest.approx(expected, abs=1e-6)
    assert result.n_samples["folds"] == 3 and result.details["pca"] == pca and result.details["alpha"] == "hest"


def test_alpha_is_a_parameter_that_is_used_and_recorded():
    embeddings, counts, groups, folds, names = spots(dim=64)
    data = TaskData(splits={"all": SplitArrays(embeddings, None, targets=counts, groups=groups, folds=folds)},
                    class_names=[], target_names=names)
    hest = GeneExpression().evaluate(data, GeneExpressionParams(pca=None, bootstrap_resamples=20))
    heavy = GeneExpression().evaluate(data, GeneExpressionParams(pca=None, alpha=1e5, bootstrap_resamples=20))
    assert heavy.details["alpha"] == 1e5 and hest.details["alpha"] == "hest"
    # the penalty reached the fit (HEST PR #140: --alpha was read and then ignored)
    assert abs(heavy.metrics["mse"].mean - hest.metrics["mse"].mean) > 0.1
    assert heavy.metrics["pearson"].mean != pytest.approx(hest.metrics["pearson"].mean, abs=1e-3)


def test_genes_are_chosen_on_the_training_spots_only():
    """A gene that varies only among one fold's test spots must not be chosen for that fold: chosen
    on all spots (HEST issue #89), it would be the most variable gene of all."""
    embeddings, counts, groups, folds, names = spots(dim=64, n_genes=30)
    leaky = counts.copy()
    leaky[:, 0] = 1.0
    leaky[folds == 0, 0] = np.random.default_rng(1).poisson(500.0, (folds == 0).sum())
    data = TaskData(splits={"all": SplitArrays(embeddings, None, targets=leaky, groups=groups, folds=folds)},
                    class_names=[], target_names=names)
    result = GeneExpression().evaluate(data, GeneExpressionParams(genes=10, pca=None, bootstrap_resamples=20))
    per_fold_genes = result.details["per_gene_pearson"]
    assert "G000" in per_fold_genes  # chosen where it varies in training (folds 1 and 2 train on fold 0's spots)
    fold0_test = [s["item"] for s in result.samples if s["fold"] == 0]
    assert np.all(folds[fold0_test] == 0)
    # and in fold 0 itself, whose training spots have it constant, it is not among the genes
    from harness.tasks.gene_expression import choose_genes

    train0 = folds != 0
    assert "G000" not in choose_genes(leaky, train0, np.asarray(names), GeneExpressionParams(genes=10), None)
    assert "G000" == choose_genes(leaky, np.arange(len(leaky)), np.asarray(names), GeneExpressionParams(genes=10),
                                  None)[0]


def test_pearson_equals_scipy_and_the_bootstrap_at_unit_weights():
    rng = np.random.default_rng(4)
    truth, predicted = rng.normal(size=(50, 7)), rng.normal(size=(50, 7))
    predicted[:, 0] += 3 * truth[:, 0]
    expected = [pearsonr(truth[:, g], predicted[:, g])[0] for g in range(7)]
    assert pearson_per_gene(truth, predicted) == pytest.approx(expected, abs=1e-12)
    assert weighted_pearson(np.ones((1, 50)), truth, predicted)[0] == pytest.approx(expected, abs=1e-9)
    twice = np.concatenate([truth, truth]), np.concatenate([predicted, predicted])
    weights = np.r_[np.full(50, 2.0), np.zeros(50)][None]  # counting each of the first 50 twice
    assert weighted_pearson(weights, *twice)[0] == pytest.approx(expected, abs=1e-9)


def test_patient_folds_when_the_dataset_defines_none():
    embeddings, counts, groups, _, names = spots(dim=32, n_patients=8, per_patient=20)
    data = TaskData(splits={"all": SplitArrays(embeddings, None, targets=counts, groups=groups)},
                    class_names=[], target_names=names)
    result = GeneExpression().evaluate(data, GeneExpressionParams(folds=4, pca=None, bootstrap_resamples=20))
    tested = {}
    for sample in result.samples:
        tested.setdefault(groups[sample["item"]], set()).add(sample["fold"])
    assert result.n_samples["folds"] == 4 and all(len(f) == 1 for f in tested.values())  # a patient in one fold
    assert len(result.metrics["pearson"].values) == 4 and len(result.metrics["pearson"].replicates) == 20


@pytest.mark.parametrize("selection", ["given", "train"])
def test_a_wide_table_is_never_copied_whole(selection, monkeypatch):
    """600 spots x 20,000 genes (48 MB as float32; HEST's tables have tens of thousands of genes):
    each fold takes its genes' columns first, and the variance that chooses genes on the training
    spots runs a block of genes at a time, so the evaluation's peak is a small share of the table."""
    import tracemalloc

    from harness.tasks import gene_expression

    monkeypatch.setattr(gene_expression, "VARIANCE_BLOCK_VALUES", 100_000)
    rng = np.random.default_rng(0)
    n, g = 600, 20_000
    counts = np.zeros((n, g), np.float32)
    counts[:, :30] = rng.poisson(3.0, (n, 30))
    names = [f"G{i:05d}" for i in range(g)]
    data = TaskData(splits={"all": SplitArrays(rng.standard_normal((n, 16)).astype(np.float32), None, targets=counts,
                                               groups=np.repeat(np.arange(6), n // 6).astype(str),
                                               folds=np.repeat(np.arange(3), n // 3))},
                    class_names=[], target_names=names, given_targets=names[:10])
    params = GeneExpressionParams(genes=10, gene_selection=selection, pca=None, bootstrap_resamples=10)
    tracemalloc.start()
    try:
        result = GeneExpression().evaluate(data, params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert set(result.details["per_gene_pearson"]) <= set(names[:30])  # the genes that vary were chosen
    assert peak < counts.nbytes / 8
