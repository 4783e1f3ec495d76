"""Kafka in the notebooks: the producer's and consumer's helpers, topics, groups, latency, the Quix pipeline."""
