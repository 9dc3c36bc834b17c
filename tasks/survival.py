"""Survival from slides: CoxNet on pooled slide embeddings, and a discrete-time ABMIL head.

Protocol (docs/protocols.md): patient-grouped 5 folds stratified by event. CoxNet (scikit-survival
CoxnetSurvivalAnalysis, l1_ratio 0.5) on the standardised mean tile embedding of each slide, its
alpha chosen from {0.01, 0.02, 0.07} by an inner patient-grouped 3-fold C-index on the training
fold. The discrete-time ABMIL head predicts hazards over 4 bins (quartiles of the training
fold's uncensored times) with the negative log-likelihood of Zadeh & Schmid (2020); its risk is
minus the summed survival. Both are scored per fold with Harrell's C-index
(sksurv.metrics.concordance_index_censored) at the patient level: a patient's risk is the mean
of their slides' risks (late fusion). Mean and std over folds; no bootstrap CI.
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.scoring.abmil import AbmilConfig, train_abmil
from harness.scoring.parallel_fits import map_fits
from harness.evaluation import (Evaluation, Folds, MetricInfo, Rate, SCORE, SlideBags, TaskData, TaskFamily, TestFolds,
                                embedded, summarise)
from harness.scoring.patient_folds import patient_folds


class SurvivalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    folds: Folds = 5
    test_folds: TestFolds | None = None
    seed: int = 0
    alphas: list[Rate] = Field(default_factory=lambda: [0.01, 0.02, 0.07], min_length=1, max_length=1000)
    l1_ratio: float = Field(0.5, gt=0, le=1)  # the elastic net's lasso share (sksurv's range)
    inner_folds: Folds = 3
    n_bins: int = Field(4, ge=1, le=100)
    abmil: AbmilConfig = Field(default_factory=AbmilConfig)


def harrell_c(event: np.ndarray, time: np.ndarray, risk: np.ndarray) -> float:
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(np.asarray(event, bool), np.asarray(time, float), np.asarray(risk))[0])


def _surv(event, time):
    from sksurv.util import Surv

    return Surv.from_arrays(event=np.asarray(event, bool), time=np.asarray(time, float))


DIRECT_MAX_ITER = 10_000  # iterations the direct fit at one alpha may take before the path is used
PATH_POINTS = 12  # alphas of the warm-started path, from the largest useful one down to alpha


def coxnet_risk(x_train, event, time, x_test, alpha: float, l1_ratio: float) -> np.ndarray:
    """Risk scores of x_test from a CoxNet fitted on standardised x_train at one alpha
    (`fit_coxnet`); if it diverges even along the path, alpha is raised x3, up to three times."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    x, y = (x_train - mean) / std, _surv(event, time)
    for attempt in range(4):
        try:
            return fit_coxnet(x, y, alpha * 3**attempt, l1_ratio).predict((x_test - mean) / std)
        except ArithmeticError:
            if attempt == 3:
                raise


def fit_coxnet(x, y, alpha: float, l1_ratio: float):
    """A CoxnetSurvivalAnalysis whose last coefficients are the fit at `alpha` (ArithmeticError if
    it diverges).

    The direct fit at that alpha (Patho-Bench's) is kept where it converges. With more dims than
    slides (a 1,024-d embedding of a few hundred patients) a direct fit from zero at a small alpha
    can run 100,000 iterations without converging (40 s) or diverge ('weights are too large');
    then the same model is fitted along 12 alphas from the smallest one whose fit is all zeros
    down to it, each fit starting from the last (glmnet's warm starts), which reaches the same
    optimum."""
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, alphas=[alpha], max_iter=DIRECT_MAX_ITER).fit(x, y)
            if not any(issubclass(w.category, ConvergenceWarning) for w in caught):
                return model
        except ArithmeticError:
            pass
        # the path starts at the smallest alpha whose fit is all zeros (sksurv's own first alpha): a
        # path that began higher would stop early, its deviance unchanged over the first five fits
        start = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, n_alphas=2, alpha_min_ratio=0.5).fit(x, y).alphas_[0]
        path = np.geomspace(max(start, alpha), alpha, PATH_POINTS)
        path[-1] = alpha  # exactly: the last fit of the path is the one predicted from
        model = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, alphas=path, max_iter=100_000).fit(x, y)
        if model.alphas_[-1] == alpha:
            return model
        # the path stopped before alpha (its deviance barely changed over five fits): the direct fit,
        # as long as it takes
        return CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, alphas=[alpha], max_iter=100_000).fit(x, y)


def coxnet_objective(x, event, time, beta, alpha: float, l1_ratio: float) -> float:
    """What CoxNet minimises at `alpha`: minus the Cox partial log-likelihood over n plus the
    elastic-net penalty (Breslow's risk sets; times without ties). For checking a fit's optimum."""
    eta = np.asarray(x) @ np.asarray(beta)
    order = np.argsort(-np.asarray(time), kind="stable")
    log_risk_set = np.logaddexp.accumulate(eta[order])  # log sum exp over those still at risk
    loglik = np.sum((eta[order] - log_risk_set)[np.asarray(event, bool)[order]])
    penalty = l1_ratio * np.abs(beta).sum() + (1 - l1_ratio) / 2 * np.square(beta).sum()
    return float(-loglik / len(eta) + alpha * penalty)


def select_alpha(x, event, time, groups, alphas, l1_ratio, inner_folds, seed) -> float:
    """The alpha with the best mean inner-fold C-index: patient-grouped folds, stratified by event
    and shuffled with `seed` (as the outer folds are)."""
    from sklearn.model_selection import StratifiedGroupKFold

    scores = {a: [] for a in alphas}
    n_splits = max(2, min(inner_folds, len(set(groups)), int(event.sum()), int((~event.astype(bool)).sum())))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, event.astype(int), groups=groups):
        if not event[test].any():
            continue
        for alpha in alphas:
            try:
                risk = coxnet_risk(x[train], event[train], time[train], x[test], alpha, l1_ratio)
                scores[alpha].append(harrell_c(event[test], time[test], risk))
            except (ValueError, ArithmeticError):
                scores[alpha].append(0.5)
    return max(alphas, key=lambda a: (np.mean(scores[a]) if scores[a] else 0.0, a))


def patient_c_index(patients: np.ndarray, event: np.ndarray, time: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C over patients, each patient's risk the mean of their slides' (late fusion)."""
    unique = list(dict.fromkeys(patients))
    index = {p: np.flatnonzero(patients == p) for p in unique}
    return harrell_c(np.array([event[index[p][0]] for p in unique]), np.array([time[index[p][0]] for p in unique]),
                     np.array([risk[index[p]].mean() for p in unique]))


def nll_discrete_loss(logits, bin_index: int, observed: bool):
    """-log-likelihood of a discrete-time hazard model for one subject (Zadeh & Schmid, 2020)."""
    import torch

    hazards = torch.sigmoid(logits).clamp(1e-7, 1 - 1e-7)
    survival = torch.cumprod(1 - hazards, dim=0)
    before = torch.cat([torch.ones(1), survival[:-1]])
    if observed:
        return -(torch.log(before[bin_index]) + torch.log(hazards[bin_index]))
    return -torch.log(survival[bin_index])


class Survival(TaskFamily):
    name: ClassVar[str] = "survival"
    title: ClassVar[str] = "survival"
    Params: ClassVar[type[BaseModel]] = SurvivalParams

    @staticmethod
    def scored_splits(params: SurvivalParams, splits: Sequence[str]) -> list[str] | None:
        return None  # cross-validation: every patient is tested in one fold

    @staticmethod
    def metrics(params: SurvivalParams) -> dict[str, MetricInfo]:
        return {"c_index": SCORE, "c_index_abmil": SCORE}

    def evaluate(self, data: TaskData, params: SurvivalParams) -> Evaluation:
        slides = _require(data.slides)
        event, time = np.asarray(slides.events, bool), np.asarray(slides.times, float)
        patients = np.asarray(slides.patients)
        folds = patient_folds(slides.patients, event.astype(int), params.folds, slides.folds, params.seed,
                              params.test_folds)
        for f, (_, test) in enumerate(folds):  # a C-index orders event times: a fold of censored patients has none
            if not event[test].any():
                raise ValueError(f"test fold {f} of {len(folds)} has no observed event ({event.sum()} of {len(event)} "
                                 "slides have one): its C-index is undefined; lower the task's `folds`, or add "
                                 "patients with events")
        pooled = np.stack([bag.mean(axis=0) for bag in slides.features]).astype(np.float64)
        config = params.abmil
        per_fold = {"c_index": [], "c_index_abmil": []}
        chosen, samples = [], []
        names = slides.slide_names()

        def fit_fold(f: int) -> tuple[float, np.ndarray, np.ndarray]:
            """(CoxNet's alpha, CoxNet's and ABMIL's risk of each test slide)."""
            train, test = folds[f]
            alpha = select_alpha(pooled[train], event[train], time[train], patients[train], params.alphas,
                                 params.l1_ratio, params.inner_folds, params.seed)
            risk = coxnet_risk(pooled[train], event[train], time[train], pooled[test], alpha, params.l1_ratio)
            edges = np.quantile(time[train][event[train]], np.linspace(0, 1, params.n_bins + 1)[1:-1])
            bins, observed = np.digitize(time[train], edges), event[train]

            def loss_of(logits, i):
                return nll_discrete_loss(logits, int(bins[i]), bool(observed[i]))

            predict = train_abmil([slides.features[i] for i in train], loss_of, params.n_bins, config,
                                  seed=params.seed + f)
            hazards = 1 / (1 + np.exp(-np.stack([predict(slides.features[i]) for i in test])))
            return alpha, risk, -np.cumprod(1 - hazards, axis=1).sum(axis=1)

        for f, ((_, test), (alpha, risk, abmil_risk)) in enumerate(zip(folds, map_fits(fit_fold, len(folds)))):
            chosen.append(alpha)
            per_fold["c_index"].append(patient_c_index(patients[test], event[test], time[test], risk))
            per_fold["c_index_abmil"].append(patient_c_index(patients[test], event[test], time[test], abmil_risk))
            samples += [{"slide": names[i], "patient": str(patients[i]), "fold": f, "time": float(time[i]),
                         "event": bool(event[i]), "risk": float(r), "risk_abmil": float(ra)}
                        for i, r, ra in zip(test, risk, abmil_risk)]
        return Evaluation(
            metrics={name: summarise(values, None) for name, values in per_fold.items()},
            n_samples={"slides": len(event), "patients": len(set(slides.patients)), "events": int(event.sum()),
                       "failed_slides": len(slides.failed), "folds": len(folds)},
            seeds=[params.seed + f for f in range(len(folds))],
            details={"per_fold": per_fold, "coxnet_alpha_per_fold": chosen, "censored_fraction": float(1 - event.mean()),
                     "failed_slides": slides.failed, "fusion": "patient risk = mean of slide risks"},
            samples=samples,
        )


def _require(slides: SlideBags | None) -> SlideBags:
    slides = embedded(slides)
    if slides.times is None or slides.events is None:
        raise ValueError("survival needs time and event columns")
    return slides
