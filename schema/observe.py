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
        result = self.execution_context.result
        failed = bool(self.execution_context.pre_execution_errors) or bool(result is not None and result.errors)
        record_operation(
            self.metrics,
            self.execution_context.operation_name,
            failed=failed,
            seconds=time.perf_counter() - started,
            context=self.execution_context.context,
        )


def record_operation(metrics: Metrics, name: str | None, *, failed: bool, seconds: float, context: object) -> None:
    """Count one operation and name it in the log line: every execution path calls this."""
    label = metrics.operation_label(name)
    outcome = "error" if failed else "ok"
    metrics.operations.labels(label, outcome).inc()
    metrics.operation_seconds.labels(label).observe(seconds)
    log_fields = getattr(context, "log_fields", None)
    if log_fields is not None:
        principal = getattr(context, "principal", None)
        log_fields.update(operation=label, outcome=outcome, role=principal.role.value if principal else None)
