"""The HTTP side: webhook endpoints that providers call."""
