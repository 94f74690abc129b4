"""Prometheus metrics of the workers and the comparator: observers of the runtime and the service, and /metrics."""
