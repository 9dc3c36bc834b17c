"""Do two results folders hold the same results? For a change that must not change behaviour
(a refactor): run `harness run` with the old code and with the new, then

    python benchmarks/same_results.py OLD_RESULTS NEW_RESULTS

Every result file (<model>/<task>.json) and every per-item samples file (--log-samples) must be
in both folders and equal, except for what a rerun changes anyway: timings, the date, the run's
environment and harness version. Fields that only one side's schema has (a newer schema adds
fields) are listed, not compared. Prints each difference; exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RERUN_FIELDS = {"timings", "date", "environment", "harness_version", "schema_version"}


def differences(old: Path, new: Path) -> tuple[list[str], set[str]]:
    """(what differs, the fields only one side has)."""
    problems: list[str] = []
    one_sided: set[str] = set()
    old_files = {p.relative_to(old) for p in old.glob("*/*") if p.is_file()}
    new_files = {p.relative_to(new) for p in new.glob("*/*") if p.is_file()}
    for missing in sorted(old_files ^ new_files):
        problems.append(f"{missing}: only in {'the old' if missing in old_files else 'the new'} folder")
    for relative in sorted(old_files & new_files):
        if relative.suffix == ".json":
            a, b = (json.loads((root / relative).read_text()) for root in (old, new))
            one_sided |= set(a) ^ set(b)
            for key in sorted((set(a) & set(b)) - RERUN_FIELDS):
                if a[key] != b[key]:
                    problems.append(f"{relative}: '{key}' differs: {_short(a[key])} != {_short(b[key])}")
        elif relative.name.endswith(".parquet"):
            import pandas as pd

            a, b = (pd.read_parquet(root / relative) for root in (old, new))
            if not a.equals(b):
                problems.append(f"{relative}: the per-item samples differ")
    return problems, one_sided


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    problems, one_sided = differences(args.old, args.new)
    n = len({p.relative_to(args.old) for p in args.old.glob("*/*") if p.is_file()})
    for problem in problems:
        print(problem)
    if one_sided:
        print(f"fields in one schema only (not compared): {', '.join(sorted(one_sided))}")
    print(f"{n} files compared ({', '.join(sorted(RERUN_FIELDS))} aside): "
          + ("the same" if not problems else f"{len(problems)} differences"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
