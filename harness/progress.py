"""Progress bars for long work (rich), quiet when stderr is not a terminal unless asked."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.terminal import console


@contextmanager
def progress_bar(description: str, total: int, unit: str = "items") -> Iterator[Callable[[int], None]]:
    """Yield advance(n). Rendered live on a terminal; in logs, a line at start and end. The
    description is text (it holds model and dataset names), never markup; `unit` names what is
    counted in the log's line ("60 steps", not "60 items", for a training loop)."""
    description = escape(description)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        if not console.is_terminal:
            console.print(f"{description}: {total} {unit} ...")
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
