"""Content-based retrieval: test embeddings query the train embeddings by cosine similarity.

acc@k: any of the top k shares the query's class; mv@k: the majority class of the top k is the
query's (ties go to the best-ranked tied class); map@k: average precision over the top k,
normalised by the relevant items retrieved (torchmetrics RetrievalMAP(top_k=k)). Deterministic,
so std is 0; the 95% CI is a bootstrap over queries.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field

from harness.scoring.bootstrap import N_RESAMPLES, bootstrap_mean_ci
from harness.evaluation import Counts, Evaluation, MetricInfo, Resamples, SCORE, TaskData, TaskFamily, summarise
from harness.scoring.metrics import average_precision_at_k, cosine_top_k, hit_at_k, majority_vote_at_k


class RetrievalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ks: Counts = Field(default_factory=lambda: [1, 3, 5, 10], min_length=1)
    query_split: str = "test"
    database_split: str = "train"
    bootstrap_resamples: Resamples = N_RESAMPLES


class Retrieval(TaskFamily):
    name: ClassVar[str] = "retrieval"
    title: ClassVar[str] = "retrieval"
    Params: ClassVar[type[BaseModel]] = RetrievalParams

    @staticmethod
    def scored_splits(params: RetrievalParams, splits: Sequence[str]) -> list[str] | None:
        return [params.query_split]  # the database split is searched, not scored

    @staticmethod
    def metrics(params: RetrievalParams) -> dict[str, MetricInfo]:
        return {f"{kind}@{k}": SCORE for kind in ("acc", "mv", "map") for k in params.ks}

    def evaluate(self, data: TaskData, params: RetrievalParams) -> Evaluation:
        for split in (params.query_split, params.database_split):
            if split not in data.splits:
                raise ValueError(f"retrieval needs a '{split}' split; the dataset has {sorted(data.splits)}")
        queries = data.splits[params.query_split]
        database = data.splits[params.database_split]
        if max(params.ks) > len(database.labels):  # the top 10 of 5 items is the top 5, labelled @10
            raise ValueError(f"ks {sorted(k for k in params.ks if k > len(database.labels))} exceed the "
                             f"{len(database.labels)} items of the database split '{params.database_split}': lower "
                             "the task's ks")
        ranked = cosine_top_k(queries.embeddings, database.embeddings, max(params.ks))
        neighbour_labels = database.labels[ranked]
        relevant = neighbour_labels == queries.labels[:, None]

        metrics = {}
        samples = [{"item": i, "label": int(label), "neighbours": ranked[i].tolist()}
                   for i, label in enumerate(queries.labels)]
        for k in params.ks:
            for kind, per_query in (
                ("acc", hit_at_k(relevant, k)),
                ("mv", majority_vote_at_k(neighbour_labels, queries.labels, k)),
                ("map", average_precision_at_k(relevant, k)),
            ):
                ci = bootstrap_mean_ci(per_query, n_resamples=params.bootstrap_resamples)
                metrics[f"{kind}@{k}"] = summarise([per_query.mean()], ci)
                for row, value in zip(samples, per_query):
                    row[f"{kind}@{k}"] = float(value)
        return Evaluation(
            metrics=metrics,
            n_samples={"queries": len(queries.labels), "database": len(database.labels)},
            seeds=[],
            details={"distance": "cosine", "query_split": params.query_split,
                     "database_split": params.database_split},
            samples=samples,
        )
