"""A consumer-group member in a process of its own, for tests that stop it with SIGSTOP.

    python -m tests.realkafka.member BOOTSTRAP TOPIC GROUP WORK_MS

It commits through step 3's `ProcessedOffsets` (so a refused commit takes the project's path) and prints
one line per event: `assigned P,P`, `processed P OFFSET`, and whatever `ProcessedOffsets` prints.
SIGTERM closes it, leaving the group.
"""

from __future__ import annotations

import signal
import sys
import time

from kafka import KafkaConsumer, KafkaProducer

from pm25.streaming.commits import ProcessedOffsets

SESSION_TIMEOUT_MS = 6000


def main(bootstrap_servers: str, topic: str, group: str, work_ms: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=1000,
        max_poll_records=50,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    offsets = ProcessedOffsets(
        consumer, producer, forget=lambda boxes: None, topic_partitions=len(consumer.partitions_for_topic(topic))
    )
    consumer.subscribe([topic], listener=offsets)
    owned = None
    try:
        while True:
            batches = consumer.poll(timeout_ms=500)
            if offsets.owned != owned:
                owned = set(offsets.owned)
                print("assigned " + ",".join(str(p.partition) for p in sorted(owned)), flush=True)
            for records in batches.values():
                for record in records:
                    time.sleep(float(work_ms) / 1000)  # the work a record takes, so that there is work to interrupt
                    print(f"processed {record.partition} {record.offset}", flush=True)
                    offsets.processed(record, None)
            offsets.commit()
    except KeyboardInterrupt:
        offsets.commit()
    finally:
        consumer.close()
        producer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
