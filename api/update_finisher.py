"""Updates the workflow did not answer in time, finished by the API that sent them.

A process's step commits inside the workflow task that runs its update (a local activity). If
the worker or the engine dies before that task completes, the engine can lose the update: it
was admitted, not yet accepted, and an admitted update lives in the engine's memory. The
caller got a 503 (`rpc_timeout_seconds`), and a caller that does not retry leaves the step
in Postgres and not in the workflow: a shipment's last step shipped with its order's
workflow waiting for it, a receipt's discrepancy never queued. So the API keeps sending an
unanswered update, under the same update id, until the workflow answers it, refuses it or
has finished, for at most `update_finish_seconds`. The same id makes each try that update
(the engine answers an update it knows with its result; one it lost is taken anew), and the
step's key makes it that step if its activity had committed (it answers from its record).
The caller's own retry under its Idempotency-Key is the same update too.

What it cannot cover: an API process that dies while it waits takes its unanswered updates
with it. Then the next step's refusal catches the workflow up (api.shipment_steps) or the
caller's retry does (docs/architecture.md, *A step whose update was lost*)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
import tenacity
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.metrics import UPDATES_FINISHED

log = structlog.get_logger("omniflow.api.update_finisher")

# The engine did not answer (down, restarting, or past the call's deadline): api.temporal
# answers 503 for these, and the finisher tries again.
ENGINE_AWAY = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED}


@dataclass(frozen=True)
class UnansweredUpdate:
    workflow: str  # the process (Order, PurchaseOrder, …), for logs and metrics
    workflow_id: str
    name: str
    arg: Any
    update_id: str
    result_type: type | None = None


def unanswered(exc: BaseException) -> bool:
    """No answer yet (the engine or the worker is away): the update may still run."""
    if isinstance(exc, WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    return isinstance(exc, RPCError) and exc.status in ENGINE_AWAY


def _ending(exc: Exception) -> str:
    if unanswered(exc):
        return "gave_up"  # still no answer when the window closed
    if isinstance(exc, RPCError) and exc.status in (
        RPCStatusCode.NOT_FOUND,
        RPCStatusCode.FAILED_PRECONDITION,
    ):
        return "finished"  # the workflow has ended
    return "failed"


# While the engine is away every step route answers 503; past this many updates in hand, a
# process keeps no more (each holds a task and, while it waits, an RPC): the callers' own
# retries are what is left for those.
MAX_FINISHING = 1000


class UpdateFinisher:
    def __init__(
        self, client: Client, *, window_seconds: float, rpc_seconds: float, most: int = MAX_FINISHING
    ) -> None:
        self.client = client
        self.window_seconds = window_seconds
        self.rpc_seconds = rpc_seconds
        self.most = most
        self._finishing: dict[str, asyncio.Task[str]] = {}  # by update id

    def finish(self, update: UnansweredUpdate) -> None:
        """Keep sending `update` in the background until it is answered (0 s: never). An
        update already in hand (its caller retried under the same key, and met a 503 again)
        is that one task."""
        if self.window_seconds <= 0 or update.update_id in self._finishing:
            return
        if len(self._finishing) >= self.most:
            UPDATES_FINISHED.labels(update.workflow, update.name, "not_kept").inc()
            log.warning("unanswered update not_kept: too many in hand", update_id=update.update_id)
            return
        task = asyncio.create_task(self.finish_now(update))
        self._finishing[update.update_id] = task
        task.add_done_callback(lambda _: self._finishing.pop(update.update_id, None))

    async def finish_now(self, update: UnansweredUpdate) -> str:
        """Send it until answered; how it ended: answered, refused, finished, gave_up, failed."""
        try:
            await self._send_until_answered(update)
            outcome = "answered"
        except WorkflowUpdateFailedError:
            outcome = "refused"  # its step had come through another way meanwhile, say
        except Exception as exc:
            outcome = _ending(exc)
        UPDATES_FINISHED.labels(update.workflow, update.name, outcome).inc()
        say = log.warning if outcome in ("gave_up", "failed") else log.info
        say(
            "unanswered update " + outcome,
            workflow_id=update.workflow_id,
            update=update.name,
            update_id=update.update_id,
        )
        return outcome

    async def _send_until_answered(self, update: UnansweredUpdate) -> None:
        handle = self.client.get_workflow_handle(update.workflow_id)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_delay(self.window_seconds),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10.0),
            retry=tenacity.retry_if_exception(unanswered),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await handle.execute_update(
                    update.name,
                    update.arg,
                    id=update.update_id,
                    rpc_timeout=timedelta(seconds=self.rpc_seconds),
                    result_type=update.result_type,
                )

    async def stop(self) -> None:
        """The app is stopping: what is still unanswered is left to the callers' retries."""
        if self._finishing:
            log.warning("updates left unanswered at shutdown", updates=len(self._finishing))
        tasks = list(self._finishing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
