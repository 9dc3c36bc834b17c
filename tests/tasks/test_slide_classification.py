import numpy as np
import pytest

from harness.evaluation import SlideBags, TaskData
from harness.scoring.patient_folds import patient_folds
from harness.tasks.slide_classification import SlideClassification, SlideClassificationParams


def bags(n_per_class=12, seed=0):
    """Class c bags: noise tiles plus 1-3 'key' tiles pointing along axis c (what attention must find)."""
    rng = np.random.default_rng(seed)
    features, labels, patients = [], [], []
    for c in range(3):
        for i in range(n_per_class):
            bag = rng.normal(size=(rng.integers(6, 15), 6))
            key = rng.integers(1, 4)
            bag[:key, c] += 4.0
            features.append(bag)
            labels.append(c)
            patients.append(f"p{c}-{i // 2}")  # two slides per patient
    return SlideBags(features=features, patients=patients, labels=np.array(labels))


def test_folds_never_split_a_patient():
    data = bags()
    for train, test in patient_folds(data.patients, data.labels, 5):
        assert not set(np.array(data.patients)[train]) & set(np.array(data.patients)[test])
    predefined = np.array([0, 1] * 18)
    with pytest.raises(ValueError, match="shares patient"):
        patient_folds(data.patients, data.labels, 5, predefined)


def test_abmil_finds_the_key_tiles_that_mean_pooling_dilutes():
    result = SlideClassification().evaluate(TaskData({}, ["a", "b", "c"], bags()),
                                            SlideClassificationParams(bootstrap_resamples=100))
    assert result.metrics["balanced_accuracy"].mean > 0.85
    low, high = result.metrics["balanced_accuracy"].ci95
    assert low <= high and result.n_samples == {"slides": 36, "patients": 18, "tested_slides": 36, "failed_slides": 0,
                                                 "folds": 5}
    assert set(result.metrics) == set(SlideClassification.metric_names(SlideClassificationParams()))


def test_a_cohort_of_which_no_slide_could_be_embedded_says_how_many_and_why_the_first():
    """It said "no slide could be embedded: ('/data/a.tiff', 'cannot open: ...')" (a tuple's repr),
    and the survival family said nothing more."""
    from harness.tasks.survival import Survival, SurvivalParams

    none = SlideBags(features=[], patients=[], failed={"/data/a.tiff": "cannot open: No such file or directory",
                                                      "/data/b.tiff": "no tissue"})
    expected = "no slide could be embedded (2 failed; the first, /data/a.tiff: cannot open: No such file or directory)"
    for family, params in ((SlideClassification(), SlideClassificationParams()), (Survival(), SurvivalParams())):
        with pytest.raises(ValueError) as error:
            family.evaluate(TaskData({}, ["x", "y"], none), params)
        assert str(error.value) == expected


def test_test_folds_tests_the_official_test_set_alone_and_trains_on_the_rest():
    """Camelyon16's table marks its official test set fold 0 and its training set fold 1: each fold
    was tested in turn, so the training set was scored too and the two averaged. With test_folds
    [0] one fold is tested, trained on fold 1; its interval and samples cover the test slides."""
    data = bags()
    patients = np.array(data.patients)
    folds = np.array([0 if int(p.split("-")[1]) < 2 else 1 for p in patients])  # 2 of each class's 6 patients: test
    data.folds = folds
    [(train, test)] = patient_folds(data.patients, data.labels, 5, folds, test_folds=[0])
    assert set(test) == set(np.flatnonzero(folds == 0)) and set(train) == set(np.flatnonzero(folds == 1))
    assert len(patient_folds(data.patients, data.labels, 5, folds)) == 2  # without it: both folds tested
    # a negative fold is trained on and never tested: the same single fold
    [(train_n, test_n)] = patient_folds(data.patients, data.labels, 5, np.where(folds == 1, -1, folds))
    assert (train_n == train).all() and (test_n == test).all()
    with pytest.raises(ValueError, match="fold 0 holds every item: nothing is left to train on"):
        patient_folds(data.patients, data.labels, 5, np.zeros(len(folds), int))
    params = SlideClassificationParams(bootstrap_resamples=100, test_folds=[0])
    result = SlideClassification().evaluate(TaskData({}, ["a", "b", "c"], data), params)
    assert result.n_samples == {"slides": 36, "patients": 18, "tested_slides": 12, "failed_slides": 0, "folds": 1}
    assert sorted(s["slide"] for s in result.samples) == sorted(data.slide_names()[i] for i in test)
    assert len(result.metrics["balanced_accuracy"].values) == 1
    for wrong, message in (([2], r"test_folds names fold 2, which no slide of the dataset is in \(its folds: \[0, 1\]\)"),):
        with pytest.raises(ValueError, match=message):
            patient_folds(data.patients, data.labels, 5, folds, test_folds=wrong)
    with pytest.raises(ValueError, match="this dataset defines none"):
        patient_folds(data.patients, data.labels, 5, None, test_folds=[0])
