"""Topics are created on purpose, with the partitions the lesson needs.

A topic that a client's request created by accident has the broker's default partition count (one on
a stock Kafka, four on the embedded broker), which breaks the lesson on keys and parallelism. So the
code that needs a topic creates it, consumers never do, and step 3 checks with the admin client (whose
requests never create a topic) that step 2 made the readings topic before a consumer asks for it.
"""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pm25.errors import LearnerError

PARTITIONS = 3  # readings and alerts: enough to share the work between up to three consumers


class TopicNotCreated(LearnerError, RuntimeError):
    """The broker refused to create the topic."""


class TopicMissing(LearnerError):
    """The topic a consumer needs does not exist yet."""


def partition_count(admin: KafkaAdminClient, name: str) -> int | None:
    """How many partitions the topic has, or None when it does not exist."""
    if name not in admin.list_topics():
        return None
    return len(admin.describe_topics([name])[0]["partitions"])


def ensure_topic(admin: KafkaAdminClient, name: str, partitions: int = PARTITIONS, replication_factor: int = 1) -> str:
    """Create the topic, or accept it as it is when it exists already. Says which, and warns of another count."""
    try:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": replication_factor}})
    except TopicAlreadyExistsError:
        existing = partition_count(admin, name)
        if existing != partitions:
            return (
                f"⚠️ Topic {name!r} exists already with {existing} partitions, not {partitions}: probably created "
                "by a client before this cell ran. It works, but the lesson's numbers will differ. To start clean, "
                "delete the topic (or restart `make lab`, whose broker keeps topics in memory) and run this cell again."
            )
        return f"Topic {name!r} exists already, with {existing} partitions."
    except KafkaError as error:
        raise TopicNotCreated(
            f"Kafka could not create the topic {name!r}: {error}. Check the name (letters, digits, '.', '_', '-') "
            f"and that replication factor {replication_factor} is not more than the number of brokers."
        ) from error
    return f"Created topic {name!r} with {partitions} partitions (replication factor {replication_factor})."


# Step 3 offers its own replay (replay.start_live_replay) instead of only refusing an empty topic.
REPLAY_FROM_STEP_3 = "Or let step 3 replay the readings itself: live_speedup = 3600 in the cell above."


def require_topic(admin: KafkaAdminClient, name: str) -> int:
    """The topic's partition count; a learner error, and no topic created, when it does not exist."""
    partitions = partition_count(admin, name)
    if partitions is None:
        raise TopicMissing(f"The topic {name!r} is empty or missing: run step 2 first. {REPLAY_FROM_STEP_3}")
    return partitions
