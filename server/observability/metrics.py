"""Prometheus metrics, labelled by operation name and outcome, never by argument values.

Operation names come from clients, so they are bounded twice: only GraphQL-name characters
and at most ``MAX_OPERATION_LABELS`` distinct names per process, the rest counted as "other".
"""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

MAX_OPERATION_LABELS = 200
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "audience_http_requests_total",
            "HTTP requests by route and status class",
            ["route", "status"],
            registry=self.registry,
        )
        self.operations = Counter(
            "audience_graphql_operations_total",
            "GraphQL operations by name and outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "audience_graphql_operation_seconds",
            "GraphQL operation latency by name",
            ["operation"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if not _NAME.match(name):
            return "invalid"
        with self._lock:
            if name in self._seen:
                return name
            if len(self._seen) >= MAX_OPERATION_LABELS:
                return "other"
            self._seen.add(name)
            return name
