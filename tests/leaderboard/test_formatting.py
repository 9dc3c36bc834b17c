"""How the app's tables show a cell's text over its number (leaderboard/formatting.py)."""

import numpy as np
import pandas as pd

from harness.leaderboard.formatting import show_texts


def test_each_cell_shows_its_own_text_whatever_values_it_shares():
    """A column's cells keep their numbers and show their labels: equal values with different labels
    (two models at 0.5 with other CIs), equal values with equal labels, and missing values each with
    its own reason, as a Styler.format call per cell showed them (the app made one per cell: 18 s at
    1,000 models)."""
    values = [0.5, 0.5, 0.7, np.nan, np.nan, 0.9, 0.9]
    texts = ["0.500 [0.4, 0.6]", "0.500 [0.3, 0.7]", "0.700", "failed: disk full", "missing: not run",
             "0.900 ⚠ TCGA", "0.900 ⚠ TCGA"]
    frame = pd.DataFrame({"score": values, "other": range(7)})
    per_cell = frame.style.format(precision=3)
    for row, text in enumerate(texts):
        per_cell = per_cell.format(lambda _, text=text: text, subset=pd.IndexSlice[[row], ["score"]])
    grouped = show_texts(frame.style.format(precision=3), "score", texts)

    def shown(styler) -> list[str]:  # the score column as the table renders it
        return [line.split("|")[1] for line in styler.to_string(delimiter="|").splitlines()[1:]]

    assert shown(grouped) == shown(per_cell) == texts
    assert grouped.data["score"].equals(frame["score"])  # the numbers stay, so the column sorts as numbers
