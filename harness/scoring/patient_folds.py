"""Patient-level k folds for slide tasks: no patient's slides on both sides of a split."""

from __future__ import annotations

import numpy as np


def patient_folds(patients: list[str], strata: np.ndarray, n_folds: int,
                  predefined: np.ndarray | None = None, seed: int = 0,
                  test_folds: list[int] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train slide indices, test slide indices) per fold. Predefined folds are used as given
    (checked for patient leakage), each tested in turn and trained on everything else; a negative
    fold is trained on in every fold and never tested (a HEST task's samples that only its train
    files name); with `test_folds` only those are tested, and the slides of the other folds are
    trained on in every fold (Camelyon16: fold 0, the official test set, against its training set).
    Otherwise StratifiedGroupKFold on `strata` (label, or event for survival), grouped by patient,
    shuffled with `seed`."""
    from sklearn.model_selection import StratifiedGroupKFold

    patients = np.asarray(patients)
    if test_folds is not None:
        if predefined is None:
            raise ValueError("test_folds names folds of the dataset's own, and this dataset defines none "
                             "(its fold_column): drop test_folds, or give the dataset its folds")
        absent = sorted(set(test_folds) - set(np.unique(predefined).tolist()))
        if absent:
            raise ValueError(f"test_folds names fold {absent[0]}, which no slide of the dataset is in "
                             f"(its folds: {sorted(set(np.unique(predefined).tolist()))})")
    if predefined is not None:
        folds = []
        for fold in (np.unique(predefined[predefined >= 0]) if test_folds is None else sorted(set(test_folds))):
            test = np.flatnonzero(predefined == fold)
            train = np.flatnonzero(predefined != fold)
            if len(train) == 0:
                raise ValueError(f"fold {fold} holds every item: nothing is left to train on; give the dataset "
                                 "more folds, or items that are only trained on")
            shared = set(patients[test]) & set(patients[train])
            if shared:
                raise ValueError(f"fold {fold} shares patient(s) {sorted(shared)[:3]} between train and test: "
                                 "assign each patient's slides to one fold")
            folds.append((train, test))
        if not folds:
            raise ValueError("every predefined fold is negative (trained on, never tested): there is nothing to test")
        return folds
    n_groups = len(set(patients))
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} patients cannot fill {n_folds} folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(patients)), strata, groups=patients)]
