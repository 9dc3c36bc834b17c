"""How the app writes numbers: parameters as 86M / 1.1B, fixed column widths, the About text."""

from __future__ import annotations

import math
import re
from importlib.resources import files

from harness.errors import printable

LEAD_WIDTHS = (40, 130, 230, 70)  # px of the overview's first columns: #, rank, model, mean
TASK_WIDTHS = (230, 80, 90)  # px of the per-task table's model, status, score
MISSING = "—"  # what a table shows for a value that is not there (a task not scored, a CI not computed)


def parameters_label(count) -> str:
    """86_000_000 -> '86M', 1_130_000_000 -> '1.1B', 5_500 -> '5.5K'; None or NaN -> '—'."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return "—"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(int(count))


def show_texts(styled, column: str, texts: list[str]):
    """`styled` (a pandas Styler) with each cell of `column` showing texts[row], its number kept as the
    cell's value (so the column still sorts as numbers). One Styler.format call for the cells whose
    value no other row shares with another text, and one per text for the rest: a call per cell was
    most of the 50 s the page took for 1,000 models x 15 tasks (benchmarks/board_scale.py --app)."""
    import pandas as pd

    def key(value):
        return "missing" if pd.isna(value) else value

    rows_by: dict = {}  # value -> text -> rows
    for row, value, text in zip(styled.data.index, styled.data[column], texts):
        rows_by.setdefault(key(value), {}).setdefault(text, []).append(row)
    single = {value: next(iter(by_text)) for value, by_text in rows_by.items() if len(by_text) == 1}
    rows = [row for value, text in single.items() for row in rows_by[value][text]]
    if rows:
        styled = styled.format(lambda value: single[key(value)], subset=pd.IndexSlice[rows, [column]])
    for by_text in (by_text for by_text in rows_by.values() if len(by_text) > 1):
        for text, rows in by_text.items():
            styled = styled.format(lambda _, text=text: text, subset=pd.IndexSlice[rows, [column]])
    return styled


def protocol_markdown() -> str:
    """The About tab: protocols, how to submit, how to cite (leaderboard/about.md, shipped in the package)."""
    return files("harness.leaderboard").joinpath("about.md").read_text(encoding="utf-8")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$=])")


def plain(text) -> str:
    """Data (a model, task or file name from a result file) as literal text inside the app's
    markdown: every markdown character escaped, so that a name never renders as a link, an image,
    emphasis, HTML or maths; a colon is followed by an invisible joiner so that ':name:' is no
    emoji code and ':red[...]' no colour. A file name that is not UTF-8 (Python holds its bytes as
    lone surrogates, which the page cannot send: the board stopped) shows them as \\udcff escapes."""
    return _MARKDOWN.sub(r"\\\1", printable(text)).replace(":", ":\u2060")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(frame) -> bytes:
    """A table as CSV (UTF-8): its numbers, not the display text. A text cell that a spreadsheet
    would run as a formula (it starts with = + - @, a tab or a carriage return: a model name from a
    result file is untrusted) is written with a leading apostrophe, as OWASP advises."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or str(safe[column].dtype).startswith(("str", "string")):
            safe[column] = safe[column].map(
                lambda v: f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return safe.to_csv(index=False).encode("utf-8")
