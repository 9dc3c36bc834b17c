"""benchmarks/queue_order.py at toy size: its flood is what it says, and the one-by-one count it
times against fair_order counts the services a waiting request has seen."""

from tests.support.benchmark_scripts import load_benchmark


def test_the_queue_order_benchmark_counts_services_of_a_flood():
    bench = load_benchmark("queue_order")
    requests, written = bench.flood(20)
    assert len(requests) == 20 and sum(r.status == "PENDING" for r in requests) == 10
    counts = bench.services_one_by_one(requests, written)
    assert len(counts) == 10 and counts == [0] * 10  # every service came before every waiting request
    # a flood request served after all of them (date moved last): each waiting flood request has seen one
    written[requests[1].id] = max(written.values()) + (written[requests[2].id] - written[requests[1].id])
    assert bench.services_one_by_one(requests, written) == [0] + [1] * 9  # request 10 is lab10's, not the flood's
