"""Brokers to run against: the embedded Kafka-compatible one and real Apache Kafka on the JVM."""
