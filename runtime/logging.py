"""structlog everywhere: console for a person at a terminal, JSON for machines.

The standard library's loggers (uvicorn, temporalio, alembic) are routed through the same
processors, so every line has one shape. Request ids (API) and workflow/activity ids
(worker) are bound with `structlog.contextvars` and appear in every line of that context,
and so do the trace and span ids while a span is current (runtime.telemetry).
No line carries an email, an address, a payment reference, a key or a secret in clear
(runtime.log_masking, the last step before rendering)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
from opentelemetry import trace

from runtime.log_masking import mask_sensitive

_configured = False


def configure_logging(fmt: Literal["auto", "console", "json"] = "auto", level: str = "INFO") -> None:
    global _configured
    use_console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Exceptions rendered to text before the masking, so that what they say is masked
            # too (the console shows the plain traceback rather than its pretty form).
            structlog.processors.format_exc_info,
            mask_sensitive,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):  # our middleware logs each request once, with its id
        logging.getLogger(noisy).handlers[:] = []
        logging.getLogger(noisy).propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    _configured = True


def add_trace_ids(_: object, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    """The current span's trace and span id (runtime.telemetry), when tracing is on: a log line
    leads to its trace. Nothing is added while no span is recording."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
