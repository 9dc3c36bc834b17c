"""How the submission queue's order (harness.hub_queue.fair_order) grows with a flood of requests.

The backend orders the whole requests dataset at every snapshot, one per step of its loop. This
script builds queues of N requests (nine in ten from one namespace, half of them already served,
each dated a minute apart), times fair_order on them, and times the same turns counted the way
fair_order counted them before d4fb77a (each waiting request against every service of its
namespace, one by one; tests/test_hostile_queue.py checks both give the same order). It prints the seconds per N, their
ratio, and the growth exponent between sizes (1 linear, 2 quadratic), measured in one run.

Usage: python benchmarks/queue_order.py [--requests 2000 8000]
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime, timedelta, timezone


def flood(n: int):
    """(requests, written): a queue of n requests, the Hub's date of each."""
    from harness.submissions import Request

    start, requests, written = datetime(2026, 1, 1, tzinfo=timezone.utc), [], {}
    for i in range(n):
        space = "flood" if i % 10 else f"lab{i}"
        request = Request(id=f"{space}--m{i:06d}--{i:012x}", status="FINISHED" if i < n // 2 else "PENDING",
                          model_name=f"{space}/m{i}", hub_id=f"{space}/m{i}", commit_sha="0" * 40, tasks="all",
                          submitted="", updated="")
        requests.append(request)
        written[request.id] = start + timedelta(minutes=i)
    return requests, written


def services_one_by_one(requests, written) -> list[int]:
    """Each waiting request's count of its namespace's services since it arrived, one by one."""
    from harness.hub_queue import IN_QUEUE, namespace

    served: dict[str, list[datetime]] = {}
    for request in requests:
        if request.status != "PENDING" and request.id in written:
            served.setdefault(namespace(request), []).append(written[request.id])
    return [sum(date > written[r.id] for date in served.get(namespace(r), [])) for r in requests
            if r.status in IN_QUEUE]


def main() -> None:
    from harness.hub_queue import fair_order

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[2000, 8000])
    args = parser.parse_args()
    rows = []
    for n in sorted(args.requests):
        requests, written = flood(n)
        started = time.perf_counter()
        fair_order(requests, written)
        now = time.perf_counter() - started
        started = time.perf_counter()
        services_one_by_one(requests, written)
        before = time.perf_counter() - started
        rows.append((n, now, before))
        print(f"{n:>7} requests: fair_order {now:.3f} s; its turns counted one by one {before:.3f} s "
              f"({before / now:.0f}x)", flush=True)
    for (n0, now0, before0), (n1, now1, before1) in zip(rows, rows[1:]):
        exponent = lambda t0, t1: math.log(t1 / t0) / math.log(n1 / n0)  # noqa: E731
        print(f"growth {n0} -> {n1}: fair_order {exponent(now0, now1):.2f}, one by one {exponent(before0, before1):.2f}")


if __name__ == "__main__":
    main()
