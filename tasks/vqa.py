"""Visual question answering on a frozen image encoder (this project's protocol, see README).

Each record pairs an image with a question (embedded by all-MiniLM-L6-v2) and an answer. A
small MLP on [standardised image embedding ; question embedding] classifies over the answers
seen in train, for a fixed number of epochs and seeds. Closed questions (yes/no, multiple
choice) score accuracy; open ones exact match and token F1; `overall_accuracy` is exact match
over all test records. Beside it, two answers that ignore the image (Antol et al., 2015):
details.majority_baseline, the most frequent train answer of the question's type (a record's
`type`, else the question's first two words, VQA's convention), and details.prior_baseline,
the most frequent train answer overall.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.scoring.bootstrap import N_RESAMPLES, bootstrap_mean_ci
from harness.evaluation import (
    Decay, Dropout, Evaluation, MetricInfo, Rate, Resamples, SCORE, Seeds, SplitArrays, Steps, TaskData,
    TaskFamily, Width, record_image_features, summarise,
)
from harness.scoring.text_metrics import token_f1
from harness.scoring.parallel_fits import map_fits
from harness.scoring.torch_threads import single_thread
from harness.scoring.head_optimiser import head_adamw


class VqaParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2])
    epochs: Steps = 30
    batch_size: Steps = 128
    lr: Rate = 1e-3
    weight_decay: Decay = 1e-4
    hidden: Width = 256
    dropout: Dropout = 0.1
    train_split: str = "train"
    test_split: str = "test"
    bootstrap_resamples: Resamples = N_RESAMPLES


def _features(train: SplitArrays, split: SplitArrays) -> np.ndarray:
    """[standardised image embedding ; question embedding] per record."""
    images = record_image_features(train, split)
    return np.concatenate([images, split.text_embeddings["question"]], axis=1).astype(np.float32)


def _train_mlp(x: np.ndarray, y: np.ndarray, n_answers: int, params: VqaParams, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], params.hidden), nn.ReLU(), nn.Dropout(params.dropout),
                          nn.Linear(params.hidden, n_answers))
    optimiser = head_adamw(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(params.epochs):
        for batch in torch.randperm(len(xt), generator=generator).split(params.batch_size):
            optimiser.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xt[batch]), yt[batch]).backward()
            optimiser.step()
    return model.eval()


class VisualQuestionAnswering(TaskFamily):
    name: ClassVar[str] = "vqa"
    title: ClassVar[str] = "VQA"
    Params: ClassVar[type[BaseModel]] = VqaParams

    @staticmethod
    def scored_splits(params: VqaParams, splits: Sequence[str]) -> list[str] | None:
        return [params.test_split]
    text_fields: ClassVar[tuple[str, ...]] = ("question",)

    @staticmethod
    def metrics(params: VqaParams) -> dict[str, MetricInfo]:
        return {name: SCORE for name in ["overall_accuracy", "closed_accuracy", "open_exact_match", "open_token_f1"]}

    def evaluate(self, data: TaskData, params: VqaParams) -> Evaluation:
        import torch

        train, test = data.splits.get(params.train_split), data.splits.get(params.test_split)
        if train is None or test is None or not train.records or not test.records:
            raise ValueError(f"vqa needs question/answer records in '{params.train_split}' and '{params.test_split}'")
        x_train, x_test = _features(train, train), _features(train, test)
        answers = sorted({r["answer"] for r in train.records})
        answer_index = {a: i for i, a in enumerate(answers)}
        y_train = np.array([answer_index[r["answer"]] for r in train.records], dtype=np.int64)
        truth = [r["answer"] for r in test.records]
        closed = np.array([r.get("kind", "open") == "closed" for r in test.records])

        def fit_seed(k: int) -> list[str]:
            with single_thread():
                model = _train_mlp(x_train, y_train, len(answers), params, params.seeds[k])
                with torch.no_grad():
                    return [answers[i] for i in model(torch.from_numpy(x_test)).argmax(1).tolist()]

        exact, f1, samples = [], [], []
        for seed, predicted in zip(params.seeds, map_fits(fit_seed, len(params.seeds))):
            exact.append(np.array([p == t for p, t in zip(predicted, truth)], dtype=np.float64))
            f1.append(np.array([token_f1(p, t) for p, t in zip(predicted, truth)]))
            samples += [{"item": i, "seed": seed, "image": record.get("image"), "type": question_type(record),
                         "kind": record.get("kind", "open"), "question": record.get("question"),
                         "answer": record["answer"], "prediction": p, "exact": bool(e), "token_f1": float(t)}
                        for i, (record, p, e, t) in enumerate(zip(test.records, predicted, exact[-1], f1[-1]))]

        exact_per_seed, f1_per_seed = np.stack(exact), np.stack(f1)
        metrics = {}
        for name, values, mask in (
            ("overall_accuracy", exact_per_seed, np.ones(len(truth), bool)),
            ("closed_accuracy", exact_per_seed, closed),
            ("open_exact_match", exact_per_seed, ~closed),
            ("open_token_f1", f1_per_seed, ~closed),
        ):
            if not mask.any():
                continue
            per_record = values[:, mask].mean(axis=0)  # averaged over seeds
            ci = bootstrap_mean_ci(per_record, n_resamples=params.bootstrap_resamples)
            metrics[name] = summarise(values[:, mask].mean(axis=1), ci)

        by_type = majority_answers(train.records)
        prior = Counter(r["answer"] for r in train.records).most_common(1)[0][0]
        guessed = np.array([by_type.get(question_type(r), prior) == r["answer"] for r in test.records])
        return Evaluation(
            metrics=metrics,
            n_samples={"train_records": len(train.records), "test_records": len(test.records),
                       "answers": len(answers)},
            seeds=list(params.seeds),
            details={"majority_baseline": {"overall_accuracy": float(guessed.mean()),
                                           "closed_accuracy": float(guessed[closed].mean()) if closed.any() else None},
                     "prior_baseline": {"answer": prior,
                                        "overall_accuracy": float(np.mean([t == prior for t in truth]))},
                     "unseen_test_answers": int(sum(t not in answer_index for t in truth)),
                     "text_encoder": "all-MiniLM-L6-v2"},
            samples=samples,
        )


def question_type(record: dict) -> str:
    return record.get("type") or " ".join(record["question"].lower().split()[:2])


def majority_answers(records: list[dict]) -> dict[str, str]:
    """Most frequent train answer of each question type."""
    by_type: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        by_type[question_type(record)][record["answer"]] += 1
    return {t: counts.most_common(1)[0][0] for t, counts in by_type.items()}
