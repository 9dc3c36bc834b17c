"""Survival: CoxNet against scikit-survival's Cox model on real clinical data (GBSG2), the
discrete-time likelihood by hand, late fusion, and the family on synthetic bags."""

import numpy as np
import pytest
import torch

from harness.scoring.abmil import AbmilConfig
from harness.evaluation import SlideBags, TaskData
from harness.tasks.survival import (Survival, SurvivalParams, coxnet_objective, coxnet_risk, fit_coxnet, harrell_c,
                                    nll_discrete_loss, patient_c_index, select_alpha)


def test_coxnet_matches_sksurv_cox_model_on_gbsg2_folds():
    from sklearn.model_selection import KFold
    from sksurv.datasets import load_gbsg2
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.preprocessing import OneHotEncoder

    x, y = load_gbsg2()
    x = OneHotEncoder().fit_transform(x).to_numpy(dtype=float)
    event, time = y["cens"].astype(bool), y["time"].astype(float)
    ours, reference = [], []
    for train, test in KFold(5, shuffle=True, random_state=0).split(x):
        alpha = select_alpha(x[train], event[train], time[train], np.arange(len(train)), [0.01, 0.02, 0.07],
                             0.5, 3, 0)
        ours.append(harrell_c(event[test], time[test], coxnet_risk(x[train], event[train], time[train], x[test],
                                                                   alpha, 0.5)))
        mean, std = x[train].mean(0), x[train].std(0) + 1e-8
        cox = CoxPHSurvivalAnalysis().fit((x[train] - mean) / std, y[train])
        reference.append(harrell_c(event[test], time[test], cox.predict((x[test] - mean) / std)))
    assert abs(np.mean(ours) - np.mean(reference)) <= 0.02
    assert np.mean(reference) > 0.65  # the clinical covariates carry signal


def test_coxnet_with_more_dims_than_slides_reaches_the_optimum_the_direct_fit_does_not():
    """384 noise dims on 262 slides (random-noise on an inner fold of synth-survival): the direct
    fit at alpha 0.01 does not converge within DIRECT_MAX_ITER iterations or diverges; coxnet_risk
    then fits along a warm-started path and reaches the optimum of a reference fit made with a
    tolerance a thousand times tighter. Where the direct fit converges it is kept, bit for bit."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sksurv.util import Surv

    from harness.tasks.survival import DIRECT_MAX_ITER

    rng = np.random.default_rng(1)
    x = rng.standard_normal((262, 384))
    time, event = rng.exponential(10.0, 262), rng.random(262) < 0.6
    xs, y = (x - x.mean(0)) / (x.std(0) + 1e-8), Surv.from_arrays(event, time)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=[0.01], max_iter=DIRECT_MAX_ITER).fit(xs, y)
            diverged = False
        except ArithmeticError:
            diverged = True
    assert diverged or any(issubclass(w.category, ConvergenceWarning) for w in caught)  # the case at hand

    ours = fit_coxnet(xs, y, 0.01, 0.5)
    # the reference: sksurv's own path from its first alpha (all coefficients zero), 60 steps, a
    # tolerance a thousand times tighter
    start = CoxnetSurvivalAnalysis(l1_ratio=0.5, n_alphas=2, alpha_min_ratio=0.5).fit(xs, y).alphas_[0]
    reference = CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=np.append(np.geomspace(start, 0.01, 60)[:-1], 0.01),
                                       tol=1e-10, max_iter=1_000_000).fit(xs, y)
    assert ours.alphas_[-1] == 0.01 and reference.alphas_[-1] == 0.01
    found = coxnet_objective(xs, event, time, ours.coef_[:, -1], 0.01, 0.5)
    best = coxnet_objective(xs, event, time, reference.coef_[:, -1], 0.01, 0.5)
    assert abs(found - best) < 1e-4 * abs(best)
    np.testing.assert_allclose(coxnet_risk(x, event, time, x, 0.01, 0.5), ours.predict(xs), rtol=1e-6, atol=1e-9)

    few = x[:, :20]  # fewer dims than slides: the direct fit converges and is what coxnet_risk returns
    direct = CoxnetSurvivalAnalysis(l1_ratio=0.5, alphas=[0.02], max_iter=100_000)
    mean, std = few.mean(0), few.std(0) + 1e-8
    expected = direct.fit((few - mean) / std, y).predict((few - mean) / std)
    np.testing.assert_array_equal(coxnet_risk(few, event, time, few, 0.02, 0.5), expected)
    # coxnet_objective is what sksurv minimises: its fit is a minimum of it
    fewer = (few - mean) / std
    optimum = coxnet_objective(fewer, event, time, direct.coef_[:, -1], 0.02, 0.5)
    nudges = rng.standard_normal((20, few.shape[1])) * 1e-3
    assert all(coxnet_objective(fewer, event, time, direct.coef_[:, -1] + d, 0.02, 0.5) > optimum for d in nudges)


def test_discrete_time_nll_by_hand():
    logits = torch.tensor([0.0, 1.0, -1.0, 0.5])
    h = torch.sigmoid(logits).numpy()
    s = np.cumprod(1 - h)
    # event in bin 2: survived bins 0 and 1, then the hazard of bin 2
    expected_event = -(np.log(s[1]) + np.log(h[2]))
    assert nll_discrete_loss(logits, 2, True).item() == pytest.approx(expected_event, rel=1e-5)
    # censored in bin 2: survived through bin 2
    assert nll_discrete_loss(logits, 2, False).item() == pytest.approx(-np.log(s[2]), rel=1e-5)
    assert nll_discrete_loss(logits, 0, True).item() == pytest.approx(-np.log(h[0]), rel=1e-5)


def test_patient_c_index_fuses_slides_by_mean_risk():
    from sksurv.metrics import concordance_index_censored

    patients = np.array(["a", "a", "b", "c", "c"])
    event = np.array([1, 1, 1, 0, 0], bool)
    time = np.array([2.0, 2.0, 5.0, 9.0, 9.0])
    risk = np.array([0.9, 0.1, 0.3, 0.2, 0.0])
    expected = concordance_index_censored(np.array([True, True, False]), np.array([2.0, 5.0, 9.0]),
                                          np.array([0.5, 0.3, 0.1]))[0]
    assert patient_c_index(patients, event, time, risk) == pytest.approx(expected)


def bags_with_risk(informative: bool, n: int = 60, seed: int = 0) -> SlideBags:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-2 * risk)) * 10
    censor = rng.uniform(0, 15, n)
    features = [rng.normal(size=(8, 4)) + (np.array([risk[i], 0, 0, 0]) if informative else 0) for i in range(n)]
    return SlideBags(features=features, patients=[f"p{i}" for i in range(n)], times=np.minimum(time, censor),
                     events=time <= censor)


def test_survival_family_finds_signal_and_not_noise():
    params = SurvivalParams(abmil=AbmilConfig(epochs=10))
    signal = Survival().evaluate(TaskData({}, [], bags_with_risk(True)), params)
    noise = Survival().evaluate(TaskData({}, [], bags_with_risk(False)), params)
    assert signal.metrics["c_index"].mean > 0.7 and signal.metrics["c_index_abmil"].mean > 0.65
    assert abs(noise.metrics["c_index"].mean - 0.5) < 0.1
    assert signal.n_samples["folds"] == 5 and len(signal.details["coxnet_alpha_per_fold"]) == 5


def test_a_test_fold_without_an_event_names_the_fold_and_the_count():
    """With 3 events in 60 slides and 5 folds, sksurv failed a fold with 'All samples are
    censored', though most slides were not."""
    bags = bags_with_risk(True)
    bags.events = np.zeros(60, bool)
    bags.events[:3] = True
    with pytest.raises(ValueError, match=r"test fold \d of 5 has no observed event \(3 of 60 slides have one\)"):
        Survival().evaluate(TaskData({}, [], bags), SurvivalParams(abmil=AbmilConfig(epochs=1)))


def test_alpha_selection_uses_its_seed_and_event_stratified_shuffled_folds(monkeypatch):
    """The inner folds are StratifiedGroupKFold(shuffle=True, random_state=seed) on the events, so
    each keeps the event rate; another seed draws other folds."""
    import sklearn.model_selection

    seen = []
    original = sklearn.model_selection.StratifiedGroupKFold

    class Recording(original):
        def split(self, x, y=None, groups=None):
            for train, test in super().split(x, y, groups):
                seen.append((self.random_state, self.shuffle, float(np.mean(y[test]))))
                yield train, test

    monkeypatch.setattr(sklearn.model_selection, "StratifiedGroupKFold", Recording)
    rng = np.random.default_rng(0)
    x, time = rng.normal(size=(60, 4)), rng.exponential(1.0, 60)
    event = np.arange(60) % 3 == 0  # a third observed
    for seed in (0, 1):
        select_alpha(x, event, time, np.arange(60), [0.01, 0.07], 0.5, 3, seed)
    assert {(s, shuffle) for s, shuffle, _ in seen} == {(0, True), (1, True)}
    assert all(abs(rate - 1 / 3) < 0.06 for _, _, rate in seen)  # every inner fold keeps the event rate
