"""`harness run`: for each model and task, embeddings (cached) -> family -> result file.

A task whose data is absent is recorded as skipped with the command that gets it; a task that
raises is recorded as failed with its reason and the run goes on. The runner knows no family:
it receives the table from the CLI.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np
from rich.markup import escape

from harness.atomic_write import write_parquet_atomic
from harness.embedding_cache import EmbeddingCache
from harness.errors import HarnessError, NotApplicable, one_line
from harness.evaluation import (SlideBags, SplitArrays, TaskData, TaskFamily, changed_param,
                                resolved_params)
from harness.hub_access import is_commit
from harness.install_hints import missing_extra, task_extras
from harness.models.model_spec import DEFAULT_MODEL, LoadOptions, ModelSpec, resolve_model
from harness.process_group import process_rank
from harness.registry import Registry, TaskSpec
from harness.results import DatasetRecord, MainScore, ModelRecord, ResultStore, TaskResult, Timings, training_overlap
from harness.sources import DataContext, TileSource, open_source
from harness.sources.split_copies import refuse_copies_across_splits
from harness.terminal import console
from harness.timestamps import utc_timestamp

if TYPE_CHECKING:  # torch and timm are imported when a task has to compute, not for a rerun that reuses
    from harness.models.loading import Encoder
    from harness.tile_embedding import ExtractOptions


@dataclass
class RunConfig:
    models: list[str]
    tasks: list[str]
    output: Path
    context: DataContext
    load: LoadOptions = LoadOptions()  # its device is the extraction's
    # the extraction options, or a function that resolves them (device, precision, workers) when the
    # first embedding is computed: resolving them imports torch, which a rerun that reuses every
    # result does not need; None: as `harness run` without flags (auto device, precision and workers)
    extract: ExtractOptions | Callable[[], ExtractOptions] | None = None
    overwrite: bool = False
    download: bool = False
    verbose: bool = False
    dims: list[int | None] | None = None  # also score each model with its embeddings truncated to these dims
    log_samples: bool = False  # write each result's per-item predictions beside it (<task>.samples.parquet)
    # a precision asked for by name (`--precision fp32`): an earlier result embedded at another one is
    # scored again, not reused; None (auto) reuses a result whatever precision it was computed at
    precision: str | None = None


@dataclass
class TaskOutcome:
    model: str
    task: str
    status: str
    main_score: str | None = None
    value: float | None = None
    std: float | None = None
    ci95: tuple[float, float] | None = None
    reason: str | None = None
    reused: bool = False  # an earlier run's result, not recomputed
    n_values: int | None = None  # seeds or folds behind value and std (one: the std says nothing)
    slug: str | None = None  # the model's results folder (<output>/<slug>/<task>.json)
    weights: str | None = None  # pretrained | random-init | checkpoint | instrument, as the result records it


@dataclass
class Runner:
    registry: Registry
    families: Mapping[str, type[TaskFamily]]
    config: RunConfig
    _sources: dict[str, TileSource] = field(default_factory=dict)
    _fingerprints: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.store = ResultStore(self.config.output)
        self.cache = EmbeddingCache.of(self.config.context)
        self.rank = process_rank()
        self._truncate: int | None = None
        self._copies_said: set[str] = set()  # datasets whose copies across splits the run has printed

    @cached_property
    def extract(self) -> ExtractOptions:
        """The extraction options, resolved once (importing torch) when first needed."""
        configured = self.config.extract
        if callable(configured):
            return configured()
        if configured is None:  # what `harness run` does without flags (not the bare CPU fp32 of ExtractOptions())
            from harness.tile_embedding import default_extract_options, resolve_device

            return default_extract_options(resolve_device("auto"))
        return configured

    def run(self) -> list[TaskOutcome]:
        models = distinct_models([(spec, self._resolve(spec)) for spec in dict.fromkeys(self.config.models)])
        outcomes: list[TaskOutcome] = []
        for spec, model in models:
            for dims in self.config.dims or [None]:
                self._truncate = dims
                outcomes += self._run_model(spec, model)
        return outcomes

    def _load_options(self, spec: str) -> LoadOptions:
        options = self.config.load
        if spec == DEFAULT_MODEL and not options.random_init:
            options = dataclasses.replace(options, random_fallback=True)
        return options

    def _resolve(self, spec: str) -> ModelSpec | Exception:
        """The model, or why it cannot be one (reported as that model's failure, the others still run)."""
        try:
            return resolve_model(spec, self._load_options(spec))
        except Exception as error:  # noqa: BLE001 - one model's failure; the other models are still scored
            return error

    def _truncated_identity(self, name: str, slug: str) -> tuple[str, str]:
        """Model name and result folder of a truncated (Matryoshka) evaluation: '<name>@<k>d'."""
        if self._truncate is None:
            return name, slug
        return f"{name}@{self._truncate}d", f"{slug}-d{self._truncate}"

    def _truncated(self, embeddings: np.ndarray) -> np.ndarray:
        if self._truncate is None:
            return embeddings
        if self._truncate > embeddings.shape[1]:
            raise ValueError(f"--dims {self._truncate}: the embeddings have only {embeddings.shape[1]} dims")
        return np.asarray(embeddings)[:, : self._truncate]

    # --- one model ------------------------------------------------------------------
    def _run_model(self, spec: str, model: ModelSpec | Exception) -> list[TaskOutcome]:
        if isinstance(model, Exception):
            return self._model_failed(spec, self.config.tasks, model)
        options = self._load_options(spec)
        name, slug = self._truncated_identity(model.name, model.slug)
        encoder: Encoder | None = None
        outcomes = []
        card_change_said = False
        for index, task_name in enumerate(self.config.tasks):
            task = self.registry.tasks[task_name]
            stored = self.store.path(slug, task_name)
            previous = self.store.read(stored)
            if (not card_change_said and previous is not None and previous.status == "ok"
                    and model.card_sha256 != previous.model.card_sha256):
                console.print(f"note: {escape(name)}: its earlier results were computed with another card "
                              "(architecture, timm_kwargs, Hub weights, transform, pooling or slide_mpp), or do not "
                              "record one; scoring it again")
                card_change_said = True
            if previous is None and stored.exists():  # recomputed, said, not silently
                console.print(f"note: {escape(str(stored))}: not a result file this harness "
                              "can read (hand-edited, damaged or another task's); scoring the task again, which "
                              "replaces it")
            if (not self.config.overwrite and previous is not None and previous.status == "ok"
                    and previous.task_version == task.version and previous.model.name == name
                    and model.weights_sha256 in (None, previous.model.weights_sha256)
                    and model.card_sha256 == previous.model.card_sha256  # the card as it fed the model then
                    and self._same_params(task, previous)
                    and self._same_precision(previous)
                    and (not self.config.log_samples or self._has_samples(slug, previous))):
                changed = self._changed_data(task, previous)
                if changed is None:
                    outcomes.append(_outcome_from(previous, slug, reused=True))
                    continue
                console.print(f"{escape(name)} / {task_name}: {escape(changed)}; scoring it again")
            source = self._source(task.dataset)
            if self.rank != 0 and source.kind != "slides":
                continue  # under torchrun, only slide extraction is split across ranks; rank 0 does the rest
            missing = next(filter(None, map(missing_extra, task_extras(self.families[task.family], source))), None)
            if missing is not None:  # before the data is fetched, generated or embedded
                outcomes.append(self._record(slug, task_name, task, ModelRecord(name=name), source,
                                             status="skipped", reason=missing))
                continue
            availability = source.availability()
            if not availability.ok and self.config.download:
                console.print(source.download())
                availability = source.availability()
            test_source = self._source(task.test_dataset) if task.test_dataset else None
            if availability.ok and test_source is not None:  # cross-cohort: the test cohort must be there too
                availability = test_source.availability()
                if not availability.ok and self.config.download:
                    console.print(test_source.download())
                    availability = test_source.availability()
            if not availability.ok:
                outcomes.append(self._record(slug, task_name, task, ModelRecord(name=name), source,
                                             status="skipped", reason=availability.reason))
                continue
            if encoder is None:
                try:
                    from harness.models.loading import load_encoder

                    options = dataclasses.replace(options, device=self.extract.device)  # where it embeds
                    encoder = load_encoder(model, options)
                except Exception as error:  # noqa: BLE001 - one model's failure; the other models are still scored
                    return outcomes + self._model_failed(spec, self.config.tasks[index:], error)
                if encoder.info.weights == "random-init" and options.random_fallback:
                    console.print(f"note: {escape(spec)}: pretrained weights unreachable offline; scoring a random "
                                  "initialisation (results are labelled random-init)")
                _, slug = self._truncated_identity(name, encoder.info.slug)
            outcomes.append(self._evaluate(slug, task_name, task, encoder, source, test_source, model.card_sha256))
        return outcomes

    def _same_params(self, task: TaskSpec, previous: TaskResult) -> bool:
        """Whether a result was computed with the task's parameters as they are now: a task edited in
        its YAML without a new version is scored again, not answered with the old protocol's result.
        A parameter one side lacks (added to the family since, with its default) is not a change."""
        return changed_param(resolved_params(self.families[task.family], task.params), previous.params) is None

    def _model_failed(self, spec: str, tasks: list[str], error: Exception) -> list[TaskOutcome]:
        """A model that cannot be resolved or built (a bad card, an allocation refused, a timm or Hub
        error): one named failure for its remaining tasks; the run goes on with the next model."""
        if self.config.verbose:
            console.print_exception()
        reason = str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {one_line(error)}"
        console.print(f"[red]error[/red]: {escape(reason)}")
        return [TaskOutcome(spec, task, "failed", reason=reason) for task in tasks]

    def _source(self, dataset: str) -> TileSource:
        if dataset not in self._sources:
            self._sources[dataset] = open_source(dataset, self.registry.datasets[dataset], self.config.context,
                                                 self.registry.datasets)
        return self._sources[dataset]

    # --- one task -------------------------------------------------------------------
    def _evaluate(self, slug: str, name: str, task: TaskSpec, encoder: Encoder, source: TileSource,
                  test_source: TileSource | None = None, card_sha256: str | None = None) -> TaskOutcome:
        info = encoder.info
        card = encoder.card
        model = ModelRecord(name=self._truncated_identity(info.name, slug)[0], weights=info.weights,
                            weights_sha256=info.weights_sha256, n_parameters=info.n_parameters,
                            embed_dim=info.embed_dim, hub_id=card.hub_id, revision=card.revision,
                            licence=card.licence or None, teachers=list(card.teachers) or None,
                            # an untrained network was trained on nothing; otherwise what its card declares
                            training_data=[] if info.weights == "random-init" else card.training_data,
                            card_sha256=card_sha256)
        family = self.families[task.family]
        try:
            if test_source is not None and source.kind != "tiles":  # a plugin's slide source (the registry refuses its own)
                raise HarnessError(f"task dataset '{source.name}' is not a dataset of tiles: cross-cohort tasks "
                                   "train and test on tiles")
            source.prepare()
            fingerprint = self._fingerprint(source)
            if source.kind == "slides":
                return self._evaluate_slides(slug, name, task, encoder, source, fingerprint, model)
            copies = self._copies_across_splits(source) if test_source is None else None
            started = time.perf_counter()
            params = family.Params.model_validate(task.params)
            splits, throughputs, precisions, genes = {}, [], set(), (None, None)
            parts = [(source, split, split) for split in source.split_names()]
            if test_source is not None:
                parts = self._cross_cohort_parts(task, source, test_source)
            for part, split, key in parts:  # key: the split's name for the family (cross-cohort: its test split is "test")
                from harness.tile_embedding import embed_split

                cached, _ = embed_split(encoder, part, part.split_fingerprint(split), split, self.cache, self.extract,
                                        dense=family.dense)
                records = part.records(split)
                from harness.text_encoder import embed_texts

                texts = {f: embed_texts([r[f] for r in records], self.config.context.cache_dir)
                         for f in family.text_fields} if records else {}
                labels = part.labels(split)
                if part is not source and labels is not None:  # the test cohort's labels, by class name
                    index = {c: i for i, c in enumerate(source.class_names())}
                    labels = np.array([index[c] for c in np.asarray(part.class_names())[labels]], dtype=np.int64)
                arrays = splits[key] = SplitArrays(self._truncated(cached.embeddings), labels, records, texts)
                spots = part.given_spots(split) if family.reads_given_targets_only(params) else part.spots(split)
                if spots is not None:
                    arrays.targets, arrays.groups = spots.counts, np.asarray(spots.patients)
                    arrays.folds, genes = spots.folds, (spots.genes, spots.given_genes)
                origins = part.origins(split)
                if origins is not None:
                    origins.check(len(cached.embeddings), f"{part.name} split '{split}'")
                    arrays.slides, arrays.centres = np.asarray(origins.slides), np.asarray(origins.centres)
                    arrays.subsets = None if origins.subsets is None else np.asarray(origins.subsets)
                    arrays.patches = None if origins.patches is None else np.asarray(origins.patches)
                if family.dense:
                    arrays.images, arrays.masks = dense_targets(part, split, part.name)
                precisions.add(cached.meta.get("precision"))
                if cached.meta.get("items_per_s"):
                    throughputs.append((cached.meta["n_items"], cached.meta["items_per_s"]))
            embed_s = time.perf_counter() - started
            model = model.model_copy(update={"embed_dim": int(next(iter(splits.values())).embeddings.shape[1])})
            started = time.perf_counter()
            evaluation = family().evaluate(TaskData(splits=splits, class_names=source.class_names(),
                                                    target_names=genes[0], given_targets=genes[1],
                                                    device=self.extract.device), params)
            eval_s = time.perf_counter() - started
            if copies:
                evaluation.details["copies_across_splits"] = copies
            if test_source is not None:
                evaluation.details["test_dataset"] = {
                    "name": test_source.name, "split": task.test_split, "fingerprint": self._fingerprint(test_source),
                    "revision": test_source.revision(), "image_sources": image_sources(test_source)}
            if task.main_score not in evaluation.metrics:  # e.g. plism_score on slides of one scanner
                raise ValueError(f"main score '{task.main_score}' was not computed on this data (computed: "
                                 f"{', '.join(sorted(evaluation.metrics)) or 'nothing'}); see the family's "
                                 "protocol in docs/protocols.md, or make one of those the task's main_score")
            if not math.isfinite(evaluation.metrics[task.main_score].mean):  # a score the board could not rank
                raise ValueError(f"main score '{task.main_score}' is undefined on this data "
                                 f"({evaluation.metrics[task.main_score].mean}: e.g. an AUROC on a test split of one "
                                 "class); check the split's labels, or make another metric the task's main_score")
        except NotApplicable as error:
            return self._record(slug, name, task, model, source, status="skipped", reason=str(error))
        except Exception as error:  # noqa: BLE001 - recorded as a failed task; the run goes on
            if self.config.verbose:
                traceback.print_exc()
            reason = one_line(error)
            console.print(f"[red]failed[/red] {escape(info.name)} / {name}: {escape(reason)}")
            return self._record(slug, name, task, model, source, status="failed", reason=reason)
        items = sum(n for n, _ in throughputs)
        items_per_s = items / sum(n / rate for n, rate in throughputs) if throughputs else None
        timings = Timings(embed_s=round(embed_s, 3), eval_s=round(eval_s, 3),
                          items_per_s=round(items_per_s, 2) if items_per_s else None,
                          precision=next(iter(precisions)) if len(precisions) == 1 else None)
        return self._write_ok(slug, name, task, model, source, fingerprint, evaluation, timings)

    def _copies_across_splits(self, source: TileSource) -> dict[str, int] | None:
        """A published dataset's images that are byte for byte in an earlier split (its source counts
        them rather than refusing them: harness/sources/split_copies.py): said once per run, and kept
        in each result's details as {split: how many of its images}, for the board to show."""
        found = source.copies_across_splits()
        if not found or not found[0]:
            return None
        counts, (split, row, earlier, earlier_row) = found
        if source.name not in self._copies_said:
            self._copies_said.add(source.name)
            listed = ", ".join(f"{n:,} {escape(name)} item(s)" for name, n in counts.items())
            console.print(f"[yellow]warning[/yellow] {escape(source.name)}: the image of {listed} is byte for byte an "
                          f"image of an earlier split (first: {escape(split)} row {row} = {escape(earlier)} row "
                          f"{earlier_row}); "
                          "a published dataset's splits are scored as they are, so every model's score includes them "
                          "(each result records how many)")
        return dict(counts)

    def _write_ok(self, slug, name, task, model, source, fingerprint, evaluation, timings: Timings) -> TaskOutcome:
        from harness.provenance import environment

        main = evaluation.metrics[task.main_score]
        family = self.families[task.family]
        test_dataset = evaluation.details.get("test_dataset")  # cross-cohort: the test images are the other cohort's
        tested = test_dataset["image_sources"] if test_dataset else image_sources(source)
        params = family.Params.model_validate(task.params)
        result = TaskResult(
            task=name, task_version=task.version, family=task.family, family_title=family.title, status="ok",
            model=model, metric_info=family.metrics(params),
            dataset=dataset_record(task.dataset, source, fingerprint),
            main_score=MainScore(name=task.main_score, value=main.mean,
                                 replicates=[round(v, 6) for v in main.replicates] if main.replicates else None),
            metrics=evaluation.metrics,
            n_samples=evaluation.n_samples, seeds=evaluation.seeds, details=evaluation.details,
            timings=timings, params=params.model_dump(mode="json"),
            environment=environment(self.extract.device, timings.precision), date=utc_timestamp(),
            training_overlap=training_overlap(model.training_data, tested),
        )
        if self.config.log_samples and evaluation.samples:
            import pandas as pd  # only when asked: pandas is not on the path of a plain run

            path = self.store.samples_path(slug, name)
            write_parquet_atomic(path, pd.DataFrame(evaluation.samples))
            result.samples = path.name
        self.store.write(slug, result)  # after the samples: a result that names them finds them
        return _outcome_from(result, slug)

    def _changed_data(self, task: TaskSpec, previous: TaskResult) -> str | None:
        """What of a result's data differs from what the registry reads now (None: nothing): a table
        whose labels were corrected, images added to a folder, a Hub dataset at a new commit. Data
        absent now keeps its result; data that cannot be read now is scored again, and the run's
        failure keeps the earlier result (`_record`)."""
        recorded = [(task.dataset, previous.dataset.fingerprint)]
        if task.test_dataset:
            recorded.append((task.test_dataset, previous.test_fingerprint))
        for dataset, fingerprint in recorded:
            if fingerprint is None:  # a result written before fingerprints were recorded
                continue
            source = self._source(dataset)
            try:
                if not source.availability().ok:
                    continue
                now = self._fingerprint(source)
            except Exception as error:  # noqa: BLE001 - told when the task is scored again
                return f"dataset '{dataset}' cannot be read now ({one_line(error)})"
            if now != fingerprint:
                return f"dataset '{dataset}' changed since its result was computed"
        return None

    def _same_precision(self, previous: TaskResult) -> bool:
        """A result answers a precision named on the command line if it was embedded at it (or
        records none: instruments, text); with `auto` (None) any result does."""
        asked, recorded = self.config.precision, previous.timings.precision
        return asked is None or recorded is None or asked == recorded

    def _has_samples(self, slug: str, previous: TaskResult) -> bool:
        """--log-samples reuses an earlier result only if its samples were written too."""
        return previous.samples is not None and self.store.samples_path(slug, previous.task).exists()

    def _evaluate_slides(self, slug, name, task, encoder, source, fingerprint, model) -> TaskOutcome:
        """Slide tasks: embed every slide (split across ranks under torchrun), rank 0 evaluates."""
        from harness.slides.slide_embedding import slide_features

        table = source.table()
        started = time.perf_counter()
        tiling = source.tiling.at_mpp(encoder.card.slide_mpp)  # the grid as the model reads it
        embedded = slide_features(encoder, source, table.paths, tiling, self.cache, self.extract, fingerprint)
        embed_s = time.perf_counter() - started
        if self.rank != 0:
            return TaskOutcome(encoder.info.name, name, "embedded")
        for path, reason in embedded.failed.items():
            console.print(f"[yellow]slide failed[/yellow] {escape(str(path))}: {escape(reason)}")
        self._refuse_blind(encoder, embedded.features, source.name)
        pick = lambda values: None if values is None else np.asarray(values)[embedded.kept]  # noqa: E731
        bags = SlideBags(features=[self._truncated(f) for f in embedded.features], patients=[table.patients[i] for i in embedded.kept],
                         names=[Path(table.paths[i]).name for i in embedded.kept],
                         labels=pick(table.labels), times=pick(table.times), events=pick(table.events),
                         folds=pick(table.folds), failed=embedded.failed)
        if bags.features:
            model = model.model_copy(update={"embed_dim": int(bags.features[0].shape[1])})
        started = time.perf_counter()
        family = self.families[task.family]
        evaluation = family().evaluate(TaskData(splits={}, class_names=source.class_names(), slides=bags,
                                                device=self.extract.device), family.Params.model_validate(task.params))
        eval_s = time.perf_counter() - started
        evaluation.n_samples["failed_slides"] = len(embedded.failed)
        evaluation.n_samples["tiles"] = int(sum(len(f) for f in embedded.features))
        evaluation.details["tiling"] = {"mpp": tiling.target_mpp, "tile_size": tiling.tile_size,
                                        "tiles_per_slide": round(float(np.mean([len(f) for f in embedded.features])), 2)
                                        if embedded.features else None}
        timings = Timings(embed_s=round(embed_s, 3), eval_s=round(eval_s, 3), items_per_s=embedded.items_per_s,
                          slides_per_min=embedded.slides_per_min,
                          precision=self.extract.precision if encoder.reads_pixels else None)
        return self._write_ok(slug, name, task, model, source, fingerprint, evaluation, timings)

    @staticmethod
    def _refuse_blind(encoder: Encoder, features: list[np.ndarray], dataset: str) -> None:
        """A model that gives every tile of every slide one embedding ignores its input: its score
        would be chance, shown as a result. Tiles of different slides are different tissue, so (unlike
        a split of copies of one image) one embedding for all of them is the model's doing."""
        from harness.tile_embedding import MIN_IMAGES_FOR_CONSTANT_CHECK, blind_model, one_embedding

        tiles = sum(len(f) for f in features)
        if (encoder.reads_pixels and len(features) > 1 and tiles >= MIN_IMAGES_FOR_CONSTANT_CHECK
                and one_embedding(features)):
            raise blind_model(encoder.info.name, f"all {tiles} tiles of the {len(features)} slides of {dataset}")

    def _fingerprint(self, source: TileSource) -> str:
        if source.name not in self._fingerprints:
            self._fingerprints[source.name] = source.fingerprint()
        return self._fingerprints[source.name]

    def _cross_cohort_parts(self, task: TaskSpec, source: TileSource,
                            test_source: TileSource) -> list[tuple[TileSource, str, str]]:
        """(source, its split, the family's split name): the training cohort's splits but its test,
        then the test cohort's `test_split` as "test". Both cohorts must name the same classes."""
        if test_source.kind != "tiles":
            raise HarnessError(f"task test_dataset '{test_source.name}' is not a dataset of tiles: cross-cohort "
                               "tasks train and test on tiles")
        test_source.prepare()
        trained, tested = source.class_names(), test_source.class_names()
        if set(trained) != set(tested):
            raise HarnessError(
                f"cross-cohort classes differ: '{source.name}' has {sorted(trained)}, '{test_source.name}' has "
                f"{sorted(tested)}; a model trained on one cohort can be tested on another only with the same labels")
        if task.test_split not in test_source.split_names():
            raise HarnessError(f"test_dataset '{test_source.name}' has no split '{task.test_split}' (splits: "
                               f"{', '.join(test_source.split_names())}); set the task's test_split")
        parts = [(source, split, split) for split in source.split_names() if split != "test"]
        parts += [(test_source, task.test_split, "test")]
        files = {f"{part.name}/{split}": getattr(part.images(split), "paths", None) for part, split, _ in parts}
        if all(paths is not None for paths in files.values()):  # images read from files: no test image trained on
            refuse_copies_across_splits(files, None, f"cross-cohort '{source.name}' -> '{test_source.name}'")
        return parts

    def _record(self, slug, name, task, model, source, status, reason) -> TaskOutcome:
        if reason is not None and len(reason) > 2000:  # an error's message can be megabytes; the file keeps a line
            reason = reason[:1999] + "…"
        if self.rank != 0:  # under torchrun only rank 0 writes results
            return TaskOutcome(model.name, name, status, reason=reason)
        path = self.store.path(slug, name)
        previous = self.store.read(path) if status != "ok" else None
        if previous is not None and previous.status == "ok":  # e.g. --overwrite, then the rerun failed
            console.print(f"[yellow]kept[/yellow] the earlier ok result {escape(str(path))}: this run {status} "
                          f"({escape(str(reason))})")
            return TaskOutcome(model.name, name, status, reason=f"{reason} (the earlier ok result {path} is kept)",
                               weights=model.weights)
        family = self.families[task.family]
        result = TaskResult(
            task=name, task_version=task.version, family=task.family, family_title=family.title, status=status,
            reason=reason, metric_info=family.metrics(family.Params.model_validate(task.params)),
            model=model, dataset=DatasetRecord(name=task.dataset, source=source.spec.source),
            main_score=MainScore(name=task.main_score), date=utc_timestamp(),
        )
        self.store.write(slug, result)
        return _outcome_from(result, slug)


def dense_targets(source: TileSource, split: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """A segmentation split's images (n, H, W, 3) and masks (n, H, W), checked to match."""
    masks = source.masks(split)
    if masks is None:
        raise HarnessError(f"dataset '{dataset}' has no masks: a segmentation task needs a dataset with them")
    where = f"dataset '{dataset}', split '{split}'"
    from harness.sources.image_files import tile_pixels  # PIL: not on the path of a run that reuses its results

    images = _stacked([np.asarray(tile_pixels(image), dtype=np.uint8) for image in source.images(split)],
                      f"{where}: image")
    masks = _stacked([np.asarray(mask) for mask in masks], f"{where}: mask")
    if masks.shape != images.shape[:3]:
        raise HarnessError(f"dataset '{dataset}', split '{split}': masks {masks.shape} do not match the images "
                           f"{images.shape[:3]}")
    return images, masks


def _stacked(items: list[np.ndarray], what: str) -> np.ndarray:
    """One array of same-shaped items, or one line naming the first item of another shape."""
    for index, item in enumerate(items):
        if item.shape != items[0].shape:
            raise HarnessError(f"{what} {index} is {item.shape[:2]}, item 0 is {items[0].shape[:2]}: every item of a "
                               "segmentation dataset must have one size (a mask cut from a smaller file?)")
    return np.stack(items)


def image_sources(source: TileSource) -> list[str] | None:
    """Where a dataset's images come from, as tasks.yaml declares it (a plugin's schema may not have the key)."""
    return getattr(source.spec, "image_sources", None)


def dataset_record(name: str, source: TileSource, fingerprint: str | None) -> DatasetRecord:
    revision = source.revision()
    asked = getattr(source.spec, "revision", None)
    return DatasetRecord(name=name, source=source.spec.source, fingerprint=fingerprint, revision=revision,
                         pinned=None if asked is None else is_commit(asked), image_sources=image_sources(source))


def distinct_models(models: list[tuple[str, ModelSpec | Exception]]) -> list[tuple[str, ModelSpec | Exception]]:
    """The run's models, each once: the same weights named twice (a path with and without its
    trailing slash) are one model, scored once. Two models whose results would go to one folder
    (two checkpoints whose cards give one name) are refused in one line, before anything is
    computed: the second would overwrite the first's results as the run goes."""
    folders: dict[str, tuple[str, object]] = {}  # slug -> (spec, which model: its weights file, or its spec)
    distinct = []
    for spec, model in models:
        if isinstance(model, Exception):
            distinct.append((spec, model))
            continue
        which = model.checkpoint.resolve() if model.checkpoint else spec
        first, seen = folders.setdefault(model.slug, (spec, which))
        if seen != which:
            raise HarnessError(f"--model {first} and --model {spec} are both named '{model.name}', so "
                               f"their results would share the folder {model.slug}/ and one would overwrite the "
                               "other's; give one a name of its own (`name:` in its card.yaml) or score them in "
                               "separate runs with separate --output folders")
        if first == spec:
            distinct.append((spec, model))
    return distinct


def _outcome_from(result: TaskResult, slug: str, reused: bool = False) -> TaskOutcome:
    main = result.metrics.get(result.main_score.name)
    return TaskOutcome(
        model=result.model.name, task=result.task, status=result.status, main_score=result.main_score.name,
        value=main.mean if main else None, std=main.std if main else None,
        ci95=main.ci95 if main else None, reason=result.reason, reused=reused, slug=slug,
        n_values=len(main.values) if main and main.values is not None else None, weights=result.model.weights,
    )
