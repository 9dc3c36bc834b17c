"""The leaderboard app (Streamlit). Reads only result files: `harness leaderboard --results DIR`,
or a results dataset on the Hub: `harness leaderboard --hub ORG/REPO`.

Run directly: HARNESS_RESULTS=results streamlit run leaderboard/app.py
(or HARNESS_HUB_REPO=org/repo).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from leaderboard.aggregate import (build_leaderboard, load_distillation_reports, load_results, matryoshka_curves,
                                   retention_rows, robustness_tables)

HUB_REPO = os.environ.get("HARNESS_HUB_REPO")  # a results dataset on the Hub (harness push --repo)

st.set_page_config(page_title="Pathology FM leaderboard", layout="wide")
st.title("Pathology foundation-model leaderboard")


@st.cache_resource(ttl=600, show_spinner="Fetching results from the Hub")
def pulled(repo: str) -> Path:
    """The Hub dataset's result files in a local folder (refreshed every 10 minutes)."""
    import tempfile

    from leaderboard.hub_results import pull_results

    folder = Path(tempfile.mkdtemp(prefix="harness-results-"))
    pull_results(repo, folder)
    return folder


if HUB_REPO:
    try:
        RESULTS = pulled(HUB_REPO)
    except Exception as error:  # noqa: BLE001 - shown in the page
        st.error(f"Cannot read the results of {HUB_REPO}: {error}")
        st.stop()
    st.caption(f"Results: Hugging Face dataset `{HUB_REPO}`")
else:
    RESULTS = Path(os.environ.get("HARNESS_RESULTS", "results"))

results, warnings = load_results(RESULTS) if RESULTS.is_dir() else ([], [])
for warning in warnings:
    st.warning(warning)
if not results:
    st.info(f"No results in `{RESULTS}` yet. Score a model first, for example: "
            "`harness run --model synth-oracle --model random-noise --tasks all`, "
            f"then `harness leaderboard --results {RESULTS}`.")
    st.stop()

# --- filters -----------------------------------------------------------------------------
families = sorted({r.family for _, r in results})
chosen_families = st.sidebar.multiselect("Families", families, default=families)
tasks = sorted({r.task for _, r in results if r.family in chosen_families})
chosen_tasks = st.sidebar.multiselect("Tasks", tasks, default=tasks)
sizes = {slug: r.model.n_parameters or 0 for slug, r in results}
largest_m = max(1, int(max(sizes.values()) / 1e6 + 1))
max_params_m = st.sidebar.slider("Largest model shown (M parameters)", 0, largest_m, largest_m)

shown = [(slug, r) for slug, r in results
         if r.task in chosen_tasks and sizes[slug] <= max_params_m * 1e6]
if not shown:
    st.info("No result matches these filters.")
    st.stop()
board = build_leaderboard(shown)

# --- overview ----------------------------------------------------------------------------
common = board.common_tasks
st.caption(
    f"Ranks and means use only the tasks that every model shown has scored ({len(common)} of "
    f"{len(board.tasks)}: {', '.join(common) or 'none'}). Means use tasks whose main score is in "
    "[0, 1]; CIDEr-D enters ranks only. A cell that is not a number says why it is missing."
)
overview = pd.DataFrame(board.overview())
overview = overview.drop(columns=[c for c in overview if c.startswith("mean:") and overview[c].isna().all()])
st.subheader("Overview")
st.dataframe(overview, hide_index=True, use_container_width=True)

# --- per task ----------------------------------------------------------------------------
st.subheader("Per task")
task = st.selectbox("Task", board.tasks)
rows = []
for model in board.models:
    cell = board.cells[(model, task)]
    low, high = cell.ci95 if cell.ci95 else (None, None)
    rows.append({"model": board.model_info[model]["name"], "status": cell.status, "score": cell.value,
                 "ci95 low": low, "ci95 high": high, "reason": cell.reason or ""})
st.caption(f"main score: {board.main_scores[task]} (mean over seeds, bootstrap 95% CI on test)")
st.dataframe(pd.DataFrame(rows).sort_values("score", ascending=False), hide_index=True, use_container_width=True)

# --- score vs cost -----------------------------------------------------------------------
st.subheader("Score against size and speed")
scatter = overview.dropna(subset=["mean"])
if scatter.empty:
    st.info("No common bounded task to plot: widen the filters.")
else:
    left, right = st.columns(2)
    left.scatter_chart(scatter, x="parameters", y="mean", color="model")
    right.scatter_chart(scatter.dropna(subset=["items_per_s"]), x="items_per_s", y="mean", color="model")

# --- robustness ----------------------------------------------------------------------------
tables = robustness_tables(shown)
if tables:
    st.subheader("Robustness")
    st.caption("Stain/scanner robustness (plismbench): medians over slide pairs; plism_score = mean of cosine "
               "(all) and top-10 inter-scanner, inter-staining and both. cross_domain_drop: balanced accuracy "
               "lost when the probe trained on one domain is tested on the others. Transform invariance: "
               "cosine between clean and perturbed embeddings of the same tile.")
    for robustness_task, rows in tables.items():
        st.markdown(f"**{robustness_task}**")
        st.dataframe(pd.DataFrame(rows).dropna(axis=1, how="all"), hide_index=True, use_container_width=True)

# --- students and teachers -----------------------------------------------------------------
reports, report_warnings = load_distillation_reports(RESULTS)
for warning in report_warnings:
    st.warning(warning)
if reports:
    st.subheader("Students and their teachers")
    st.caption("retention = student score / teacher score x 100 on the same task and run; parameters are the "
               "backbones'; throughput is embedding items/s on the machine that scored them.")
    for report in reports:
        st.markdown(f"**{report['student']}** ({report.get('method')})")
        st.dataframe(pd.DataFrame(retention_rows(report)), hide_index=True, use_container_width=True)
        if report.get("fidelity"):
            st.caption("fidelity on held-out tiles: " + "; ".join(
                f"{teacher}: 1 - mean cos {v['one_minus_mean_cosine']:.3f}, Var/MSE {v['variance_over_mse']:.2f}"
                for teacher, v in report["fidelity"].items()))

# --- Matryoshka ------------------------------------------------------------------------------
curves = pd.DataFrame(matryoshka_curves(shown))
if not curves.empty:
    st.subheader("Score against embedding dim (Matryoshka)")
    for (model_name, curve_task), curve in curves.groupby(["model", "task"]):
        st.markdown(f"**{model_name}** on {curve_task}")
        st.line_chart(curve, x="dim", y="score")
