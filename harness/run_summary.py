"""Tables printed at the end of a run and by `harness list`."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.terminal import stdout


def print_summary(outcomes, output: Path) -> None:
    """The skipped tasks first, once per reason, with what is missing and how to get it in full (cut
    to a column's width, the steps were the part lost); then the scores (ok and failed tasks), so
    that they are what a terminal shows at the end of a run."""
    scored = [o for o in outcomes if o.status != "skipped"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    if skipped:
        _print_skipped(skipped, models=list(dict.fromkeys(o.model for o in outcomes)))
    if scored or not skipped:
        _print_scores(scored)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "skipped", "failed")}
    stdout.print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; results in "
                 f"{escape(str(output))}/")


def _print_scores(outcomes) -> None:
    table = Table(title="main scores (mean ± std over seeds or folds where there are several, bootstrap 95% CI on test)")
    for column in ("model", "task", "status", "main score", "value", "95% CI", "note"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        value = "-" if o.value is None else (f"{o.value:.4f}" if o.n_values == 1 else f"{o.value:.4f} ± {o.std:.4f}")
        ci = f"[{o.ci95[0]:.3f}, {o.ci95[1]:.3f}]" if o.ci95 else "-"
        note = "earlier result (use --overwrite to recompute)" if o.reused else _short(o.reason or "")
        status = {"ok": "[green]ok[/green]", "failed": "[red]failed[/red]"}[o.status]
        # names and reasons are data (a card's name, an error's text, an install hint in brackets): as text
        model = f"{o.model} (random-init)" if o.weights == "random-init" else o.model  # untrained: said on every row
        table.add_row(Text(model), Text(o.task), status, Text(o.main_score or "-"), value, Text(ci), Text(note))
    stdout.print(table)


def _print_skipped(outcomes, models: list[str]) -> None:
    """One row per reason: the tasks that share it (crc-100k's three tasks read one dataset) and, only
    where a reason holds for some of the run's models and not all, which models."""
    models_of: dict[tuple[str, str], list[str]] = {}  # (task, reason) -> the models skipped for it
    for o in outcomes:
        models_of.setdefault((o.task, o.reason or ""), []).append(o.model)
    tasks_of: dict[tuple[tuple[str, ...], str], list[str]] = {}  # (models, reason) -> tasks: one row each
    for (task, reason), names in models_of.items():
        tasks_of.setdefault((tuple(names), reason), []).append(task)
    rows = [(names, task_names, reason) for (names, reason), task_names in tasks_of.items()]
    per_model = any(len(names) != len(models) for names, _, _ in rows)
    table = Table(title=f"skipped ({len(outcomes)}): the same text is each result file's `reason`", title_style="yellow")
    if per_model:
        table.add_column("model", overflow="fold")
    for column in ("task", "missing", "how to get it"):
        table.add_column(column, overflow="fold")
    for names, task_names, reason in rows:
        missing, how = split_reason(reason)
        cells = [Text(", ".join(task_names)), Text(missing), Text(how)]
        table.add_row(*([Text(", ".join(names))] if per_model else []), *cells)
    stdout.print(table)


def print_retention(report: dict, path: Path) -> None:
    """`harness distill --score`: the student against each teacher, from the report it wrote."""
    from harness.distillers.scoring import DISTIL_ELSEWHERE
    from harness.leaderboard.student_tables import student_name

    # the student's name (its card's, or its folder's) is text, never markup
    title = f"student {student_name(report)} against its teachers (retention: student / teacher x 100)"
    table = Table(title=Text(title))
    for column in ("teacher", "tasks", "median retention %", "median normalised retention %", "parameters",
                   "items/s"):
        table.add_column(column, overflow="fold")
    for name, row in report["teachers"].items():
        params, rate = row["parameters"], row["items_per_s"]
        not_held_out = sum(bool(task.get("on_training_images")) for task in row["tasks"].values())
        table.add_row(Text(name), f"{len(row['tasks'])}" + (f" ({not_held_out} not held out)" if not_held_out else ""),
                      _number(row["median_retention"], ".1f"),
                      _number(row["median_normalised_retention"], ".1f"),
                      f"{_number(params['student'], ',')} / {_number(params['teacher'], ',')}",
                      f"{_number(rate['student'], '.1f')} / {_number(rate['teacher'], '.1f')}")
    stdout.print(table)
    stdout.print(f"normalised: (student - random-noise) / (teacher - random-noise) on the tasks the teacher "
                 f"informs; parameters and items/s: student / teacher; per task in {escape(str(path))}")
    seen = report.get("on_training_images")
    if seen:  # the student learnt the teachers' embeddings of these tasks' test images
        stdout.print(f"[yellow]warning[/yellow] the student was distilled on the images these tasks score: "
                     f"{escape(', '.join(seen))}; their retention is in the report, not in the medians above. "
                     + escape(DISTIL_ELSEWHERE))


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def split_reason(reason: str) -> tuple[str, str]:
    """('what is missing', 'how to get it'): a skip reason reads "<what is missing>: <steps>" or
    "<what is missing>; <steps>"; one without either is all 'what'."""
    cuts = [i for i in (reason.find(": "), reason.find("; ")) if i > 0]
    if not cuts:
        return reason, ""
    cut = min(cuts)
    return reason[:cut], reason[cut + 2:]


def _short(reason: str, limit: int = 110) -> str:
    """The scores table shows the start of a failure's reason; the result file keeps all of it."""
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def print_registry(registry, families, context) -> None:
    from harness.models.instruments import INSTRUMENTS
    from harness.models.zoo import KNOWN_MODELS
    from harness.sources import open_source

    from harness.hub_access import is_commit
    from harness.install_hints import missing_extra, task_extras

    missing_lines: set[str] = set()
    tasks = Table(title="tasks")
    for column in ("task", "family", "dataset", "source", "main score", "version"):
        tasks.add_column(column)
    tasks.add_column("data", no_wrap=True)
    for name, task in registry.tasks.items():
        spec = registry.datasets[task.dataset]
        source_of_task = open_source(task.dataset, spec, context, registry.datasets)
        availability = source_of_task.availability()
        revision = getattr(spec, "revision", None)  # Hub datasets: pinned to a commit, or a branch that can move
        source = spec.source if revision is None else (
            f"{spec.source}@{revision[:12]}" if is_commit(revision) else f"{spec.source}@{revision} [yellow](unpinned)[/yellow]")
        data = "present" if availability.ok else "[yellow]absent[/yellow]"
        for extra in task_extras(families[task.family], source_of_task):  # not installed: the run skips the task
            line = missing_extra(extra)
            if line:
                data += f", [yellow]needs \\[{extra}][/yellow]"
                missing_lines.add(line)
        tasks.add_row(name, task.family, task.dataset, source, task.main_score, str(task.version), data)
    stdout.print(tasks)
    for line in sorted(missing_lines):
        stdout.print(f"[yellow]{escape(line)}[/yellow]")

    fams = Table(title="families")
    fams.add_column("family")
    fams.add_column("tasks")
    for family in sorted(families):
        fams.add_row(family, ", ".join(n for n, t in registry.tasks.items() if t.family == family))
    stdout.print(fams)

    suites = Table(title="suites")
    suites.add_column("suite")
    suites.add_column("tasks")
    for suite, members in registry.suites.items():
        suites.add_row(suite, ", ".join(members))
    stdout.print(suites)

    models = Table(title="models (also: timm:<name>, hf-hub:<org>/<repo>, or a checkpoint path)")
    for column in ("model", "hub id", "pooling", "dim", "licence"):
        models.add_column(column)
    for name in INSTRUMENTS:
        models.add_row(name, "-", "-", "-", "instrument (synthetic suite only)")
    for name, card in KNOWN_MODELS.items():
        models.add_row(name, card.hub_id or "-", card.pooling, str(card.embed_dim), card.licence)
    stdout.print(models)
