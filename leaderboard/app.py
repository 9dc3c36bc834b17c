"""The leaderboard app (Streamlit). Reads only result files: `harness leaderboard --results DIR`,
or a results dataset on the Hub: `harness leaderboard --hub ORG/REPO`.

Run directly: HARNESS_RESULTS=results streamlit run leaderboard/app.py (or HARNESS_HUB_REPO=org/repo).
The queue tab reads HARNESS_REQUESTS_REPO (a Hub requests dataset) or HARNESS_REQUESTS (a folder);
HARNESS_SUBMISSIONS (on, or limits) adds a submission form that files requests in the Hub dataset
with this process's token (harness/submission_service.py).
HARNESS_BOARD_TASKS ('task,task,...') declares the board's tasks: only models with a valid score
on every one are ranked (`harness leaderboard --tasks`, `harness push --space --tasks`).

Tabs: Leaderboard (scores first), Per task, Size and speed, Robustness, Students, Queue, About.
Imports nothing heavy (no torch): the Space installs only what this file needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

try:  # the registered families describe their metrics; a result file does not get to (aggregate.py)
    from harness.tasks import FAMILIES
except ImportError:  # an app installed without the task families: the task's files must agree
    FAMILIES = {}
try:  # tasks.yaml: what each registered task is (no result file gets to redefine it), and the suites
    from harness.registry import load_registry  # that rerun a published table, for their aggregates

    _REGISTRY = load_registry([], families=FAMILIES or None)
    SUITES = _REGISTRY.suite_specs
    REGISTERED = {name: (task.family, task.main_score, task.params, task.version)
                  for name, task in _REGISTRY.tasks.items()}
except Exception:  # noqa: BLE001 - the board works without them
    SUITES, REGISTERED = {}, {}

from harness import __version__
from harness.submissions import HUB_ID
from harness.leaderboard import charts
from harness.leaderboard.aggregate import (build_leaderboard, declared_family, folders_by_name, lineage_order,
                                           load_results, parse_board_tasks, split_copies_by_task, stale_check,
                                           suite_rows)
from harness.leaderboard.family_tables import few_shot_rows, group_tables, reliability_rows
from harness.leaderboard.student_tables import (is_truncated, load_distillation_reports, matryoshka_curves,
                                                retention_rows, student_name, training_curves)
from harness.leaderboard.head_to_head import MAX_MODELS, head_to_head
from harness.leaderboard.formatting import (LEAD_WIDTHS, MISSING, TASK_WIDTHS, csv_text, parameters_label, plain,
                                   protocol_markdown, show_texts)

HUB_REPO = os.environ.get("HARNESS_HUB_REPO")  # a results dataset on the Hub (harness push --repo)
REQUESTS_REPO = os.environ.get("HARNESS_REQUESTS_REPO")  # a requests dataset on the Hub (harness submit hf-hub:...)
REQUESTS_DIR = os.environ.get("HARNESS_REQUESTS")  # or a local requests folder (harness submit PATH)
METADATA = ["borda_rank", "coverage", "parameters", "embed_dim", "items_per_s", "weights", "teachers", "no_overlap",
            "licence", "hub_id", "revision", "date"]
DEFAULT_METADATA = ["coverage", "parameters", "embed_dim", "items_per_s", "weights", "teachers", "no_overlap"]
MAX_TIED_PAIRS = 200  # pairs listed as "cannot be told apart" (a board of thousands of models has millions)

st.set_page_config(page_title="Pathology FM leaderboard", layout="wide")
st.title("Pathology foundation-model leaderboard")


@st.cache_resource(ttl=600, show_spinner="Fetching results from the Hub")
def pulled(repo: str, tasks: tuple[str, ...] | None) -> tuple[Path, str, str]:
    """The Hub dataset's result files (of `tasks`, the board's declared tasks, if given) in a local
    folder (refreshed every 10 minutes), the commit they were read at and when (UTC)."""
    from harness.hub_access import hub_api, hub_call
    from harness.sources.base import default_cache_dir
    from harness.timestamps import utc_timestamp
    from harness.leaderboard.hub_results import pull_at_commit

    from harness.errors import HarnessError
    from harness.hub_access import is_commit

    commit = hub_call("reading results", repo, lambda: hub_api().repo_info(repo, repo_type="dataset").sha)
    if not isinstance(commit, str) or not is_commit(commit):  # shown in a link: only a commit id
        raise HarnessError("the Hub named no commit for the results dataset")
    # one copy per commit, the two newest kept, in this user's cache (a shared temporary folder would let
    # another user plant a commit's copy); what the pull left out is listed in the copy (LEFT_OUT)
    folder = pull_at_commit(repo, commit, default_cache_dir() / "board", tasks=set(tasks) if tasks else None)
    return folder, commit, utc_timestamp()


@st.cache_resource(ttl=600, max_entries=4, show_spinner="Reading the results")
def parsed(folder: str, version: str) -> tuple[list, list[str]]:
    """The result files of `folder` as they were at `version` (a pulled commit, or a local folder's
    files_version), read and checked once: every click on the page runs this script again, and
    60,000 files take about 6 s to read (benchmarks/board_scale.py)."""
    return load_results(Path(folder))


def files_version(folder: Path) -> str:
    """A digest of the name, size and modification time of every result file in a local folder: it
    changes when a run writes, rewrites or removes one, so that the board shows it at the next click."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.glob("*/*.json")):
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        line = f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))  # a name that is not UTF-8 is still a name
    return digest.hexdigest()


def csv_download(frame: pd.DataFrame, name: str) -> None:
    """A button that downloads the table as CSV (its numbers, as the table holds them)."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "table"
    st.download_button("Download CSV", csv_text(frame), file_name=f"{safe}.csv", mime="text/csv", key=f"csv-{safe}",
                       help=f"{safe}.csv: this table's values")


@st.cache_data(ttl=120, show_spinner="Reading the submission queue")
def queue_rows(repo: str | None, folder: str | None) -> list[dict]:
    from harness.submissions import queue_table

    return queue_table(repo, folder)


def queue_section() -> None:
    """The submission queue, and how to submit: the board's own form where HARNESS_SUBMISSIONS turns it on
    (the Space files the request with its token), else the command that files one."""
    if not (REQUESTS_REPO or REQUESTS_DIR):
        st.info("No submission queue is configured for this board (HARNESS_REQUESTS_REPO or HARNESS_REQUESTS).")
        return
    try:
        queue = queue_rows(REQUESTS_REPO, REQUESTS_DIR)
    except Exception as error:  # noqa: BLE001 - shown in the page
        st.error(f"Cannot read the queue: {plain(error)}")
        queue = None
    if queue is not None:
        source = f"Hub dataset `{REQUESTS_REPO}`" if REQUESTS_REPO else f"`{REQUESTS_DIR}`"
        counts = pd.Series([r["status"] for r in queue]).value_counts().to_dict() if queue else {}
        st.caption(f"Requests in {source}: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "none yet"))
        if queue:
            st.dataframe(pd.DataFrame(queue), hide_index=True, placeholder=MISSING, width="stretch")
    if REQUESTS_REPO and SUBMISSIONS is not None:
        submission_form(SUBMISSIONS)
        return
    st.markdown(
        "**Submit a model**: put `model.safetensors` and a `card.yaml` in a Hub model repository, then\n\n"
        "```bash\nharness submit hf-hub:ORG/MODEL --revision main --requests-repo "
        f"{REQUESTS_REPO or 'ORG/REQUESTS'} --tasks all\n```\n"
        "The request pins the revision to its commit; a backend (`harness queue run`) scores it and pushes the "
        "results here.")


def submission_form(limits) -> None:
    """The board's submission form: the Space checks the model and files the request with its own token."""
    from harness.errors import HarnessError

    tasks = ",".join(BOARD_TASKS) if BOARD_TASKS else "all"
    st.subheader("Submit a model")
    st.markdown(
        "Put `model.safetensors` and a `card.yaml` in a public Hub model repository, then name it here. The board "
        "scores the commit the branch or tag points to now (pull requests are not scored), on "
        + (f"its {len(BOARD_TASKS)} declared tasks" if BOARD_TASKS else "every task")
        + f". At most {limits.per_namespace} requests per organisation or user in {limits.period_days:g} days.")
    filed = st.session_state.pop("filed", None)  # the last submission's outcome, shown after the queue is re-read
    with st.form("submit-model"):
        model = st.text_input("Model repository", max_chars=200, placeholder="my-lab/my-fm")
        revision = st.text_input("Branch or tag", value="main", max_chars=200)
        sent = st.form_submit_button("Submit")
    if filed:
        st.success(filed)
    if not sent:
        return
    from harness.hub_queue import HubRequestStore
    from harness.submission_service import submit_through_service

    asked = f"submission {ascii(model[:200])} @ {ascii(revision[:200])}"  # for the server log: one line, escaped
    try:
        with st.spinner("Checking the model on the Hub"):
            request = submit_through_service(model, revision, HubRequestStore(REQUESTS_REPO), tasks, limits)
    except HarnessError as error:
        reason = str(error).splitlines()[0][:500]
        print(f"{asked}: refused: {ascii(reason)}", flush=True)
        st.error(f"Not filed: {plain(reason)}")
        return
    except Exception as error:  # noqa: BLE001 - a submission never stops the board; the server log has the rest
        import traceback

        print(f"{asked}: check failed\n{traceback.format_exc()}", flush=True)
        st.error(f"Not filed: the check failed ({type(error).__name__}); try again later")
        return
    print(f"{asked}: filed {request.id} (PENDING)", flush=True)
    st.session_state["filed"] = (f"Filed {plain(request.hub_id)} at commit `{request.commit_sha[:12]}` "
                                 f"({plain(request.revision)}) as `{request.id}`: PENDING. Its results appear "
                                 "here once the backend has scored it.")
    queue_rows.clear()
    st.rerun()  # the queue above is read again, with the new request in it


def load() -> tuple[Path, str, list, list[str]]:
    """(the results folder, the version of its files read, the results, warnings)."""
    left_out: list[str] = []
    if HUB_REPO:
        try:
            folder, commit, read_at = pulled(HUB_REPO, tuple(BOARD_TASKS) if BOARD_TASKS else None)
        except Exception as error:  # noqa: BLE001 - shown in the page
            st.error(f"Cannot read the results of {plain(HUB_REPO)}: {plain(error)}")
            st.stop()
        from harness.leaderboard.hub_results import LEFT_OUT

        try:
            left_out = (folder / LEFT_OUT).read_text(encoding="utf-8").splitlines()
        except OSError:
            pass
        st.caption(f"Results: Hugging Face dataset [{HUB_REPO}](https://huggingface.co/datasets/{HUB_REPO}) at commit "
                   f"[`{commit[:12]}`](https://huggingface.co/datasets/{HUB_REPO}/tree/{commit}), read {read_at} "
                   f"(re-read every 10 minutes) · pathology-harness {__version__}")
    else:
        folder = Path(os.environ.get("HARNESS_RESULTS") or "results")
        st.caption(f"Results: `{folder}` · pathology-harness {__version__}")
    version = commit if HUB_REPO else files_version(folder) if folder.is_dir() else ""
    results, warnings = parsed(str(folder), version) if version else ([], [])
    if len(left_out) > 20:
        left_out = [*left_out[:20], f"... and {len(left_out) - 20:,} more files left out of the pull"]
    return folder, version, results, left_out + warnings


@st.cache_resource(ttl=600, max_entries=4, show_spinner="Ranking")  # ~215 MB each at 4,000 models x 15 tasks
def board_view(folder: str, version: str, filters: tuple, board_tasks: tuple[str, ...] | None, _shown: list):
    """The board of the results `_shown` (those of `folder` at `version` that pass `filters`: not
    hashed, they follow from the others) with what the page draws from it: (board, its valid
    results, overview rows, cell labels, rank uncertainty). Built once per version and filters: a
    click that changes neither (a tab, a task picked in Per task, two models in Head to head) runs
    the script again, and at 4,000 models the ranking alone took seconds (benchmarks/board_scale.py)."""
    board = build_leaderboard(_shown, families=FAMILIES, board_tasks=None if board_tasks is None else list(board_tasks),
                              registered=REGISTERED)
    return board, board.valid(_shown), board.overview(), board.cell_labels(), board.rank_uncertainty()


try:
    BOARD_TASKS = parse_board_tasks(os.environ.get("HARNESS_BOARD_TASKS"))
except ValueError as error:
    st.error(plain(error))
    st.stop()
try:  # the submission form's limits (HARNESS_SUBMISSIONS; None: no form)
    from harness.submission_service import LIMITS_ENV, limits_from_env

    SUBMISSIONS = limits_from_env(os.environ.get(LIMITS_ENV))
except Exception as error:  # noqa: BLE001 - a bad setting turns the form off, not the board
    st.error(f"The submission form is off: {plain(error)}")
    SUBMISSIONS = None
RESULTS, VERSION, results, warnings = load()
for warning in warnings:
    st.warning(plain(warning))
if BOARD_TASKS is not None:  # a board's other tasks are not shown (nor offered in the filters)
    results = [(slug, r) for slug, r in results if r.task in BOARD_TASKS]
if not results and HUB_REPO:  # a public board: what a visitor can do, not what its operator would run
    st.info(f"No results in {plain(HUB_REPO)} yet" + (": submit a model below." if REQUESTS_REPO and SUBMISSIONS
                                                     else "."))
elif not results:
    st.info(f"No results in `{RESULTS}` yet. Score a model first, for example: "
            "`harness run --model synth-oracle --model random-noise --tasks all`, "
            f"then `harness leaderboard --results {RESULTS}`.")
if not results:
    queue_section()  # a new board takes submissions before it has results
    st.stop()

# --- filters (sidebar) ----------------------------------------------------------------------
search = st.sidebar.text_input("Search models", placeholder="name contains…")
result_family = {id(r): declared_family(r, REGISTERED) for _, r in results}  # a registered task's: tasks.yaml's
families = sorted(set(result_family.values()))
family_titles = {result_family[id(r)]: (FAMILIES[result_family[id(r)]].title if result_family[id(r)] in FAMILIES
                                        else r.family_title) or result_family[id(r)].replace("_", " ")
                 for _, r in results}
chosen_families = st.sidebar.multiselect("Families", families, default=families,
                                         format_func=lambda f: family_titles.get(f, f))
sizes: dict[str, int] = {}
for slug, result in results:  # a skipped result records no size: take the largest any result gives
    sizes[slug] = max(sizes.get(slug, 0), result.model.n_parameters or 0)
largest_m = max(1, int(max(sizes.values()) / 1e6 + 1))
max_params_m = st.sidebar.slider("Largest model shown (M parameters)", 0, largest_m, largest_m)
metadata_columns = st.sidebar.multiselect("Model columns", METADATA, default=DEFAULT_METADATA)
show_tasks = st.sidebar.toggle("One column per task", value=True)
show_truncated = st.sidebar.toggle("Truncated embeddings (name@Nd) as models", value=False,
                                   help="Matryoshka students scored at fewer dims (`harness run --dims`); their "
                                        "curves are in the Students tab")
beside_teachers = st.sidebar.toggle(
    "Students under their teachers", value=False,
    help="Place each distilled student right under its teacher (from its card's lineage) with its retention: "
         "its mean as a % of the teacher's on the common tasks. Ranks are unchanged.")
no_overlap_only = st.sidebar.toggle(
    "No training-data overlap only", value=False,
    help="Keep only results whose test images come from none of the collections the model's card declares as "
         "training data (e.g. a TCGA-pretrained model on a TCGA task is dropped), and ranks recomputed. A result "
         "where either side is undeclared is dropped too: its overlap is unknown.")

shown = [(slug, r) for slug, r in results
         if result_family[id(r)] in chosen_families and sizes[slug] <= max_params_m * 1e6
         and search.strip().lower() in r.model.name.lower()
         and (show_truncated or not is_truncated(r.model.name))
         and (not no_overlap_only or r.training_overlap == [])]
if not shown:
    st.info("No result matches these filters.")
    st.stop()
task_families = {r.task: result_family[id(r)] for _, r in results}
# a declared task stays required unless its family is filtered out (one with no result yet stays required)
board_tasks = None if BOARD_TASKS is None else [
    t for t in BOARD_TASKS if t not in task_families or task_families[t] in chosen_families]
filters = (tuple(chosen_families), max_params_m, search.strip().lower(), show_truncated, no_overlap_only)
# valid_shown: the panels beside the table show no more than the table ranks
board, valid_shown, overview_rows, cell_labels, uncertainty = board_view(
    str(RESULTS), VERSION, filters, None if board_tasks is None else tuple(board_tasks), shown)
for warning in board.warnings:
    st.warning(plain(warning))
overview = pd.DataFrame(overview_rows)
labels = pd.DataFrame(cell_labels, columns=board.tasks)
if beside_teachers:  # lineage view: rows regrouped under teachers, each student with its retention
    ranked = board.ranked_models()
    order, retention = lineage_order([board.model_info[m]["name"] for m in ranked],
                                     [board.model_info[m]["teacher_names"] for m in ranked],
                                     [None if pd.isna(v) else float(v) for v in overview["mean"]])
    overview = overview.iloc[order].reset_index(drop=True)
    labels = labels.iloc[order].reset_index(drop=True)
    overview.insert(overview.columns.get_loc("model") + 1, "retention", retention)

tabs = st.tabs(["Leaderboard", "Per task", "Head to head", "Size and speed", "Robustness", "Students", "Queue", "About"])

# --- leaderboard: scores first --------------------------------------------------------------
with tabs[0]:
    common = board.common_tasks
    unranked = [f"{board.model_info[m]['name']} ({board.unranked_reason(m)})"
                for m in board.models if m not in board.compared_models]
    over = (f"the board's {len(board_tasks)} declared tasks ({plain(', '.join(board_tasks))}), which every ranked "
            "model has scored" if board_tasks is not None else
            f"the {len(common)} of {len(board.tasks)} tasks that every ranked model has scored "
            f"({plain(', '.join(common)) or 'none'})")
    inverted = [t for t in board.mean_tasks() if not board.higher_is_better(t)]  # errors: 1 - score in a mean
    st.caption(
        f"Models by average rank over {over}, each ranked in the direction its family declares. "
        + (f"Not ranked, listed last: {plain('; '.join(unranked)[:2000])} (the Per task tab says why). "
           if unranked else "")
        + "`mean` "
        f"averages those whose main score is bounded ({plain(', '.join(board.mean_tasks())) or 'none'})"
        + (f", a lower-is-better one as low + high - score (1 - score in [0, 1]: {plain(', '.join(inverted))})"
           if inverted else "")
        + f"; unbounded scores enter ranks only. A task cell shows its main score with the bootstrap 95% CI; {MISSING} marks a "
        "task the model has not scored (the Per task tab says why); ⚠ marks a score whose test images come from "
        "a collection the model's card declares as training data (the sidebar can leave those out). The rank shows "
        "its bootstrap 95% interval. Click a column header to sort."
        + (" Rows are grouped by lineage: each distilled student sits under its teacher, with its retention "
           "(its mean as a % of the teacher's); the rank column still ranks them all." if beside_teachers else "")
    )
    family_means = [c for c in overview if c.startswith("mean:") and overview[c].notna().any()]
    columns = ["average_rank", "model", *(["retention"] if beside_teachers else []), "mean", *family_means,
               *(board.tasks if show_tasks else []),
               *metadata_columns]
    table = overview[columns].copy()
    table.insert(0, "#", range(1, len(table) + 1))
    if "hub_id" in table:
        table["hub_id"] = table["hub_id"].map(  # a link only to a repository id, whatever a file says
            lambda hub_id: f"https://huggingface.co/{hub_id}" if hub_id and HUB_ID.fullmatch(hub_id) else None)
    # cells keep their numbers (so columns sort as numbers); what they show is set per cell
    styled = table.style.format(na_rep=MISSING, precision=3)
    for task in board.tasks if show_tasks else []:
        styled = show_texts(styled, task, labels[task].tolist())
    if uncertainty is not None:
        styled = show_texts(styled, "average_rank", [
            f"{rank:.2f} [{low:.1f}, {high:.1f}]" if pd.notna(low) else MISSING if pd.isna(rank) else f"{rank:.3f}"
            for rank, low, high in zip(overview["average_rank"], overview["rank_ci_low"], overview["rank_ci_high"])])
    if "parameters" in columns:
        styled = styled.format(parameters_label, subset=["parameters"], na_rep=MISSING)
    config = {  # fixed widths for the leading columns (the browser test clicks their headers)
        "#": st.column_config.NumberColumn("#", width=LEAD_WIDTHS[0]),
        "average_rank": st.column_config.NumberColumn("rank [95% CI]", help="average rank over the common tasks",
                                                      width=LEAD_WIDTHS[1]),
        "model": st.column_config.TextColumn("model", width=LEAD_WIDTHS[2]),
        "mean": st.column_config.NumberColumn("mean", help="mean main score over the common bounded tasks",
                                              width=LEAD_WIDTHS[3]),
        "items_per_s": st.column_config.NumberColumn("tiles/s", help="embedding throughput (median over tasks)"),
        "hub_id": st.column_config.LinkColumn("Hub", display_text=r"https://huggingface\.co/(.*)"),
        "retention": st.column_config.NumberColumn(
            "retention %", format="%.1f", help="a student's mean as a % of its teacher's (the row above it)"),
        "no_overlap": st.column_config.TextColumn(
            "no overlap", help="of the model's scored tasks, those whose test images come from none of the "
                               "collections its card declares as training data (⚠ marks the others' cells)"),
        **{c: st.column_config.NumberColumn(family_titles.get(c.removeprefix("mean:"), c.removeprefix("mean:")),
                                            help=f"mean over {plain(family_titles.get(c.removeprefix('mean:')))} tasks")
           for c in family_means},
    }
    st.dataframe(styled, hide_index=True, placeholder=MISSING, width="stretch", column_config=config)
    intervals = overview[[c for c in ("rank_ci_low", "rank_ci_high") if c in overview]]
    csv_download(pd.concat([table, intervals], axis=1), "leaderboard")
    overlapping = sorted((r.model.name, r.task, ", ".join(r.training_overlap)) for _, r in valid_shown
                         if r.training_overlap)
    if overlapping:
        listed = "; ".join(f"{plain(model)} on {plain(task)} ({plain(sources)})"
                           for model, task, sources in overlapping[:10])
        more = f"; and {len(overlapping) - 10} more" if len(overlapping) > 10 else ""
        st.caption(f"⚠ {len(overlapping)} score(s) shown test on images from a collection the model's card declares "
                   f"as training data: {listed}{more}. The sidebar's 'No training-data overlap only' leaves them out.")
    copied = split_copies_by_task([r for _, r in valid_shown])
    if copied:
        listed = "; ".join(f"{plain(task)} ({plain(what)})" for task, what in sorted(copied.items())[:10])
        more = f"; and {len(copied) - 10} more" if len(copied) > 10 else ""
        st.caption(f"⚠ Published splits whose items have an image of an earlier split (train, then val), byte for "
                   f"byte: "
                   f"{listed}{more}. They are scored as published, so every model's score on these tasks includes "
                   "them.")
    if board.unscored_tasks:
        with st.expander(f"{len(board.unscored_tasks)} tasks no shown model has scored (not in the table)"):
            st.dataframe(pd.DataFrame([{"task": t, "why": why} for t, why in board.unscored_tasks.items()]),
                         hide_index=True, placeholder=MISSING, width="stretch")

    per_family = overview[["model", *family_means]].melt(id_vars="model", var_name="family", value_name="mean")
    per_family = per_family.dropna(subset=["mean"])
    if per_family["family"].nunique() >= 2:
        st.subheader("Per family")
        st.caption("Each model's mean main score over each family's tasks (the bounded ones), one panel per family, "
                   "models in the table's order: where a model is strong and where it is not.")
        per_family["family"] = per_family["family"].map(
            lambda c: family_titles.get(c.removeprefix("mean:"), c.removeprefix("mean:")))
        st.altair_chart(charts.family_small_multiples(per_family))

    suites = pd.DataFrame(suite_rows(board, SUITES))
    if not suites.empty:
        st.subheader("Published tables")
        st.caption("Each suite's aggregate as the table it reruns computes it (the mean of its tasks' main scores), "
                   "for models that scored every task of the suite; `scored` says how many they did. Which "
                   "table each mirrors: the About tab.")
        st.dataframe(suites, hide_index=True, placeholder=MISSING, width="stretch",
                     column_config={name: st.column_config.NumberColumn(name, format="%.4f") for name in SUITES})

    st.subheader("How sure are the ranks?")
    if uncertainty is None:
        st.info("Rank intervals need at least two models with a common task.")
    elif uncertainty.n_resamples == 0:
        st.info("No common task has bootstrap replicates from every model on the same test items (results written "
                f"before this harness kept them, or tasks scored over folds: {plain(', '.join(uncertainty.fixed_tasks))}). "
                "The ranks above are as measured; how sure they are cannot be said from these results.")
    else:
        st.caption(
            f"Each model's average rank recomputed on {uncertainty.n_resamples} bootstrap resamples of the test "
            "items. The resamples depend only on the number of test items, so every model is re-scored on the same "
            f"resample (a paired bootstrap). Resampled: {plain(', '.join(uncertainty.paired_tasks)) or 'none'}; ranked "
            f"as measured (no per-item replicates): {plain(', '.join(uncertainty.fixed_tasks)) or 'none'}. Two models are told "
            "apart when one ranks ahead in at least 95% of the resamples."
        )
        names = {slug: board.model_info[slug]["name"] for slug in uncertainty.models}
        frame = pd.DataFrame({"model": [names[m] for m in uncertainty.models], "rank": uncertainty.point,
                              "low": uncertainty.low, "high": uncertainty.high})
        st.altair_chart(charts.rank_intervals(frame), width="stretch")
        pairs, n_tied = uncertainty.tied_pairs(limit=MAX_TIED_PAIRS)
        ties = sorted(tuple(sorted((names[a], names[b]))) for a, b in pairs)
        more = f"; and {n_tied - len(ties):,} more pairs" if n_tied > len(ties) else ""
        st.markdown("**Cannot be told apart:** " + ("; ".join(f"{plain(a)} ~ {plain(b)}" for a, b in ties) + more
                                                     if ties else "none: every pair of models is separated."))

# --- per task ---------------------------------------------------------------------------------
with tabs[1]:
    task = st.selectbox("Task", board.tasks, format_func=lambda t: f"{t} ({board.families[t]})")
    if task is None:  # every result failed or was skipped: nothing to show per task
        st.info("No task has a valid score yet: the Leaderboard tab says, per task, why.")
    else:
        rows = []
        for model in board.ranked_models():
            cell = board.cells[(model, task)]
            low, high = cell.ci95 if cell.ci95 else (None, None)
            rows.append({"model": board.model_info[model]["name"], "status": cell.status, "score": cell.value,
                         "ci95 low": low, "ci95 high": high, "std": cell.std, "reason": cell.reason or ""})
        higher = board.higher_is_better(task)  # the best first, whichever way the main score runs
        per_task = pd.DataFrame(rows).sort_values("score", ascending=not higher, na_position="last")
        st.caption(f"main score: {plain(board.main_scores[task])}{'' if higher else ', lower is better'} (mean over "
                   "seeds or folds; bootstrap 95% CI on the test items)")
        st.altair_chart(charts.task_bars(per_task, board.main_scores[task], higher), width="stretch")
        st.dataframe(per_task, hide_index=True, placeholder=MISSING, width="content", column_config={
            "model": st.column_config.TextColumn("model", width=TASK_WIDTHS[0]),
            "status": st.column_config.TextColumn("status", width=TASK_WIDTHS[1]),
            "score": st.column_config.NumberColumn("score", format="%.4f", width=TASK_WIDTHS[2]),
            **{c: st.column_config.NumberColumn(format="%.4f") for c in ("ci95 low", "ci95 high", "std")}})
        csv_download(per_task, f"task-{task}")
        curve = pd.DataFrame(few_shot_rows(valid_shown, task))
        if not curve.empty:
            st.markdown("**Few-shot (SimpleShot)**")
            st.caption("Balanced accuracy with k training images per class: nearest centroid of the centred, "
                       "L2-normalised support; the mean over 1,000 balanced draws of the support, the band its "
                       "2.5-97.5 percentiles (how much the choice of the k images matters).")
            st.altair_chart(charts.few_shot_curves(curve), width="stretch")
        calibration = group_tables([(slug, r) for slug, r in valid_shown if r.task == task], "calibration").get(task)
        if calibration:
            st.markdown("**Calibration of the probe's probabilities**")
            st.caption("THUNDER's calibration errors of the linear probe's softmax on the test items, 5 confidence bins, "
                       "mean over seeds; lower is better (0: the confidence is the accuracy). The diagram pools the "
                       "seeds; below the diagonal the probe is overconfident.")
            diagram = pd.DataFrame(reliability_rows(valid_shown, task))
            if not diagram.empty:
                st.altair_chart(charts.reliability_diagram(diagram), width="stretch")
            errors = pd.DataFrame(calibration).dropna(axis=1, how="all")  # a measure no model reports: no column
            st.dataframe(errors, hide_index=True, placeholder=MISSING, width="content",
                         column_config={c: st.column_config.NumberColumn(f"{c} ↓", format="%.4f")
                                        for c in errors if c != "model"})

# --- head to head ------------------------------------------------------------------------------
with tabs[2]:
    names = {model: board.model_info[model]["name"] for model in board.ranked_models()}
    chosen = st.multiselect(f"Models (2 to {MAX_MODELS})", list(names), default=list(names)[:2],
                            format_func=lambda m: names[m], max_selections=MAX_MODELS)
    if len(chosen) < 2:
        st.info(f"Pick 2 to {MAX_MODELS} models.")
    else:
        st.caption("Per task, the first model of each pair against the second: the difference of their main scores "
                   "(positive: the first is better) and its 95% interval over the paired bootstrap resamples (the "
                   "same resampled test items for both). win: the interval is above 0; loss: below 0; tie: it "
                   "holds 0. not paired: no comparable replicates, the point difference only, counted neither way.")
        pairs = pd.DataFrame(head_to_head(board, chosen))
        st.dataframe(pairs, hide_index=True, placeholder=MISSING, width="content")
        csv_download(pairs, "head-to-head")

# --- score against size and speed -----------------------------------------------------------
with tabs[3]:
    costs = overview.assign(parameters_m=overview["parameters"] / 1e6)
    if costs["mean"].notna().sum() == 0:
        st.info("No common bounded task to plot: widen the filters.")
    else:
        st.caption("Mean main score over the common bounded tasks against size and speed (log axes). The dashed "
                   "step line is the Pareto frontier: no model beats a frontier model on both axes.")
        left, right = st.columns(2)
        with left:
            st.markdown("**Score against parameters**")
            st.altair_chart(charts.score_against_cost(costs, "parameters_m", "parameters (M, log)"), width="stretch")
        with right:
            st.markdown("**Score against time per tile**")
            speed = costs.assign(ms_per_tile=1000.0 / costs["items_per_s"])
            if speed["ms_per_tile"].notna().any():
                st.altair_chart(charts.score_against_cost(speed, "ms_per_tile", "ms per tile (log; lower is faster)"),
                                width="stretch")
            else:
                st.info("No throughput recorded (instruments read no pixels).")

# --- robustness --------------------------------------------------------------------------------
with tabs[4]:
    tables = group_tables(valid_shown, "robustness")
    if not tables:
        st.info("No robustness results among the models shown.")
    st.caption("The robustness metrics each family declares (the protocols are in the About tab). The chart shows "
               "those where higher is more robust; the table also those where lower is (marked ↓).")
    lower = {name for _, r in shown for name, info in r.metric_info.items()
             if info.group == "robustness" and not info.higher_is_better}
    for robustness_task, rows in tables.items():
        frame = pd.DataFrame(rows).dropna(axis=1, how="all")
        st.markdown(f"**{plain(robustness_task)}**")
        parts = [c for c in frame.columns if c != "model" and c not in lower]
        long = frame.melt(id_vars="model", value_vars=parts, var_name="measure", value_name="value")
        st.altair_chart(charts.grouped_bars(long, "measure", "value", "value (each metric as its protocol defines it)"))
        st.dataframe(frame, hide_index=True, placeholder=MISSING, width="stretch",
                     column_config={c: st.column_config.NumberColumn(f"{c} ↓" if c in lower else c, format="%.3f")
                                    for c in frame if c != "model"})

# --- students and their teachers ---------------------------------------------------------------
with tabs[5]:
    reports, report_warnings = load_distillation_reports(RESULTS)
    for warning in report_warnings:
        st.warning(plain(warning))
    # all results, truncated students (name@Nd) too, which the board may not show; none of another protocol
    stale_of = stale_check(REGISTERED, FAMILIES)
    curves = pd.DataFrame(matryoshka_curves([(slug, r) for slug, r in results
                                             if result_family[id(r)] in chosen_families
                                             and stale_of(r) is None]))
    if not reports and curves.empty:
        st.info("No distilled students yet: `harness distill --config distill.yaml --output students/tiny --score "
                "synthetic` writes the teacher-vs-student report shown here.")
    if reports:
        st.caption("retention = student score / teacher score x 100 on the same task and run, for scores that are "
                   "better higher (an error or a drop has none); normalised retention = (student - noise) / "
                   "(teacher - noise) x 100 where random-noise was scored on the run; parameters are the "
                   "backbones'; throughput is embedding tiles/s on the machine that scored them.")
    folders_of = folders_by_name((folder, scored.model.name) for folder, scored in results)
    for report in reports:
        name = student_name(report)  # with its folder where several claim its name, as the board shows it
        label = f"{name} [{report['student']}]" if len(folders_of.get(name, ())) > 1 else name
        st.markdown(f"**{plain(label)}** ({plain(report.get('method'))})")
        rows = pd.DataFrame(retention_rows(report))
        if not rows.empty:
            st.altair_chart(charts.task_bars(rows.rename(columns={"retention %": "score"}).assign(
                **{"model": rows["teacher"] + " · " + rows["task"], "ci95 low": None, "ci95 high": None}),
                "retention % (student / teacher)"), width="stretch")
        st.dataframe(rows, hide_index=True, placeholder=MISSING, width="stretch", column_config={
            c: st.column_config.NumberColumn(format="%.1f" if "%" in c else "%.3f")
            for c in rows.columns if c not in ("student", "teacher", "task")})
        if report.get("fidelity"):
            st.caption("fidelity on held-out tiles: " + "; ".join(
                f"{plain(teacher)}: 1 - mean cos {v['one_minus_mean_cosine']:.3f}, Var/MSE {v['variance_over_mse']:.2f}"
                for teacher, v in report["fidelity"].items()))
        losses = pd.DataFrame(training_curves(report))
        if not losses.empty:
            st.altair_chart(charts.loss_curves(losses), width="stretch")
            st.caption("the distillation loss during training (mean of each stretch of steps) and on held-out items "
                       "the student never trained on (measured at each checkpoint); where a curve still falls at its "
                       "end, more steps would likely still help")
    if not curves.empty:
        st.subheader("Score against embedding dims (Matryoshka)")
        for curve_task, curve in curves.groupby("task"):
            st.markdown(f"**{plain(curve_task)}**")
            st.altair_chart(charts.dims_curves(curve), width="stretch")

# --- submission queue ------------------------------------------------------------------------
with tabs[6]:
    queue_section()

# --- about -----------------------------------------------------------------------------------
with tabs[7]:
    st.markdown(protocol_markdown())
    mirrored = {name: spec for name, spec in SUITES.items() if spec.mirrors}
    if mirrored:
        st.markdown("### Suites and the published tables they rerun\n\n" + "\n".join(
            f"- **{plain(name)}** ({plain(', '.join(spec.tasks))}): {plain(spec.mirrors)}"
            for name, spec in mirrored.items()))
