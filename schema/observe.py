"""Per-operation metrics and the operation fields of the request log line."""

from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from server.observability.metrics import Metrics


class OperationObserver(SchemaExtension):
    def __init__(self, *, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context.context
        label = self.metrics.operation_label(self.execution_context.operation_name)
        result = self.execution_context.result
        failed = bool(self.execution_context.pre_execution_errors) or bool(result is not None and result.errors)
        outcome = "error" if failed else "ok"
        self.metrics.operations.labels(label, outcome).inc()
        self.metrics.operation_seconds.labels(label).observe(time.perf_counter() - started)
        log_fields = getattr(context, "log_fields", None)
        if log_fields is not None:
            principal = getattr(context, "principal", None)
            log_fields.update(operation=label, outcome=outcome, role=principal.role.value if principal else None)
