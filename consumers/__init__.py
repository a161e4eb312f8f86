"""Kafka consumer workers: bots and the sender."""
