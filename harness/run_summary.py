"""Tables printed at the end of a run and by `harness list`."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.terminal import stdout


def print_summary(outcomes, output: Path) -> None:
    table = Table(title="main scores (mean ± std over seeds or folds where there are several, bootstrap 95% CI on test)")
    for column in ("model", "task", "status", "main score", "value", "95% CI", "note"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        value = "-" if o.value is None else (f"{o.value:.4f}" if o.n_values == 1 else f"{o.value:.4f} ± {o.std:.4f}")
        ci = f"[{o.ci95[0]:.3f}, {o.ci95[1]:.3f}]" if o.ci95 else "-"
        note = "earlier result (use --overwrite to recompute)" if o.reused else _short(o.reason or "")
        status = {"ok": "[green]ok[/green]", "skipped": "[yellow]skipped[/yellow]",
                  "failed": "[red]failed[/red]"}[o.status]
        # names and reasons are data (a card's name, an error's text, an install hint in brackets): as text
        table.add_row(Text(o.model), Text(o.task), status, Text(o.main_score or "-"), value, Text(ci), Text(note))
    stdout.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "skipped", "failed")}
    stdout.print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; results in "
                 f"{escape(str(output))}/")


def _short(reason: str, limit: int = 110) -> str:
    """The table shows the start of a reason; the result file keeps all of it."""
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def print_registry(registry, families, context) -> None:
    from harness.models.instruments import INSTRUMENTS
    from harness.models.zoo import KNOWN_MODELS
    from harness.sources import open_source

    from harness.hub_access import is_commit

    tasks = Table(title="tasks")
    for column in ("task", "family", "dataset", "source", "main score", "version", "data"):
        tasks.add_column(column)
    for name, task in registry.tasks.items():
        spec = registry.datasets[task.dataset]
        availability = open_source(task.dataset, spec, context, registry.datasets).availability()
        revision = getattr(spec, "revision", None)  # Hub datasets: pinned to a commit, or a branch that can move
        source = spec.source if revision is None else (
            f"{spec.source}@{revision[:12]}" if is_commit(revision) else f"{spec.source}@{revision} [yellow](unpinned)[/yellow]")
        tasks.add_row(name, task.family, task.dataset, source, task.main_score, str(task.version),
                      "present" if availability.ok else "[yellow]absent[/yellow]")
    stdout.print(tasks)

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
