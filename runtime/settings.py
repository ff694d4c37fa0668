"""Settings from the environment: `OMNIFLOW_*`, plus the conventional `DATABASE_URL` and
`TEMPORAL_ADDRESS`. The same variables configure `make run`, the compose file and CI."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.contracts import ExceptionPolicyInput


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIFLOW_", extra="ignore", populate_by_name=True)

    # External servers. When unset, `omniflow dev` starts embedded ones.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "OMNIFLOW_DATABASE_URL"),
        description="Postgres URL (postgresql://user:pass@host:port/db). Unset: embedded Postgres.",
    )
    temporal_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "OMNIFLOW_TEMPORAL_ADDRESS"),
        description="Temporal frontend host:port. Unset: embedded Temporal dev server.",
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace.")
    task_queue: str = Field(default="omniflow", description="Temporal task queue the worker polls.")

    # The embedded development stack.
    data_dir: Path = Field(
        default=Path(".omniflow"), description="Where embedded Postgres and Temporal keep data."
    )
    api_host: str = Field(default="127.0.0.1", description="Interface the API binds to.")
    api_port: int = Field(default=8000, description="API port.")
    temporal_port: int = Field(default=7233, description="Embedded Temporal gRPC port.")
    ui_port: int = Field(default=8233, description="Embedded Temporal Web UI port.")
    pg_port: int = Field(default=55432, description="Embedded Postgres port (loopback only).")
    temporal_ui_url: str | None = Field(default=None, description="Temporal Web UI URL shown to people.")

    # Security and API behaviour.
    admin_key: SecretStr | None = Field(
        default=None, description="Bootstrap admin API key (created if missing)."
    )
    max_body_bytes: int = Field(default=1_048_576, description="Largest accepted request body (413 above).")
    idempotency_ttl_hours: int = Field(default=24, description="How long Idempotency-Key responses are kept.")
    idempotency_in_flight_seconds: int = Field(
        default=60, description="After this, an unfinished Idempotency-Key is considered abandoned."
    )
    rpc_timeout_seconds: float = Field(default=10.0, description="Wait for workflow updates before 503.")
    update_finish_seconds: float = Field(
        default=120.0,
        ge=0,
        description="After a 503, keep sending the unanswered update this long (0: never; api/update_finisher.py).",
    )

    # Rate limits (api/rate_limits.py), per API key and route class; per client IP without a
    # valid key. A limit is `<count>/<period>` ("600/minute", "20/second"). The defaults are
    # far above what a channel or the benchmarks send; an operator sets real ones.
    rate_limits_enabled: bool = Field(default=True, description="Answer 429 past the limits below.")
    rate_limit_reads: str = Field(default="60000/minute", description="GETs per key.")
    rate_limit_writes: str = Field(default="60000/minute", description="POST/PUT/PATCH/DELETE per key.")
    rate_limit_long_polls: str = Field(
        default="6000/minute", description="Long-polls (`wait` > 0 on the change feed or pick tasks) per key."
    )
    rate_limit_long_polls_concurrent: int = Field(
        default=100, ge=1, description="Long-polls one key may hold open at once, per API process."
    )
    rate_limit_anonymous: str = Field(
        default="6000/minute", description="Requests without a valid key, per client IP."
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where the counts live (a `limits` storage URI): memory:// counts per API "
        "process; redis://host:6379 shares them across replicas.",
    )

    @field_validator("rate_limit_reads", "rate_limit_writes", "rate_limit_long_polls", "rate_limit_anonymous")
    @classmethod
    def _a_limit(cls, value: str) -> str:
        parse(value)  # ValueError names what is wrong
        return value

    # Exception queues (the human waits): SLA per kind, then escalate; default action after the limit.
    exception_sla_seconds: dict[str, int] = Field(
        default={
            "receipt_discrepancy": 86_400,
            "count_variance": 86_400,
            "address_invalid": 14_400,
            "payment_pending": 3_600,
            "fraud_review": 7_200,
            "backorder_aging": 86_400,
            "short_pick": 3_600,
            "po_approval": 86_400,
            "supplier_unconfirmed": 172_800,
            "bill_mismatch": 172_800,
            "return_approval": 86_400,
            "refund_approval": 86_400,
            "refund_overdue": 172_800,
            "channel_sync_failed": 900,
        },
        description="SLA per exception kind in seconds (JSON object); unknown kinds use 86400.",
    )
    exception_max_escalations: int = Field(
        default=3, description="Escalations before the default action runs."
    )
    exception_max_escalations_by_kind: dict[str, int] = Field(
        default={"payment_pending": 2},
        description="Per-kind override of the escalation limit (JSON object), e.g. how long an unpaid order waits.",
    )
    exception_default_actions: dict[str, str] = Field(
        default={
            "address_invalid": "cancel",
            "payment_pending": "cancel",
            "fraud_review": "cancel",
            "backorder_aging": "keep_waiting",
            "short_pick": "cancel",
            "po_approval": "reject",
            "supplier_unconfirmed": "keep_waiting",
            "bill_mismatch": "dispute",
            "return_approval": "reject",
            "refund_approval": "approve",
            "refund_overdue": "refund_now",
            "channel_sync_failed": "retry_now",
        },
        description="Action taken at the limit, per exception kind (JSON object).",
    )
    backorder_aging_seconds: int = Field(
        default=259_200, description="A backordered order opens `backorder_aging` after this long."
    )
    backorder_recheck_seconds: int = Field(
        default=3_600, description="A backordered order re-checks stock this often even without news."
    )
    ship_by_seconds: dict[str, int] = Field(
        default={"standard": 172_800, "express": 86_400},
        description="KPI report: an order ships on time within this long of being received, per promise (JSON object).",
    )
    count_tolerance_units: int = Field(
        default=2, description="Cycle count: variance (units) posted without approval."
    )
    count_tolerance_value: int = Field(
        default=5_000, description="Cycle count: variance value (minor units) posted without approval."
    )

    # Purchasing.
    po_approval_threshold: int = Field(
        default=500_000, description="A purchase order worth more (minor units) waits in `po_approval`."
    )
    po_over_receipt_tolerance: float = Field(
        default=0.05,
        description="A receipt may exceed the expected units by this fraction before it is a discrepancy.",
    )
    bill_quantity_tolerance: float = Field(
        default=0.0, description="Three-way match: a bill may exceed the units kept by this fraction."
    )
    bill_value_tolerance: float = Field(
        default=0.02,
        description="Three-way match: a bill's unit cost may differ from the PO's by this fraction.",
    )
    replenishment_interval_seconds: int = Field(
        default=86_400, description="How often the replenishment schedule runs."
    )
    replenishment_demand_days: int = Field(
        default=28,
        description="Replenishment: the window of recent shipments the demand rate is measured over.",
    )

    # Returns.
    return_parcel_days: float = Field(
        default=30,
        gt=0,
        description="An authorized return expires when no parcel arrives within this many days.",
    )
    return_keep_threshold: int = Field(
        default=0,
        ge=0,
        description="A return line worth no more (minor units) is refunded without a parcel (0: never).",
    )
    return_fee_free_outcomes: list[str] = Field(
        default=["store_credit", "replacement"],
        description="Outcomes that pay no return fee (JSON list).",
    )
    refund_approval_threshold: int = Field(
        default=50_000,
        ge=0,
        description="A return refund over this (minor units) waits in `refund_approval` (0: never).",
    )
    store_credit_bonus_percent: int = Field(
        default=10, ge=0, le=100, description="Extra store credit, in percent, for choosing credit over cash."
    )

    # Channel publishing.
    publish_allowed_hosts: list[str] = Field(
        default=[],
        description="Hosts a publishing webhook may name besides loopback (JSON list); nothing else is called.",
    )
    publish_fail_after_seconds: int = Field(
        default=300, gt=0, description="A channel's deliveries failing this long open `channel_sync_failed`."
    )

    # Operations.
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto", description="auto = console on a terminal, JSON otherwise."
    )
    log_level: str = Field(default="INFO", description="Log level.")
    db_pool_size: int = Field(
        default=20, description="Connections kept per process (and as many more under bursts)."
    )
    api_key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Each API process reuses an API key's lookup this long; a key revoked on another "
        "replica stops working there within this time (at once where it was revoked). 0 = every request.",
    )
    intake_stock_cache_seconds: float = Field(
        default=0.2,
        ge=0,
        le=5,
        description="Each API process reuses its read of the stock that turns away an order without "
        "backorders (409 insufficient-stock) this long: a unit given back is offered at intake at most "
        "this much later (the reservation stays exact). 0 = read on every such order.",
    )
    order_start_sweep_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How often each API process starts the workflows of orders still `received` 30 s "
        "after intake (their start did not reach the engine and the channel did not send them again); "
        "0 = never.",
    )
    intake_pending_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How long an order taken and not yet sourced holds back, at intake, the units it "
        "will reserve, so that the next orders without backorders are not promised them too "
        "(0 = only what is reserved counts). An order whose workflow never started stops holding "
        "them after this.",
    )
    payment_gateway: str = Field(
        default="sandbox",
        description="Payment gateway the worker charges through (activities/gateways: `sandbox`).",
    )
    reservation_batching: bool = Field(
        default=True,
        description="Order sourcing reserves through the worker's group-reservation batcher (concurrent "
        "orders for the same SKUs share one transaction); false: each step reserves in its own transaction.",
    )
    workflow_sandbox: bool = Field(
        default=False,
        description="Run workflows in the Temporal SDK's sandbox, which fails a workflow that reads "
        "the clock, draws random numbers or does I/O. The test suite runs every workflow in it (and "
        "replays every recorded history in it); the worker runs without it, which costs less per "
        "workflow task (tests/test_workflow_determinism.py says what keeps workflows deterministic).",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="Interface the worker's Prometheus endpoint binds to."
    )
    worker_metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="The worker's Prometheus endpoint (/metrics: Temporal SDK metrics and ours); 0: none.",
    )
    worker_max_concurrent_activities: int = Field(default=100, description="Activity slots per worker.")
    worker_max_concurrent_workflow_tasks: int = Field(
        default=100, description="Workflow task slots per worker."
    )

    def exception_policy(self, kind: str, default_action: str) -> ExceptionPolicyInput:
        return ExceptionPolicyInput(
            sla_seconds=self.exception_sla_seconds.get(kind, 86_400),
            max_escalations=self.exception_max_escalations_by_kind.get(kind, self.exception_max_escalations),
            default_action=self.exception_default_actions.get(kind, default_action),
        )

    def order_policies(self) -> dict[str, ExceptionPolicyInput]:
        """The exception policy of every kind an order can wait in."""
        kinds = ("address_invalid", "payment_pending", "fraud_review", "backorder_aging", "short_pick")
        return {kind: self.exception_policy(kind, "cancel") for kind in kinds}

    def purchase_policies(self) -> dict[str, ExceptionPolicyInput]:
        """The exception policy of every kind a purchase order can wait in."""
        return self.policies_of(
            po_approval="reject",
            supplier_unconfirmed="keep_waiting",
            receipt_discrepancy="accept",
            bill_mismatch="dispute",
        )

    def return_policies(self) -> dict[str, ExceptionPolicyInput]:
        """The exception policy of every kind a return can wait in."""
        return self.policies_of(
            return_approval="reject", refund_approval="approve", refund_overdue="refund_now"
        )

    def policies_of(self, **default_actions: str) -> dict[str, ExceptionPolicyInput]:
        """The policy of each kind named, with the default action it falls back to."""
        return {kind: self.exception_policy(kind, action) for kind, action in default_actions.items()}

    @property
    def pg_data_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir / "temporal.sqlite"

    def as_env(self) -> dict[str, str]:
        """These settings as environment variables, for child processes."""
        env: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, (dict, list)):
                value = json.dumps(value)
            alias = info.validation_alias
            var = alias.choices[0] if isinstance(alias, AliasChoices) else f"OMNIFLOW_{name.upper()}"
            env[str(var)] = str(value)
        return env


@lru_cache
def get_settings() -> Settings:
    return Settings()
