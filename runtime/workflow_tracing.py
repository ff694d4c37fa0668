"""The Temporal SDK's TracingInterceptor with one change: an update is traced in the trace of
the request that sent it. The SDK's own puts an update's validator, its handler and whatever the
handler runs (an order's pick, pack or ship activity, and its SQL) in the workflow's trace, the
one its start began, linked to the caller's span; a pick request's trace would then end at
StartWorkflowUpdate. Here those spans are children of the caller's StartWorkflowUpdate span,
and linked to the workflow's trace instead. Starts, runs, signals and queries are the SDK's.

Workflow-safe as the SDK's is: the spans are made outside the sandbox (the SDK's extern
function), from the update's headers and the workflow's, never on replay."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import opentelemetry.trace
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

# The SDK's own attach/detach, safe where an evicted workflow's context is finalized elsewhere.
from temporalio.contrib.opentelemetry._context import attached_context
from temporalio.worker import HandleUpdateInput, WorkflowInboundInterceptor, WorkflowInterceptorClassInput


class RequestTracingWorkflowInterceptor(TracingWorkflowInboundInterceptor):
    @contextmanager
    def _update_context(self, input: HandleUpdateInput) -> Iterator[None]:
        header = input.headers.get(self.header_key)
        if not header:  # sent by a caller that does not trace: the SDK's way
            with self._top_level_workflow_context(success_is_complete=False):
                yield
            return
        carrier = self.payload_converter.from_payloads([header])[0]
        with attached_context(self._set_on_context(self.text_map_propagator.extract(carrier))):
            yield

    def _update_span(self, name: str) -> None:
        self._completed_span(
            name,
            link_context_carrier=self._load_workflow_context_carrier(),
            kind=opentelemetry.trace.SpanKind.SERVER,
        )

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        with self._update_context(input):
            self._update_span(f"ValidateUpdate:{input.update}")
            WorkflowInboundInterceptor.handle_update_validator(self, input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        with self._update_context(input):
            self._update_span(f"HandleUpdate:{input.update}")
            return await WorkflowInboundInterceptor.handle_update_handler(self, input)


class RequestTracingInterceptor(TracingInterceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)  # registers the SDK's extern span function
        return RequestTracingWorkflowInterceptor
