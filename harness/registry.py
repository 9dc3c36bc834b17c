"""tasks.yaml: the declarative registry of datasets, tasks and suites, and its one schema.

Every key a user can write is declared here (pydantic, `extra="forbid"`), so a typo is an error
that names the file, the entry and the key, never a silently ignored setting. A user's own YAML
(`--include PATH`) is read with the same schema and merged into the built-in registry.
"""

from __future__ import annotations

import re

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from harness.errors import HarnessError, first_problem
from harness.yaml_files import read_yaml

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SourceName = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class _Dataset(_Strict):
    # where the images come from (e.g. TCGA, CAMELYON16): a result marks a model whose declared training
    # data shares one (test-set overlap); None: not declared
    image_sources: list[SourceName] | None = Field(None, max_length=32)


class TilingSpec(_Strict):
    """How whole slides become tiles (docs/protocols.md: 0.5 um/px, 256 px, no overlap, tissue only)."""

    target_mpp: float = Field(0.5, gt=0, le=100)
    tile_size: int = Field(256, ge=8, le=4096)
    min_tissue: float = Field(0.5, ge=0, le=1)  # fraction of a tile the tissue mask must cover
    max_tiles: int | None = Field(None, ge=1)  # per slide: an evenly spaced subsample of the kept tiles
    # A coarser grid that must cover the tissue a finer one keeps (a model reading 5x tiles of a
    # 20x dataset): the tissue rule is applied to `tile_size` tiles at this resolution, and a tile
    # is kept when it holds the centre of at least one of them.
    tissue_mpp: float | None = Field(None, gt=0, le=100)

    def at_mpp(self, mpp: float | None) -> "TilingSpec":
        """This grid as a model reading tiles at `mpp` um/px sees it (None: unchanged). Coarser than
        the dataset's grid, the model's tiles cover exactly the tissue the dataset's grid keeps."""
        if mpp is None or mpp == self.target_mpp:
            return self
        tissue = self.tissue_mpp or self.target_mpp
        return self.model_copy(update={"target_mpp": mpp, "tissue_mpp": tissue if mpp > tissue else None})


class SynthDataset(_Dataset):
    """Generated on first use by the built-in procedural generator (no download)."""

    source: Literal["synth"]
    generator: Literal["tiles", "plism", "slides"]  # tile suite, aligned stain x scanner domains, or WSIs
    params: dict[str, Any] = {}
    tiling: TilingSpec = TilingSpec()  # slides only
    # generated from each tile's truth: text (VQA pairs, reports), gene counts (each tile a spot) or
    # origins (each tile its own slide, its named staining protocol its "medical centre")
    annotations: Literal["vqa", "reports", "expression", "centres"] | None = None
    mpp: float = 0.5
    description: str = ""


class HubDataset(_Dataset):
    """A Hugging Face Hub dataset repository of parquet shards, pinned to a revision."""

    source: Literal["hf"]
    hub_id: str
    revision: str
    data_files: dict[str, str]  # harness split -> glob inside the repo, e.g. "data/train-*.parquet"
    image_column: str = "image"
    label_column: str | None = "label"
    classes: list[str] = []  # class names in label-index order
    question_column: str | None = None  # VQA datasets: one question and answer per row
    answer_column: str | None = None
    text_column: str | None = None  # captioning / report datasets: one text per row
    split_column: str | None = None  # splits = this column's values (e.g. one per slide); one data_files entry
    order_column: str | None = None  # with split_column: rows of a split sorted by this column
    items_per_split: int | None = None  # with split_column: the first N rows of each split in that order
    # with split_column + order_column (PLISM's tile_id): plismbench's selection, rows sorted by the
    # tile coordinates in the id, then its subset file of this size (harness/data/plismbench)
    plismbench_subset: Literal[460, 2713, 5426, 8139, 16278] | None = None
    # where each tile comes from (PathoROB's slide_id, medical_center, subset): centre robustness
    slide_column: str | None = None
    centre_column: str | None = None
    subset_column: str | None = None
    patch_column: str | None = None  # a tile's id within its slide (PathoROB's patch_id): slide + patch name a row
    mpp: float | None = None
    license: str = ""
    homepage: str = ""
    download_gb: float | None = None
    description: str = ""


class ImageFolderDataset(_Dataset):
    """<data-root>/<path>/<split>/<class>/<image>: for data behind a registration form."""

    source: Literal["imagefolder"]
    path: str
    splits: list[str]
    classes: list[str] | None = None  # default: the sorted class folder names of every split
    mpp: float | None = None
    license: str = ""
    homepage: str = ""
    instructions: str = ""  # how to obtain the data and arrange it in this layout
    description: str = ""


class CsvDataset(_Dataset):
    """<data-root>/<path>: a CSV with one row per image (path relative to the CSV) and its split,
    plus a label, a question and answer, or a text (report) per row."""

    source: Literal["csv"]
    path: str
    image_column: str = "image"
    split_column: str = "split"
    label_column: str | None = None
    classes: list[str] = []  # default: sorted label values
    question_column: str | None = None
    answer_column: str | None = None
    text_column: str | None = None
    mpp: float | None = None
    license: str = ""
    homepage: str = ""
    instructions: str = ""
    description: str = ""


PerturbationName = Literal["hed_jitter", "gaussian_blur", "jpeg", "gamma", "flip", "rot90"]


class TransformedDataset(_Dataset):
    """Items of another dataset's split, clean and under each perturbation (harness/perturbations.py):
    splits `clean` and one per transform, item i of every split being the same tile."""

    source: Literal["transformed"]
    base: str  # a dataset declared in the registry
    split: str = "test"
    max_items: int | None = 128  # evenly spaced over the split; null = all
    transforms: list[PerturbationName] = ["hed_jitter", "gaussian_blur", "jpeg", "gamma", "flip", "rot90"]
    seed: int = 0
    description: str = ""


class WsiDataset(_Dataset):
    """<root>/<path>: a CSV with one row per slide (file path relative to the CSV, patient id, and
    a label or survival time + event, optional fold); slides are read with OpenSlide."""

    source: Literal["wsi"]
    path: str
    root_env: str | None = None  # an environment variable naming this dataset's root (else --data-root)
    slide_column: str = "slide"
    patient_column: str = "patient"
    label_column: str | None = None
    classes: list[str] = []  # default: sorted label values
    time_column: str | None = None
    event_column: str | None = None  # 1 = event observed, 0 = censored
    fold_column: str | None = None  # predefined folds (0..k-1); default: patient-grouped k folds
    tiling: TilingSpec = TilingSpec()
    license: str = ""
    homepage: str = ""
    instructions: str = ""
    description: str = ""


class HestBenchDataset(_Dataset):
    """One HEST-Bench task folder as its Hub dataset lays it out (<data-root>/<path>): splits/
    train_<i>.csv and test_<i>.csv (sample_id, patches_path, expr_path), patches/<sample>.h5 (img,
    barcode, coords), adata/<sample>.h5ad (raw counts) and the task's gene list."""

    source: Literal["hest"]
    path: str
    gene_list: str = "var_50genes.json"  # HEST's 50 highly variable genes (chosen on all samples)
    mpp: float | None = 0.5
    license: str = ""
    homepage: str = ""
    instructions: str = ""
    description: str = ""


class SegmentationFolderDataset(_Dataset):
    """A segmentation dataset in its publisher's folder layout (<data-root>/<path>)."""

    source: Literal["masks"]
    layout: Literal["consep", "monusac", "bcss"]  # harness/sources/segmentation_folders.py
    path: str
    size: int = Field(224, ge=16, le=1024)  # monusac: each image resized and cropped to this
    max_items_per_image: int = Field(1000, ge=1)  # bcss: grid cells kept per image (eva's GridSampler)
    license: str = ""
    homepage: str = ""
    instructions: str = ""
    description: str = ""


DatasetSpec = BaseModel  # one of DATASET_SCHEMAS' classes, chosen by the dataset's `source:` key

# A dataset's `source:` -> the schema of its keys. A source kind registers its schema here along
# with how to open it (harness/sources/__init__.py, register_source_kind); the registry derives
# the choices and its error messages from this table.
DATASET_SCHEMAS: dict[str, type[BaseModel]] = {
    "synth": SynthDataset, "hf": HubDataset, "imagefolder": ImageFolderDataset, "csv": CsvDataset,
    "transformed": TransformedDataset, "wsi": WsiDataset, "hest": HestBenchDataset,
    "masks": SegmentationFolderDataset,
}


class TaskSpec(_Strict):
    family: str
    dataset: str
    version: int = 1
    main_score: str
    params: dict[str, Any] = {}
    # cross-cohort: train (and select) on `dataset`, test on this dataset's `test_split` (same class names)
    test_dataset: str | None = None
    test_split: str = "test"
    description: str = ""
    protocol_note: str = ""  # where and why the task deviates from docs/protocols.md


class SuiteSpec(_Strict):
    """A suite that reruns a published table: its tasks, how the table aggregates them, and which
    table (and version of its anchor) it mirrors. A plain list of tasks is a suite without these."""

    tasks: list[str]
    aggregate: Literal["mean"] | None = None  # of the tasks' main scores, over models that scored them all
    mirrors: str = ""  # the published table, its version or commit


class RegistryFile(_Strict):
    datasets: dict[str, dict[str, Any]] = {}  # each validated by its source's schema (parse_dataset)
    tasks: dict[str, TaskSpec] = {}
    suites: dict[str, list[str] | SuiteSpec] = {}
    include: list[str] = []  # further YAML files, relative to this one


@dataclass
class Registry:
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    suites: dict[str, list[str]] = field(default_factory=dict)
    suite_specs: dict[str, SuiteSpec] = field(default_factory=dict)  # every suite, aggregate and anchor included
    origin: dict[str, Path] = field(default_factory=dict)  # "tasks:<name>" -> file it came from

    def families(self) -> list[str]:
        return sorted({task.family for task in self.tasks.values()})

    def select(self, expression: str) -> list[str]:
        """Task names for `--tasks`: comma-separated task, family or suite names, or `all`."""
        chosen: list[str] = []
        for token in (part.strip() for part in expression.split(",")):
            if not token:
                continue
            if token == "all":
                names = list(self.tasks)
            elif token in self.tasks:
                names = [token]
            elif token in self.suites:
                names = self.suites[token]
            elif token in self.families():
                names = [name for name, task in self.tasks.items() if task.family == token]
            else:
                known = list(self.tasks) + list(self.suites) + self.families() + ["all"]
                close = difflib.get_close_matches(token, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise HarnessError(
                    f"unknown task, family or suite '{token}'{hint}: run `harness list` to see them"
                )
            chosen.extend(name for name in names if name not in chosen)
        if not chosen:
            raise HarnessError("--tasks selected no task: give task, family or suite names, or `all`")
        return chosen


def default_registry_path() -> Path:
    """The registry shipped with the harness: the package's `tasks.yaml`. In the repository that is
    a link to the top-level tasks.yaml (one copy); a built wheel holds the file itself."""
    override = os.environ.get("HARNESS_TASKS_FILE")
    if override:
        return Path(override)
    from importlib.resources import files

    return Path(str(files("harness").joinpath("tasks.yaml")))


def load_registry(
    paths: list[Path] | None = None,
    families: Mapping[str, Any] | None = None,
) -> Registry:
    """Read the built-in registry plus `paths` (each may `include:` more), then check that
    every reference resolves and, when `families` is given, every task's family parameters."""
    registry = Registry()
    seen: set[Path] = set()
    for path in [default_registry_path(), *(paths or [])]:
        _merge_file(registry, Path(path), seen)
    _check_references(registry)
    if families is not None:
        check_task_params(registry, families)
    return registry


def _merge_file(registry: Registry, path: Path, seen: set[Path]) -> None:
    path = path.expanduser().resolve()
    if path in seen:
        return
    seen.add(path)
    parsed = _parse_file(path)
    for name, raw in parsed.datasets.items():
        _add(registry, "datasets", name, parse_dataset(name, raw, path), path)
    for name, spec in parsed.tasks.items():
        _add(registry, "tasks", name, spec, path)
    for name, members in parsed.suites.items():
        spec = members if isinstance(members, SuiteSpec) else SuiteSpec(tasks=members)
        _add(registry, "suites", name, list(spec.tasks), path)
        registry.suite_specs[name] = spec
    for child in parsed.include:
        _merge_file(registry, path.parent / child, seen)


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a task's name is its result file's name: no path in it


def _add(registry: Registry, section: str, name: str, value: Any, path: Path) -> None:
    table = getattr(registry, section)
    if not NAME.fullmatch(str(name)) or ".." in str(name):
        raise HarnessError(f"{path}: {section[:-1]} '{str(name)[:60]}': a name is letters, digits, '.', '_' and '-' "
                           "(at most 100, no separator, no '..'): rename it")
    if name in table:
        first = registry.origin[f"{section}:{name}"]
        raise HarnessError(f"{path}: {section[:-1]} '{name}' is already defined in {first}: rename it")
    table[name] = value
    registry.origin[f"{section}:{name}"] = path


def _parse_file(path: Path) -> RegistryFile:
    raw = read_yaml(path, "registry file")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: expected a mapping with datasets/tasks/suites, got {type(raw).__name__}")
    try:
        return RegistryFile.model_validate(raw)
    except ValidationError as error:
        raise HarnessError(f"{path}: {describe_validation_error(error)}") from None


def parse_dataset(name: str, raw: dict[str, Any], path: Path) -> DatasetSpec:
    """One dataset entry, validated by the schema its `source:` names."""
    source = raw.get("source")
    schema = DATASET_SCHEMAS.get(source) if isinstance(source, str) else None
    if schema is None:
        problem = "required key is missing" if source is None else f"unknown source '{source}'"
        raise HarnessError(f"{path}: dataset '{name}': key 'source': {problem} (one of: {', '.join(DATASET_SCHEMAS)})")
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        loc, message = first_problem(error)
        raise HarnessError(f"{path}: dataset '{name}': key '{'.'.join(loc)}': {message}") from None


def describe_validation_error(error: ValidationError) -> str:
    """'<section> '<name>': key '<key>': <message>' for a registry file."""
    loc, message = first_problem(error)
    if len(loc) >= 2 and loc[0] in ("datasets", "tasks", "suites"):
        section, name, rest = loc[0][:-1], loc[1], loc[2:]
        key = f": key '{'.'.join(rest)}'" if rest else ""
        return f"{section} '{name}'{key}: {message}"
    return f"key '{'.'.join(loc)}': {message}" if loc else message


def declared_classes(spec: DatasetSpec) -> list[str] | None:
    """The class names a dataset declares in the registry, where it does (None: known only from its files)."""
    if isinstance(spec, SynthDataset) and spec.generator == "tiles":
        from harness.synth.class_names import TASK_CLASSES

        if spec.params.get("masks"):  # a segmentation suite's classes are its pixels'
            return None
        return list(TASK_CLASSES.get(str(spec.params.get("task", "tissue")), ())) or None
    classes = getattr(spec, "classes", None)
    return list(classes) if classes else None


def _is_slides(spec: DatasetSpec) -> bool:
    return isinstance(spec, WsiDataset) or (isinstance(spec, SynthDataset) and spec.generator == "slides")


def _check_references(registry: Registry) -> None:
    for name, dataset in registry.datasets.items():
        base = getattr(dataset, "base", None)  # a dataset made from another one (transformed)
        if base is not None and (base not in registry.datasets or getattr(registry.datasets[base], "base", None)):
            raise HarnessError(
                f"{registry.origin['datasets:' + name]}: dataset '{name}': key 'base': "
                f"'{dataset.base}' is not a declared dataset of tiles (declare it under datasets:)"
            )
    for name, task in registry.tasks.items():
        if task.dataset not in registry.datasets:
            raise HarnessError(
                f"{registry.origin['tasks:' + name]}: task '{name}': key 'dataset': "
                f"unknown dataset '{task.dataset}' (declare it under datasets:)"
            )
        if (isinstance(task.params, dict) and task.params.get("test_folds") is not None
                and getattr(registry.datasets[task.dataset], "fold_column", None) is None):
            raise HarnessError(  # else found only after every slide was embedded
                f"{registry.origin['tasks:' + name]}: task '{name}': key 'params.test_folds': dataset "
                f"'{task.dataset}' has no folds of its own (no fold_column); drop test_folds, or give the dataset "
                "its fold_column")
        if task.test_dataset is not None and task.test_dataset not in registry.datasets:
            raise HarnessError(
                f"{registry.origin['tasks:' + name]}: task '{name}': key 'test_dataset': "
                f"unknown dataset '{task.test_dataset}' (declare it under datasets:)"
            )
        if task.test_dataset is not None:
            slides = [d for d in (task.dataset, task.test_dataset) if _is_slides(registry.datasets[d])]
            if slides:  # a slide task's folds are its cohort's; silently ignoring test_dataset would mislead
                raise HarnessError(
                    f"{registry.origin['tasks:' + name]}: task '{name}': key 'test_dataset': '{slides[0]}' is a "
                    "dataset of slides; cross-cohort tasks train and test on tiles")
            trained, tested = (declared_classes(registry.datasets[d]) for d in (task.dataset, task.test_dataset))
            if trained is not None and tested is not None and set(trained) != set(tested):
                raise HarnessError(
                    f"{registry.origin['tasks:' + name]}: task '{name}': cross-cohort classes differ: "
                    f"'{task.dataset}' has {sorted(trained)}, '{task.test_dataset}' has {sorted(tested)}; "
                    "train and test cohorts need the same labels")
    for name, members in registry.suites.items():
        for member in members:
            if member not in registry.tasks:
                raise HarnessError(
                    f"{registry.origin['suites:' + name]}: suite '{name}': unknown task '{member}'"
                )


def check_task_params(registry: Registry, families: Mapping[str, Any]) -> None:
    """Each task names a known family, valid family parameters and one of its metrics."""
    for name, task in registry.tasks.items():
        where = f"{registry.origin['tasks:' + name]}: task '{name}'"
        family = families.get(task.family)
        if family is None:
            raise HarnessError(
                f"{where}: key 'family': unknown family '{task.family}' (known: {', '.join(sorted(families))})"
            )
        try:
            params = family.Params.model_validate(task.params)
        except ValidationError as error:
            loc, message = first_problem(error)
            raise HarnessError(f"{where}: key '{'.'.join(['params', *loc])}': {message}") from None
        metrics = family.metric_names(params)
        if task.main_score not in metrics:
            raise HarnessError(
                f"{where}: key 'main_score': '{task.main_score}' is not a metric of family "
                f"'{task.family}' (one of: {', '.join(metrics)})"
            )
