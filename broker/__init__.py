"""The local Apache Kafka broker used for development, tests, the demo and the benchmark.

AutoMQ's broker is not on any registry our machines reach, so the test/dev flavor is Apache Kafka
(KRaft, combined broker + controller) assembled from Maven Central by ``broker/pom.xml``.
"""

from broker.kafka import KafkaBroker, assemble, kafka_classpath

__all__ = ["KafkaBroker", "assemble", "kafka_classpath"]
