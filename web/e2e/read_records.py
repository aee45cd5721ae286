"""Reads given (partition, offset) records of the topic with a client of its own (Python's
confluent-kafka, not cashflow's rdkafka), for the chromium test of the flow view.

usage: python3 read_records.py BROKERS TOPIC '[[partition, offset], ...]'
prints: JSON {"p@o": {"account": …, "amount": …, "transaction_type": …}} for each record found
"""
import json
import sys

from confluent_kafka import Consumer, TopicPartition

brokers, topic, wanted = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = Consumer({"bootstrap.servers": brokers, "group.id": "cashflow-e2e-reader", "enable.auto.commit": False})
found = {}
for partition, offset in wanted:
    c.assign([TopicPartition(topic, partition, offset)])
    for _ in range(40):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.offset() == offset:
            t = json.loads(m.value())
            found[f"{partition}@{offset}"] = {k: t[k] for k in ("account", "amount", "transaction_type")}
        break
c.close()
print(json.dumps(found))
