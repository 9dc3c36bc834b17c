"""Result files written by hand, for leaderboard tests."""

import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def registry_version(task: str) -> int:
    """The version tasks.yaml gives a task (a board that knows the task reads another as stale); 1
    for a task it does not name."""
    from harness.registry import load_registry
    from harness.tasks import FAMILIES

    tasks = load_registry([], families=FAMILIES).tasks
    return tasks[task].version if task in tasks else 1


def write_result(root: Path, slug: str, task: str, family: str, value=None, status="ok", main="balanced_accuracy",
                 reason=None, params=1000, replicates=None, weights="checkpoint", items_per_s=10.0, task_params=None,
                 **overrides):
    """A result file at root/model/task.json; `overrides` replace top-level fields (a hostile file)."""
    result = {
        "task": task, "task_version": registry_version(task), "family": family, "status": status, "reason": reason,
        "model": {"name": slug, "weights": weights, "weights_sha256": "0" * 64, "n_parameters": params,
                  "embed_dim": 8},
        "dataset": {"name": task, "source": "synth", "fingerprint": f"fp-{task}"},
        "main_score": {"name": main, "value": value,
                       "replicates": None if replicates is None else [float(v) for v in replicates]},
        "metrics": {main: {"mean": value, "std": 0.0, "ci95": [value - 0.01, value + 0.01]}} if value is not None else {},
        "timings": {"embed_s": 1.0, "eval_s": 1.0, "items_per_s": items_per_s},
    }
    if task_params is not None:  # the task's parameters as it ran (`params` is the model's size)
        result["params"] = task_params
    result.update(overrides)
    (root / slug).mkdir(parents=True, exist_ok=True)
    (root / slug / f"{task}.json").write_text(json.dumps(result))
