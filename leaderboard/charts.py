"""The leaderboard's plots (Altair): tables in, chart specifications out, no Streamlit.

Every chart is built from a plain DataFrame so it can be checked without a browser: the tests
read the Vega-Lite spec (`chart.to_dict()`) and the frontier computed here.
"""

from __future__ import annotations

import altair as alt
import pandas as pd


def pareto_frontier(frame: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """Rows no other row beats on both axes (lower cost, higher score), in order of cost."""
    ordered = frame.dropna(subset=[cost, score]).sort_values([cost, score], ascending=[True, False])
    best, keep = float("-inf"), []
    for index, row in ordered.iterrows():
        if row[score] > best:
            keep.append(index)
            best = row[score]
    return ordered.loc[keep]


def score_against_cost(frame: pd.DataFrame, cost: str, cost_title: str, score: str = "mean",
                       score_title: str = "mean main score") -> alt.LayerChart:
    """Each model a labelled point on a log cost axis, with the Pareto frontier as a step line.
    For throughput (higher is better) pass the cost as seconds per item or similar."""
    data = frame.dropna(subset=[cost, score])[["model", cost, score]]
    x = alt.X(f"{cost}:Q", scale=alt.Scale(type="log"), title=cost_title)
    y = alt.Y(f"{score}:Q", title=score_title, scale=alt.Scale(zero=False), axis=alt.Axis(format=".2f"))
    points = alt.Chart(data).mark_circle(size=90).encode(
        x=x, y=y, color=alt.Color("model:N", legend=None),
        tooltip=["model", alt.Tooltip(f"{cost}:Q", format=",.3~g"), alt.Tooltip(f"{score}:Q", format=".3f")])
    labels = alt.Chart(data).mark_text(align="left", dx=7, dy=-7, fontSize=11).encode(x=x, y=y, text="model:N")
    frontier = alt.Chart(pareto_frontier(data, cost, score)).mark_line(
        interpolate="step-after", strokeDash=[4, 3], color="gray").encode(x=x, y=y)
    return (frontier + points + labels).properties(height=340)


def task_bars(frame: pd.DataFrame, score_title: str, higher_is_better: bool = True) -> alt.LayerChart:
    """One bar per model with its 95% CI as an error bar (columns model, score, ci95 low/high), the
    best at the top: the highest score, or the lowest where lower is better."""
    data = frame.dropna(subset=["score"])
    y = alt.Y("model:N", sort="-x" if higher_is_better else "x", title=None, axis=alt.Axis(labelLimit=320))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("score:Q", title=score_title), y=y,
        tooltip=["model", alt.Tooltip("score:Q", format=".4f"), alt.Tooltip("ci95 low:Q", format=".4f"),
                 alt.Tooltip("ci95 high:Q", format=".4f")])
    errors = alt.Chart(data.dropna(subset=["ci95 low", "ci95 high"])).mark_errorbar(ticks=True).encode(
        x=alt.X("ci95 low:Q", title=score_title), x2="ci95 high:Q", y=y)
    return (bars + errors).properties(height=_rows_height(len(data)))


def rank_intervals(frame: pd.DataFrame) -> alt.LayerChart:
    """Average rank with its bootstrap 95% interval per model (columns model, rank, low, high)."""
    y = alt.Y("model:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None,
              axis=alt.Axis(labelLimit=320))
    title = "average rank (1 = best), 95% bootstrap interval"
    x = alt.X("rank:Q", title=title, scale=alt.Scale(zero=False))
    rules = alt.Chart(frame).mark_rule(strokeWidth=3).encode(x=alt.X("low:Q", title=title), x2="high:Q", y=y)
    points = alt.Chart(frame).mark_point(filled=True, size=80).encode(
        x=x, y=y, tooltip=["model", alt.Tooltip("rank:Q", format=".2f"), alt.Tooltip("low:Q", format=".2f"),
                           alt.Tooltip("high:Q", format=".2f")])
    return (rules + points).properties(height=_rows_height(len(frame)))


def _rows_height(rows: int) -> int:
    """Streamlit fits the whole chart, axes included, into the height: room for the axis + a band per row."""
    return 80 + 34 * max(rows, 1)


def grouped_bars(frame: pd.DataFrame, group: str, value: str, value_title: str) -> alt.Chart:
    """plismbench-style panel: one bar per model within each group (e.g. the four score parts),
    groups in the order they first appear in the frame."""
    order = list(dict.fromkeys(frame[group]))
    return alt.Chart(frame.dropna(subset=[value])).mark_bar().encode(
        x=alt.X("model:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y(f"{value}:Q", title=value_title),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
        column=alt.Column(f"{group}:N", title=None, sort=order, header=alt.Header(labelOrient="bottom")),
        tooltip=["model", group, alt.Tooltip(f"{value}:Q", format=".3f")],
    ).properties(width=110, height=220)


def dims_curves(frame: pd.DataFrame) -> alt.Chart:
    """Matryoshka: score against the number of embedding dims kept (log axis), a line per model."""
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("dim:Q", scale=alt.Scale(type="log", base=2), title="embedding dims kept"),
        y=alt.Y("score:Q", title="main score", scale=alt.Scale(zero=False)),
        color="model:N", tooltip=["model", "task", "dim", alt.Tooltip("score:Q", format=".3f")],
    ).properties(height=260)


def loss_curves(frame: pd.DataFrame) -> alt.Chart:
    """A student's distillation loss against the training step, a line per curve (training, held-out);
    a log loss axis where every loss is positive, so that the tail, where a curve flattens or does
    not, is as readable as the first drop."""
    log = bool((frame["loss"] > 0).all())
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("loss:Q", title="loss (log axis)" if log else "loss",
                scale=alt.Scale(type="log", nice=False) if log else alt.Scale(zero=False)),  # the data's span
        color=alt.Color("curve:N", legend=alt.Legend(orient="bottom")),
        tooltip=["curve", "step", alt.Tooltip("loss:Q", format=".4f")],
    ).properties(height=240)


def reliability_diagram(frame: pd.DataFrame) -> alt.LayerChart:
    """Accuracy against mean confidence per confidence bin, a line per model, the diagonal where a
    calibrated probe lies (below it: overconfident)."""
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})).mark_line(
        strokeDash=[4, 4], color="gray").encode(x="x:Q", y="y:Q")
    lines = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("confidence:Q", title="mean confidence of the bin", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("accuracy:Q", title="accuracy in the bin", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
        tooltip=["model", alt.Tooltip("confidence:Q", format=".3f"), alt.Tooltip("accuracy:Q", format=".3f"),
                 "items"])
    return (diagonal + lines).properties(height=300)


def few_shot_curves(frame: pd.DataFrame) -> alt.LayerChart:
    """Balanced accuracy against images per class (log axis), a line per model, the 2.5-97.5
    percentiles over support draws as a band."""
    base = alt.Chart(frame).encode(
        x=alt.X("shots:Q", scale=alt.Scale(type="log", base=2), title="training images per class (k)"))
    # stack=None: each model's band spans its own low..high (areas stack by default, which piled
    # the bands on top of each other and stretched the axis)
    band = base.mark_area(opacity=0.15).encode(y=alt.Y("low:Q", stack=None), y2="high:Q",
                                                color=alt.Color("model:N", legend=None))
    lines = base.mark_line(point=True).encode(
        y=alt.Y("score:Q", title="balanced accuracy", scale=alt.Scale(zero=False)),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
        tooltip=["model", "shots", alt.Tooltip("score:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f"),
                 alt.Tooltip("high:Q", format=".3f")])
    return (band + lines).properties(height=280)


def family_small_multiples(frame: pd.DataFrame) -> alt.FacetChart:
    """One small panel per family: each model's mean main score over that family's tasks (columns
    model, family, mean), models in the same order in every panel, so a profile reads across."""
    data = frame.dropna(subset=["mean"])
    order = list(dict.fromkeys(data["model"]))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("mean:Q", title="mean main score"),  # one x scale shared by the panels
        y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=200)),
        color=alt.Color("model:N", sort=order, legend=None),
        tooltip=["family", "model", alt.Tooltip("mean:Q", format=".3f")])
    return bars.properties(width=200, height=_rows_height(len(order)) // 2 + 20).facet(
        facet=alt.Facet("family:N", title=None, header=alt.Header(labelFontWeight="bold")), columns=4)
