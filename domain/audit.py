"""Who did a human action, as the audit trail records it: the API key that made the request
(its id, role and name), the request id (the `X-Request-Id` the API answered with) and the
route. It travels from the API to the change it records: straight into the route's own
transaction, or in a workflow update's payload to the activity that carries it out."""

# No `from __future__ import annotations`: this dataclass crosses the Temporal data converter
# inside workflow payloads (workflows.contracts), which resolves its field types at run time.

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    key_id: str
    role: str
    name: str
    request_id: str = ""
    route: str = ""  # "POST /v1/purchase-orders/{number}/cancel"
