"""Result files: one JSON per (model, task) at <output>/<model-slug>/<task>.json.

The schema below is the contract with the leaderboard (documented in the README). Files are
written atomically; a file that does not parse is reported and treated as absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from harness import __version__
from harness.atomic_write import write_json_atomic
from harness.bounded_read import read_json
from harness.evaluation import MetricInfo, MetricSummary, Number

RESULT_SCHEMA_VERSION = 7  # 2: metric values per seed/fold, main-score replicates, params, environment,
# dataset and model revisions; 3: `samples`, the per-item predictions file (--log-samples);
# 4: `metric_info` (each metric's direction, bounds and display group, as its family declares
# them) and `family_title`; 5: `model.teachers`, a distilled student's lineage; 6: `model.training_data`,
# `dataset.image_sources` and `training_overlap` (test-set overlap); 7: `model.card_sha256`, what
# in the model's card decides its embeddings. Older files are read as they are (the new fields stay empty).
# Beside the result files, <output>/<student>/ may hold the report `harness distill --score`
# writes; it is not a result file, and readers of result files pass over it.
DISTILLATION_REPORT = "distillation.json"
TRAINING_CURVES = ("loss_curve", "held_out_curve")  # distill.json's, carried into the report's `training`
SAMPLES_SUFFIX = ".samples.parquet"  # per-item predictions beside <task>.json (--log-samples)
MAX_RESULT_BYTES = 32 * 1024 * 1024  # a result with its replicates is tens of kB
Status = Literal["ok", "skipped", "failed"]


SourceName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def training_overlap(training_data: list[str] | None, image_sources: list[str] | None) -> list[str] | None:
    """The image sources a model was declared to be trained on, case-insensitively; None if either is undeclared."""
    if training_data is None or image_sources is None:
        return None
    trained = {name.casefold() for name in training_data}
    return sorted({name for name in image_sources if name.casefold() in trained})


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRecord(_Record):
    # bounded: a result file is read by the board, where a 1e30 or a 10 MB name must not land
    name: str = Field(min_length=1, max_length=1000)
    weights: str | None = Field(None, max_length=40)  # pretrained | random-init | checkpoint | instrument
    weights_sha256: str | None = Field(None, max_length=64)
    n_parameters: int | None = Field(None, ge=0, le=10**13)
    embed_dim: int | None = Field(None, ge=0, le=10**7)
    hub_id: str | None = Field(None, max_length=200)  # where the weights live on the Hub (a Hub submission, a known FM)
    revision: str | None = Field(None, max_length=200)  # the commit sha they were read at
    licence: str | None = Field(None, max_length=200)
    teachers: list[str] | None = Field(None, max_length=16)  # a distilled student's teachers (its card's lineage)
    training_data: list[SourceName] | None = Field(None, max_length=32)  # declared pretraining sources (None: unknown)
    # a checkpoint's or known model's card as it was built and fed (models/card.py: card_sha256)
    card_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class DatasetRecord(_Record):
    name: str = Field(max_length=200)
    source: str = Field(max_length=200)
    fingerprint: str | None = Field(None, max_length=200)
    revision: str | None = Field(None, max_length=200)  # a Hub dataset: the commit its files were read at
    pinned: bool | None = None  # a Hub dataset: whether tasks.yaml names that commit (not a branch)
    image_sources: list[SourceName] | None = Field(None, max_length=32)  # where its images come from (None: undeclared)


class MainScore(_Record):
    name: str
    value: float | None = None
    # the bootstrap replicates of its CI (harness/scoring/bootstrap.py): the same resamples of the same
    # test items for every model, so the leaderboard can bootstrap ranks as paired comparisons
    replicates: list[Number] | None = None


class Timings(_Record):
    embed_s: float = 0.0  # time spent obtaining embeddings in this run (cache hits ~0)
    eval_s: float = 0.0
    items_per_s: float | None = None  # extraction throughput when the embeddings were computed
    slides_per_min: float | None = None  # slide tasks: slides tiled + embedded per minute, when computed
    precision: str | None = None  # of the image encoder's forward pass (fp32 or bf16)


class TaskResult(_Record):
    schema_version: int = RESULT_SCHEMA_VERSION
    task: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    task_version: int
    family: str = Field(max_length=100)
    family_title: str | None = Field(None, max_length=200)  # how the family reads in headings, e.g. "stain/scanner robustness"
    status: Status
    reason: str | None = Field(None, max_length=20_000)
    model: ModelRecord
    dataset: DatasetRecord
    main_score: MainScore
    metrics: dict[str, MetricSummary] = {}
    metric_info: dict[str, MetricInfo] = {}  # every metric of the family under these params, described
    n_samples: dict[str, int] = {}
    seeds: list[int] = []
    details: dict[str, Any] = {}
    timings: Timings = Timings()
    params: dict[str, Any] = {}  # the family's parameters as the task ran them (defaults filled in)
    environment: dict[str, Any] = {}  # python, torch, timm, harness versions, device, precision, git commit
    samples: str | None = None  # --log-samples: the per-item predictions beside this file (<task>.samples.parquet)
    # the model's declared training data that the task's images come from ([]: none; None: either side undeclared)
    training_overlap: list[SourceName] | None = Field(None, max_length=32)
    harness_version: str = __version__
    date: str = ""

    @property
    def test_fingerprint(self) -> str | None:
        """A cross-cohort result's test cohort's fingerprint (the runner writes it under details), or
        None: the file has none, or something else there (details are free-form, and untrusted)."""
        test = self.details.get("test_dataset")
        tested = test.get("fingerprint") if isinstance(test, dict) else None
        return None if tested is None else str(tested)[:200]


class ResultStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def check_writable(self, flag: str = "--output") -> None:
        """Refuse, in one line and before any work, a results folder that cannot be written: a file
        in its place, no permission, a read-only file system."""
        import tempfile

        from harness.errors import HarnessError

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-check-"):
                pass
        except OSError as error:
            why = error.strerror or type(error).__name__
            raise HarnessError(f"{flag} {self.root}: cannot write results there ({why}); give a folder you can "
                               "write to") from None

    def path(self, model_slug: str, task: str) -> Path:
        return self.root / model_slug / f"{task}.json"

    def samples_path(self, model_slug: str, task: str) -> Path:
        return self.root / model_slug / f"{task}{SAMPLES_SUFFIX}"

    def read(self, path: Path) -> TaskResult | None:
        """The result at `path`, or None: absent, or not a result file that can be read (too large,
        not JSON or not valid, a FIFO or a folder under its name), or one holding another task than
        its name says (a file copied by hand, as the board refuses it): it is computed again and replaced."""
        try:
            result = TaskResult.model_validate(read_json(path, MAX_RESULT_BYTES, "result file"))
        except (OSError, ValueError, ValidationError):
            return None
        return result if Path(path).name == f"{result.task}.json" else None

    def write(self, model_slug: str, result: TaskResult) -> Path:
        path = self.path(model_slug, result.task)
        write_json_atomic(path, result.model_dump(mode="json"))
        return path
