"""What the engine hands a task family, what it gets back, and what a family is.

A family is pure: `evaluate(TaskData, params) -> Evaluation`, arrays in, metrics out; no file
I/O, no model loading, no printing. It describes its metrics (direction, bounds, display group),
and results carry those descriptions, so that no reader needs to know a family or a metric by
name. The engine imports no family: the CLI passes the table (tasks/__init__.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# What the fields of a family's Params may hold: an impossible value in tasks.yaml (epochs: -1,
# lr: .inf, dropout: 2) is then refused when the registry is read, in one line naming the file and
# the key, not met after the embeddings are computed, nor scored as if it were the protocol
Steps = Annotated[int, Field(ge=1, le=10_000_000)]  # epochs, steps, patience, iterations, batch sizes
Width = Annotated[int, Field(ge=1, le=65_536)]  # a head's hidden units or tokens, a bag's tiles
Seeds = Annotated[list[int], Field(min_length=1, max_length=100)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # learning rates, penalties
Decay = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # weight decay
Dropout = Annotated[float, Field(ge=0, lt=1)]
Folds = Annotated[int, Field(ge=2, le=100)]
# the dataset's own folds that are tested; the items of its other folds are trained on in every fold
# and never tested (Camelyon16: [0], its official test set). None: each fold in turn
TestFolds = Annotated[list[int], Field(min_length=1, max_length=100)]
Resamples = Annotated[int, Field(ge=10, le=100_000)]  # bootstrap resamples of a 95% interval
Counts = list[Annotated[int, Field(ge=1, le=1_000_000)]]  # k of kNN or of map@k, shots per class


@dataclass
class SplitArrays:
    embeddings: np.ndarray  # (n, dim) float32
    labels: np.ndarray | None  # (n,) int64 class indices, when the dataset has labels
    records: list[dict] | None = None  # text annotations: {"image": i, "question", "answer"} or {"image": i, "report"}
    text_embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # record field -> (n_records, d)
    # spatial transcriptomics (one item = one spot): counts per gene, the patient of each spot, and
    # the dataset's own fold of each spot when it defines folds
    targets: np.ndarray | None = None  # (n, n_genes) raw counts
    groups: np.ndarray | None = None  # (n,) patient ids
    folds: np.ndarray | None = None  # (n,) fold index, when predefined
    slides: np.ndarray | None = None  # (n,) slide of each tile, when the dataset records it
    centres: np.ndarray | None = None  # (n,) medical centre of each tile, when the dataset records it
    subsets: np.ndarray | None = None  # (n,) the dataset's in-/out-of-domain mark ("ID"/"OOD"), if any
    patches: np.ndarray | None = None  # (n,) the tile's id within its slide, when the dataset records it
    # segmentation (families with `dense`): `embeddings` is then (n, channels, h, w), one feature
    # map per image (float16, memory-mapped), beside the images and their masks
    images: np.ndarray | None = None  # (n, H, W, 3) uint8
    masks: np.ndarray | None = None  # (n, H, W) class indices


@dataclass
class SlideBags:
    """Whole-slide datasets: one bag of tile embeddings per slide that could be embedded."""

    features: list[np.ndarray]  # per slide: (n_tiles, dim)
    patients: list[str]
    names: list[str] | None = None  # per slide: its file name (what per-item samples are keyed by)
    labels: np.ndarray | None = None  # class index per slide
    times: np.ndarray | None = None  # survival time per slide (its patient's)
    events: np.ndarray | None = None  # bool: event observed
    folds: np.ndarray | None = None  # predefined fold per slide
    failed: dict[str, str] = field(default_factory=dict)  # slide -> why it has no bag

    def slide_names(self) -> list[str]:
        """What per-item samples are keyed by: the file names, or positions when none were given."""
        return self.names or [str(i) for i in range(len(self.features))]


def embedded(slides: SlideBags | None) -> SlideBags:
    """A slide task's bags; ValueError when no slide could be embedded, saying how many failed and
    why the first did (a missing file, an unreadable slide, no tissue)."""
    if slides is None or not slides.features:
        failed = slides.failed if slides else {}
        first = next(iter(failed.items()), None)
        raise ValueError("no slide could be embedded" + (f" ({len(failed)} failed; the first, {first[0]}: {first[1]})"
                                                          if first else ""))
    return slides


@dataclass
class TaskData:
    splits: dict[str, SplitArrays]
    class_names: list[str]
    slides: SlideBags | None = None
    target_names: list[str] | None = None  # the columns of SplitArrays.targets (gene names)
    given_targets: list[str] | None = None  # a gene list the dataset ships (HEST's var_50genes.json)
    # where the run computes (its --device; None: not given, the CPU): a family whose head is large
    # enough to gain from it trains there (the segmentation decoders); the others' small heads stay on the CPU
    device: str | None = None


# An undefined value (NaN) is written null in a result file (standard JSON: harness/atomic_write.py)
# and read back as NaN; files written before that carry the bare NaN, which Python reads too
Number = Annotated[float, BeforeValidator(lambda value: math.nan if value is None else value)]


class MetricSummary(BaseModel):
    mean: Number
    std: Number  # over seeds (0.0 for deterministic metrics)
    ci95: tuple[Number, Number] | None = None  # bootstrap percentile interval on the test split
    values: list[Number] | None = None  # one per seed (or fold): what mean and std summarise
    # the bootstrap replicate values behind ci95 (not written: the result keeps the main score's)
    replicates: list[float] | None = Field(default=None, exclude=True)


@dataclass
class Evaluation:
    metrics: dict[str, MetricSummary]
    n_samples: dict[str, int]
    seeds: list[int]
    details: dict[str, Any] = field(default_factory=dict)  # e.g. distance, steps, eval split
    # per-item predictions, one row per item (and seed, head or fold), with the per-item values of
    # the metrics that are means over items: what `harness run --log-samples` writes beside the
    # result, so that two models can be compared item by item (a paired test)
    samples: list[dict[str, Any]] | None = None


class MetricInfo(BaseModel):
    """How to read one metric: which way is better, its range, where the app shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    higher_is_better: bool = True
    bounds: tuple[float | None, float | None] = (0.0, 1.0)  # None: unbounded on that side (CIDEr-D above)
    group: str = "score"  # display group; the app shows "robustness" metrics in its robustness panel

    @property
    def bounded(self) -> bool:
        """Both ends finite: such scores can be averaged with others (unbounded ones only ranked)."""
        return None not in self.bounds


SCORE = MetricInfo()  # a score in [0, 1], higher is better (accuracy, AUROC, C-index, map@k ...)


class TaskFamily:
    """What every family is. A family subclasses this, sets `name`, `title` and `Params`, and
    implements `metrics` and `evaluate`; registering it (tasks/__init__.py) makes its tasks
    valid in tasks.yaml."""

    name: ClassVar[str]
    title: ClassVar[str]  # how people read the name (the app's headings)
    Params: ClassVar[type[BaseModel]]
    text_fields: ClassVar[tuple[str, ...]] = ()  # record fields the runner embeds with the text encoder
    dense: ClassVar[bool] = False  # reads one feature map per image, the images and their masks (segmentation)

    @staticmethod
    def metrics(params: Any) -> dict[str, MetricInfo]:
        """Every metric `evaluate` returns under these parameters, described."""
        raise NotImplementedError

    @classmethod
    def metric_names(cls, params: Any) -> list[str]:
        return list(cls.metrics(params))

    def evaluate(self, data: TaskData, params: Any) -> Evaluation:
        raise NotImplementedError

    @staticmethod
    def scored_splits(params: Any, splits: Sequence[str]) -> list[str] | None:
        """Which of the tested dataset's splits (`splits`, its split names) hold the items the main
        score is computed on, as `evaluate` picks them: not the items a head is only fitted on.
        None: every item of the dataset (cross-validation, all-pairs robustness). A student
        distilled on any of them is scored on its training images (distillers/scoring.py).
        Default: the `test` split."""
        return ["test"]

    @staticmethod
    def reads_given_targets_only(params: Any) -> bool:
        """True when `evaluate` reads only the targets the dataset's own list names (HEST's gene
        list): the runner then asks the source for those alone (`given_spots`), not every gene."""
        return False


def resolved_params(family: type[TaskFamily], given: dict) -> dict:
    """A task's params as its family runs them (defaults filled in), as JSON values: what a result
    records under `params`. ValueError when `given` is not valid for the family."""
    return family.Params.model_validate(given).model_dump(mode="json")


def changed_param(now: dict, recorded: dict) -> str | None:
    """The first parameter whose value in a result (`recorded`, as the task ran) differs from what
    the task gives now (`now`: resolved_params), or None. A parameter only one side has (added to or
    dropped from the family since) is not a change."""
    return next((key for key, value in now.items() if key in recorded and recorded[key] != value), None)


def summarise(per_seed: Sequence[float], ci95: tuple[float, float] | None) -> MetricSummary:
    values = np.asarray(per_seed, dtype=np.float64)
    return MetricSummary(
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        values=[round(float(v), 6) for v in values],
        ci95=None if ci95 is None else (float(ci95[0]), float(ci95[1])),
        replicates=None if getattr(ci95, "replicates", None) is None else ci95.replicates.tolist(),
    )


def record_image_features(train: SplitArrays, split: SplitArrays) -> np.ndarray:
    """(n_records, dim) image embedding of each record of `split`, standardised with the train
    images' mean and std (so image features sit on the scale of the text features)."""
    images = np.asarray(train.embeddings, dtype=np.float32)
    mean, std = images.mean(axis=0), images.std(axis=0) + 1e-6
    standardised = (np.asarray(split.embeddings, dtype=np.float32) - mean) / std
    return standardised[[record["image"] for record in split.records]]
