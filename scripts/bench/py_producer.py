#!/usr/bin/env python3
"""The producer peers: confluent-kafka producers writing the original's transactions.

Two ways, both idempotent with acks=all like cashflow's producer, each record a random
transaction of the original's JSON form (~230 bytes):
- loop: the original's producer.py without its sleep: keyed "transaction" as it keys them,
  produce, then flush, one message at a time;
- batched: keyed by account as cashflow keys them, produce without waiting (poll(0) to serve
  delivery reports, a retry on a full queue), one flush at the end.
Each transaction is made (random values, JSON) as it is sent, as the original and cashflow make
them. Counts delivery reports; an error fails the run. Prints one JSON line: records, seconds
from the first transaction to the last delivery report, records/s, mean record size.

    py_producer.py BROKERS TOPIC N loop|batched [key=value …]   (extra producer settings)
"""
import json
import random
import sys
import time
import uuid

from confluent_kafka import Producer


def transactions(n, accounts=1000):
    rng = random.Random(7)
    balances, counts = {}, {}
    for _ in range(n):
        a = rng.randint(1, accounts)
        kind = rng.choice(["Debit", "Credit"])
        amount = rng.randint(1, 2000) / 100
        b = balances.get(a, 100.0) + (amount if kind == "Credit" else -amount)
        balances[a] = b
        counts[a] = counts.get(a, 0) + 1
        yield str(a).encode(), json.dumps({
            "account": a,
            "transaction_id": f"{a}-{kind}-{uuid.UUID(int=rng.getrandbits(128))}",
            "transaction_type": kind,
            "amount": amount,
            "new_balance": round(b, 2),
            "transaction_summary": {f"Transactions for Customer ID {a}": counts[a]},
        }).encode()


def main():
    brokers, topic, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    conf = {
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "acks": "all",
    }
    for kv in sys.argv[5:]:
        k, v = kv.split("=", 1)
        conf[k] = v
    p = Producer(conf)
    done = {"ok": 0, "failed": 0}

    def report(err, _msg):
        done["failed" if err else "ok"] += 1

    size = 0
    start = time.monotonic()
    # Each transaction made as it is sent, as the original's loop (and cashflow) make them.
    for account, value in transactions(n):
        size += len(value)
        key = b"transaction" if mode == "loop" else account
        while True:
            try:
                p.produce(topic, value=value, key=key, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
        if mode == "loop":
            p.flush()
        else:
            p.poll(0)
    p.flush(120)
    took = time.monotonic() - start
    if done["ok"] != n:
        sys.exit(f"delivered {done['ok']} of {n}, {done['failed']} failed")
    print(json.dumps({"records": n, "seconds": took, "rate": n / took,
                      "bytes": size / n}))


if __name__ == "__main__":
    main()
