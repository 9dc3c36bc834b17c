"""Result files changed at random, as a careless or hostile writer might change them: the board is
built from them, with everything it draws beside the table, and must never raise. The rows of
test_hostile_results.py are the cases someone thought of; this walks the ones nobody did: each
round takes real result files of every family (the instruments' run of the synthetic suite) and
sets one to three of their values, anywhere in the file, to values of the wrong kind (null, a
list, a huge number, NaN, a markup string, a path) or deletes them.
"""

import copy
import json
import random
from pathlib import Path

from harness.leaderboard.aggregate import (build_leaderboard, few_shot_rows, group_tables, load_results,
                                           matryoshka_curves, reliability_rows, suite_rows)
from harness.registry import load_registry
from harness.tasks import FAMILIES

ROUNDS = 100
WRONG = [None, True, 0, -1, 1e308, float("nan"), float("inf"), "", "x" * 5000, "[red]x[/red]", "**b** [l](http://e)",
         [], {}, [1, 2], {"a": 1}, [[[[1]]]], "nan", 10**30, -0.0, "../../etc/passwd", "\x00", "\u202e"]


def places(node, path=()):
    """Every path to a value in a JSON document (the first 5 items of a list)."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:5]):
            yield from places(value, (*path, index))


def changed(document: dict, rng: random.Random) -> dict:
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in places(document) if p])
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice(WRONG)
    return document


def test_randomly_changed_result_files_never_stop_the_board(instrument_results, tmp_path):
    registry = load_registry([], families=FAMILIES)
    registered = {name: (task.family, task.main_score, task.params, task.version)
                  for name, task in registry.tasks.items()}
    originals = [json.loads(p.read_text()) for p in sorted(Path(instrument_results).glob("*/*.json"))]
    originals = [d for d in originals if d.get("status") == "ok" and "task" in d]
    assert len({d["family"] for d in originals}) >= 10  # every family's details are in play
    rng = random.Random(0)
    failures = []
    for round_ in range(ROUNDS):
        root = tmp_path / f"round{round_}"
        for model in ("honest", "changed-1", "changed-2"):
            for document in rng.sample(originals, 6):
                document = dict(document, model={**document["model"], "name": model})
                if model != "honest":
                    document = changed(document, rng)
                (root / model).mkdir(parents=True, exist_ok=True)
                text = json.dumps(document)  # NaN and Infinity as Python writes them: json.loads reads them
                (root / model / f"{document.get('task', 'x')}.json").write_text(text)
        try:
            results, _ = load_results(root)
            board = build_leaderboard(results, families=FAMILIES, registered=registered)
            board.overview(), board.cell_labels(), board.rank_uncertainty(), board.borda()
            valid = board.valid(results)
            for task in board.tasks:
                few_shot_rows(valid, task), reliability_rows(valid, task)
            group_tables(valid, "robustness"), matryoshka_curves(results), suite_rows(board, registry.suite_specs)
            if "honest" not in {board.model_info[m]["name"] for m in board.models}:
                failures.append(f"round {round_}: the model whose files are unchanged is not on the board")
        except Exception as error:  # noqa: BLE001 - every round is tried; the failures are listed together
            failures.append(f"round {round_}: {type(error).__name__}: {error}"[:300])
    assert not failures, "\n".join(failures)
