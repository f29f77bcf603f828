"""OpenTelemetry tracing (SPEC §10): one trace per item, exported over OTLP/HTTP when configured.

``setup_tracing`` installs an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` over the
OTLP/HTTP exporter, and instruments Celery, only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; the
exporter and the SDK honour the other standard ``OTEL_*`` variables (``OTEL_SERVICE_NAME``,
``OTEL_BSP_SCHEDULE_DELAY``, headers, ...). Without it nothing is installed: ``span`` yields a
shared non-recording span without touching the OTel context, so the hot path pays one flag test.

An item's trace: ``submit_span`` (``swarm.submit``) is open while the item is written, so its
``trace_id`` is that span's trace id and its ``traceparent`` (W3C) names the span; the ledger
copies both to every workflow stage. Whoever sends an item's Celery message does it in
``item_context``: in the current span when it belongs to the item's trace (a completing worker's
handoff), else under the stored ``traceparent`` (the submitter after its span, the outbox sweep,
re-sends after a reap). Celery's instrumentation puts that context in the message headers, so
the worker's ``run/swarm.execute`` span continues the trace.

An item that fails for good or dies ends its spans (the outcome's write and the run it belongs
to) with ERROR status and its error (``record_error``), the handler's exception recorded on the
run as an ``exception`` event; a retried attempt's exception is recorded too, its status unset.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from swarm.models import WorkItem

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"
TRACER_NAME = "swarm"
SUBMIT_SPAN = "swarm.submit"


class _State:
    enabled = False  # set once this process exports spans: the hot path's only test
    provider: TracerProvider | None = None  # the provider spans go to, to flush


_state = _State()
_setup_lock = threading.Lock()
_submit_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar("swarm_submit_span", default=None)


def enabled() -> bool:
    """True when this process records and exports spans."""
    return _state.enabled


def setup_tracing(service_name: str) -> bool:
    """Installs tracing if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (idempotent); True if it is on.

    ``service_name`` is the default for ``OTEL_SERVICE_NAME``. An SDK provider the application
    installed already is kept (spans go where it sends them); Celery is instrumented either way.
    """
    if not os.environ.get(ENDPOINT_ENV):
        return False
    with _setup_lock:
        if not _state.enabled:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
            from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
            from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

            current = trace.get_tracer_provider()
            if isinstance(current, TracerProvider):
                _state.provider = current
            else:
                attributes = {} if os.environ.get(SERVICE_NAME_ENV) else {"service.name": service_name}
                provider = TracerProvider(resource=Resource.create(attributes))
                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                trace.set_tracer_provider(provider)
                _state.provider = provider
            _state.enabled = True
        _instrument_celery()
    return True


def _instrument_celery() -> None:
    """Instruments Celery; a task's expected exceptions (its ``throws``) leave its run's span as
    the task left it (``_trace_unexpected_failure``)."""
    from celery import signals  # noqa: PLC0415
    from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: PLC0415

    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
        signals.task_failure.disconnect(CeleryInstrumentor._trace_failure)
        signals.task_failure.connect(_trace_unexpected_failure, weak=False)


def _trace_unexpected_failure(*args: Any, **kwargs: Any) -> None:
    """The instrumentation's failure handler, but for a task's expected exceptions (its
    ``throws``), which it means to skip and does not: it looks at billiard's wrapper of the
    exception, never an instance of them. The execute task's ``ItemFailed`` (Flower's FAILURE
    state, ``workers/task_states.py``) is one: the run's span keeps the ERROR status and the
    handler's exception that ``workers.execute`` gave it, the item's error, not ``ItemFailed``'s
    wording."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: PLC0415

    throws = getattr(kwargs.get("sender"), "throws", None)
    if throws and isinstance(kwargs.get("exception"), throws):
        return
    CeleryInstrumentor._trace_failure(*args, **kwargs)  # type: ignore[no-untyped-call]


def flush() -> None:
    """Exports the spans still buffered (a process about to exit must, or they are lost)."""
    if _state.provider is not None:
        _state.provider.force_flush()


def shutdown() -> None:
    """Flushes, then stops the exporter; this process records nothing afterwards."""
    with _setup_lock:
        if _state.provider is not None:
            _state.provider.force_flush()
            _state.provider.shutdown()
        _state.provider = None
        _state.enabled = False


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def span(name: str) -> Iterator[Span]:
    """A ``swarm`` span, current while the block runs; a non-recording one when tracing is off.

    Set attributes with ``annotate`` (it builds nothing unless the span records).
    """
    if not _state.enabled:
        yield INVALID_SPAN
        return
    with tracer().start_as_current_span(name) as current:
        yield current


def annotate(
    target: Span,
    item: WorkItem | None = None,
    *,
    work_id: str | None = None,
    agent_id: str | None = None,
    fence: int | None = None,
) -> None:
    """Sets the ``swarm.*`` attributes (work id, type, role, agent, fence) on a recording span."""
    if not target.is_recording():
        return
    if item is not None:
        work_id = item.id
        target.set_attribute("swarm.type", item.type)
        target.set_attribute("swarm.role", item.role.value)
        agent_id = agent_id or item.agent_id
        fence = item.fence if fence is None else fence
    for key, value in (("swarm.work_id", work_id), ("swarm.agent_id", agent_id), ("swarm.fence", fence)):
        if value is not None:
            target.set_attribute(key, value)


def current_span() -> Span:
    """The current span (a non-recording one when tracing is off)."""
    return trace.get_current_span() if _state.enabled else INVALID_SPAN


def record_error(target: Span, description: str, exc: BaseException | None = None) -> None:
    """Marks a recording span failed: ERROR status with ``description`` (the item's error), and
    ``exc`` (type, message, stack) as its ``exception`` event when there is one."""
    if not target.is_recording():
        return
    if exc is not None:
        target.record_exception(exc)
    target.set_status(Status(StatusCode.ERROR, description))


def record_exception(target: Span, exc: BaseException) -> None:
    """Records ``exc`` as an ``exception`` event of a recording span, leaving its status alone."""
    if target.is_recording():
        target.record_exception(exc)


@contextlib.contextmanager
def submit_span() -> Iterator[Span]:
    """The ``swarm.submit`` span of the item being submitted: opened by the outermost caller (the
    facade or CLI, so that the first send is inside it; else ``Ledger.submit``) and reused by
    the calls within it."""
    if not _state.enabled:
        yield INVALID_SPAN
        return
    outer = _submit_span.get()
    if outer is not None and outer is trace.get_current_span():
        yield outer
        return
    with tracer().start_as_current_span(SUBMIT_SPAN) as current:
        token = _submit_span.set(current)
        try:
            yield current
        finally:
            _submit_span.reset(token)


def trace_id_of(target: Span) -> str | None:
    """The span's trace id as 32 hex digits, or None for an invalid span."""
    ctx = target.get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


def traceparent_of(target: Span) -> str | None:
    """The W3C ``traceparent`` naming ``target`` (None for an invalid span)."""
    ctx = target.get_span_context()
    if not ctx.is_valid:
        return None
    trace_id, span_id = trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)
    return f"00-{trace_id}-{span_id}-{int(ctx.trace_flags):02x}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote span context a stored ``traceparent`` names (None if absent or malformed)."""
    if not value:
        return None
    parts = value.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    ctx = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 0xFF))
    return ctx if ctx.is_valid else None


@contextlib.contextmanager
def item_context(traceparent: str | None) -> Iterator[None]:
    """Runs the block in the item's trace: the current span if it is in that trace, else the
    span its stored ``traceparent`` names. A send made in it joins the item's trace."""
    if not _state.enabled:
        yield
        return
    remote = parse_traceparent(traceparent)
    current = trace.get_current_span().get_span_context()
    if remote is None or (current.is_valid and current.trace_id == remote.trace_id):
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        yield
    finally:
        otel_context.detach(token)


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span, for log lines; None when there is none."""
    if not _state.enabled:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)
