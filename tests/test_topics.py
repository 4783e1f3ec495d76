"""Topics are created on purpose, with the partitions the lesson needs, and never by a consumer's request."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.errors import InvalidTopicError

from pm25.streaming import topics


def test_ensure_topic_creates_the_topic_with_three_partitions(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        said = topics.ensure_topic(admin, topic)
        assert said == f"Created topic '{topic}' with 3 partitions (replication factor 1)."
        assert topics.partition_count(admin, topic) == 3


def test_ensure_topic_accepts_an_existing_topic_with_the_intended_partitions_quietly(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        topics.ensure_topic(admin, topic)
        assert topics.ensure_topic(admin, topic) == f"Topic '{topic}' exists already, with 3 partitions."


def test_ensure_topic_warns_when_an_existing_topic_has_another_partition_count(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
        said = topics.ensure_topic(admin, topic, partitions=3)
        assert said.startswith(f"⚠️ Topic '{topic}' exists already with 4 partitions, not 3")
        assert topics.partition_count(admin, topic) == 4  # left as it was: deleting is the learner's choice


def test_ensure_topic_explains_a_refusal_by_the_broker():
    class RefusingAdmin:
        def create_topics(self, new_topics):
            raise InvalidTopicError("bad name")

    with pytest.raises(topics.TopicNotCreated, match=r"could not create the topic 'a b'.*letters, digits.*factor 1"):
        topics.ensure_topic(RefusingAdmin(), "a b")


def test_require_topic_says_run_step_2_first_and_does_not_create_the_topic(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        with pytest.raises(topics.TopicMissing, match=f"The topic '{topic}' is empty or missing: run step 2 first."):
            topics.require_topic(admin, topic)
        assert topic not in admin.list_topics()


def test_require_topic_gives_the_partition_count_of_an_existing_topic(bootstrap_servers, topic):
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers) as admin:
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
        assert topics.require_topic(admin, topic) == 2
