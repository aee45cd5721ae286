#!/usr/bin/env python3
"""The peer for the balance calculator: a confluent-kafka consumer doing the same arithmetic.

Reads N records of TOPIC from the beginning in a fresh group, parses each as JSON, adds the
amount (exact, in minor units) to the account's balance, stores its offset after processing and
lets auto-commit commit, as cashflow's calculator does; batched polls (consume(1000)).
Prints one JSON line: records, seconds from the first record to the last, records/s, and the
balances' checksum (sum of balance × account) to compare with the recomputation.

    py_consumer.py BROKERS TOPIC N [OPENING_MINOR]
"""
import json
import sys
import time
from decimal import Decimal

from confluent_kafka import Consumer


def main():
    brokers, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    opening = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"bench-py-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 500,
        "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 1048576,
    })
    c.subscribe([topic])
    balances = {}
    seen = 0
    first = None
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline:
        batch = c.consume(num_messages=1000, timeout=1.0)
        if not batch:
            continue
        if first is None:
            first = time.monotonic()
        last = {}
        for m in batch:
            if m.error():
                continue
            tx = json.loads(m.value(), parse_float=Decimal)
            cents = int(Decimal(tx["amount"]) * 100)
            if tx["transaction_type"] == "Debit":
                cents = -cents
            a = tx["account"]
            balances[a] = balances.get(a, opening) + cents
            last[m.partition()] = m
            seen += 1
        for m in last.values():
            c.store_offsets(message=m)
    c.commit(asynchronous=False)
    took = time.monotonic() - (first or time.monotonic())
    c.close()
    print(json.dumps({
        "records": seen,
        "seconds": took,
        "rate": seen / took if took > 0 else 0,
        "checksum": sum(a * b for a, b in balances.items()),
    }))


if __name__ == "__main__":
    main()
