"""Talking to workflows from the API: starts and updates with metrics, and the mapping of
engine answers to HTTP (validator refusals → 409/422, a finished workflow → 409, no answer in
time → 503). Callers check that the business object exists (404) before sending an update,
or when the engine does not find its workflow (`WorkflowNotRunning`)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.domain_errors import STATUS_OF
from api.idempotency import IDEMPOTENT_CALL
from api.metrics import WORKFLOW_MESSAGES, WORKFLOW_STARTS
from api.problems import Problem, engine_unavailable
from api.update_finisher import ENGINE_AWAY, UnansweredUpdate, UpdateFinisher
from domain.errors import DomainError


async def start(
    client: Client, workflow: str, arg: Any, *, id: str, task_queue: str, search_attributes: Any = None
) -> WorkflowHandle[Any, Any]:
    """Start once: a second start of the same business id returns the running workflow, and
    one that has finished is never started again (a retried create must not redo an order)."""
    try:
        handle = await client.start_workflow(
            workflow,
            arg,
            id=id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search_attributes,
            rpc_timeout=timedelta(seconds=10),
        )
    except WorkflowAlreadyStartedError:
        WORKFLOW_STARTS.labels(workflow, "finished").inc()
        return client.get_workflow_handle(id)
    except RPCError as exc:
        WORKFLOW_STARTS.labels(workflow, "unavailable").inc()
        if exc.status in ENGINE_AWAY:
            raise engine_unavailable() from exc
        raise
    WORKFLOW_STARTS.labels(workflow, "started").inc()
    return handle


class WorkflowNotRunning(Problem):
    """409: the update's workflow is not running (the engine does not find it). A caller
    that did not look its object up first tells "finished" from "never was" itself."""


def _refusal(cause: BaseException | None) -> Problem:
    """A workflow's refusal as a problem: the ApplicationError's type is a refusal code of
    domain.errors, which says the status and the problem type; any other failure is a 409."""
    while isinstance(cause, ActivityError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        kind = DomainError.kind_of(cause.type)
        status = STATUS_OF[kind.refusal] if kind else 409
        slug = kind.problem_slug() if kind else "refused"
        problem = Problem(status, cause.message, slug=slug)
        if cause.details and isinstance(cause.details[0], Mapping):
            problem.extra.update(dict(cause.details[0]))
        return problem
    return Problem(409, str(cause) if cause else "the workflow refused this", slug="refused")


def _update_id_of_call(name: str) -> str | None:
    call = IDEMPOTENT_CALL.get()
    if call is None:
        return None
    digest = hashlib.sha256(f"{call}\n{name}".encode()).hexdigest()[:32]
    return f"{name}-{digest}"


@dataclass(frozen=True)
class Updates:
    """How the API sends updates: the client, how long it waits for an answer (`rpc_seconds`,
    then 503) and who finishes an update not answered in that time (api.update_finisher)."""

    client: Client
    rpc_seconds: float
    finisher: UpdateFinisher | None = None


async def update(
    updates: Updates,
    workflow_id: str,
    name: str,
    arg: Any,
    *,
    workflow: str,
    result_type: type | None = None,
    update_id: str | None = None,
) -> Any:
    """The update's id comes from the caller's Idempotency-Key (when the request has one): a
    retry of an update that went through after its answer timed out (503) gets that update's
    result instead of running the step again. `update_id` names it explicitly instead. An
    update not answered in time is handed to the finisher, which keeps sending it under the
    same id (api.update_finisher)."""
    update_id = update_id or _update_id_of_call(name) or f"{name}-{uuid.uuid4().hex}"
    handle = updates.client.get_workflow_handle(workflow_id)
    try:
        result = await handle.execute_update(
            name,
            arg,
            id=update_id,
            rpc_timeout=timedelta(seconds=updates.rpc_seconds),
            result_type=result_type,
        )
    except WorkflowUpdateFailedError as exc:
        WORKFLOW_MESSAGES.labels(workflow, "update", name, "refused").inc()
        raise _refusal(exc.cause) from exc
    except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as exc:
        if not isinstance(exc, RPCError) or exc.status in ENGINE_AWAY:
            # Not answered within rpc_seconds (the worker or the engine is away): the update may
            # still run, or be lost with its workflow task; the finisher sends it until it is.
            WORKFLOW_MESSAGES.labels(workflow, "update", name, "unavailable").inc()
            if updates.finisher is not None:
                left = UnansweredUpdate(workflow, workflow_id, name, arg, update_id, result_type)
                updates.finisher.finish(left)
            raise engine_unavailable() from exc
        if exc.status == RPCStatusCode.NOT_FOUND:
            # Callers look the business object up first, so the workflow exists: it has finished.
            WORKFLOW_MESSAGES.labels(workflow, "update", name, "finished").inc()
            raise WorkflowNotRunning(
                409, f"{workflow} {workflow_id} is no longer running", slug="refused"
            ) from exc
        if exc.status == RPCStatusCode.FAILED_PRECONDITION:  # the workflow has already finished
            WORKFLOW_MESSAGES.labels(workflow, "update", name, "refused").inc()
            raise Problem(409, f"{workflow} {workflow_id} has finished", slug="refused") from exc
        raise
    WORKFLOW_MESSAGES.labels(workflow, "update", name, "accepted").inc()
    return result
