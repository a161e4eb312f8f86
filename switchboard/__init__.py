"""Switchboard: an open webhook gateway for messaging providers, built on Kafka."""

__version__ = "0.1.0"
