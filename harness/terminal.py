"""Where the harness prints: messages and progress go to stderr (`console`), result tables to
stdout (`stdout`), so that `harness run ... > table.txt` keeps the tables apart from the log.
Every module prints through these two."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # never fold a message line
stdout = Console() if Console().is_terminal else Console(width=160)  # logs and pipes: no fold at 80 columns
