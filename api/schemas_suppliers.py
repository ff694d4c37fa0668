"""Response bodies of the supplier routes (api/routes/suppliers.py)."""

from __future__ import annotations

from datetime import date

from pydantic import ConfigDict, Field

from api.schemas import ResponseModel


class LeadTimeVariance(ResponseModel):
    mean: float | None = Field(description="Mean of (first receipt − sent) − quoted lead time, in days.")
    std_dev: float | None = Field(description="Its sample standard deviation (null below two POs).")


class ScorecardCounts(ResponseModel):
    pos: int = Field(description="POs sent in the window.")
    lines: int = Field(description="Their lines.")
    receipts: int = Field(description="Their receipts (whenever received).")
    units: int = Field(description="Units arrived on them: received + damaged.")
    lines_judged: int = Field(description="Lines whose outcome is known: the on-time-in-full denominator.")
    pos_received: int = Field(description="POs with a receipt: the lead-time observations.")


class Scorecard(ResponseModel):
    model_config = ConfigDict(populate_by_name=True)
    supplier: str
    from_: date = Field(alias="from", description="First day of the window (inclusive, UTC).")
    to: date = Field(description="Last day of the window (inclusive, UTC).")
    on_time_in_full: float | None = Field(
        description="Share of judged lines received complete (≥ confirmed, else ordered) by the promised date."
    )
    lead_time_variance_days: LeadTimeVariance
    rejection_rate: float | None = Field(description="(Rejected by QC + damaged) / (received + damaged).")
    counts: ScorecardCounts
