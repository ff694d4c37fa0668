"""What every step route of a durable process needs: the caller, the database to check the
object exists (404 first), and its workflow taking the step as an update within the
configured RPC timeout (the update's id from the request's Idempotency-Key, api.temporal);
and the audit trail's `actor` (who asks, the request id, the route), which travels in the
update to the activity that writes the audit row (docs/audit.md).

No `from __future__ import annotations` here: FastAPI reads the fields' dependency types off
the subclasses' generated __init__, in the route modules, which need not import them."""

from dataclasses import dataclass
from typing import Any

from api.audit_trail import AuditDep
from api.auth import CurrentPrincipal
from api.deps import EngineDep, SettingsDep, TemporalDep, UpdatesDep
from api.temporal import update
from domain.audit import Actor


@dataclass
class ProcessSteps:
    engine: EngineDep
    temporal: TemporalDep
    settings: SettingsDep
    who: CurrentPrincipal
    audit: AuditDep
    updates: UpdatesDep

    @property
    def actor(self) -> Actor:
        return self.audit.actor

    async def send(
        self,
        workflow_id: str,
        name: str,
        arg: object,
        *,
        workflow: str,
        result_type: Any,
        update_id: str | None = None,
    ) -> Any:
        """The step as its workflow's update, and its answer (decoded as `result_type`);
        refusals and timeouts become problems there. The update's id is the request's
        (from its Idempotency-Key) unless `update_id` names it."""
        return await update(
            self.updates,
            workflow_id,
            name,
            arg,
            workflow=workflow,
            result_type=result_type,
            update_id=update_id,
        )
