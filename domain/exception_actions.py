"""What each exception action's `data` must be: one table, `ACTION_DATA`, action name → the
fields its data has. `POST /v1/exceptions/{id}/resolve` checks a decision's data against it
before the workflow is asked (422 naming the field), and the exception's read model shows it
(`action_schemas`, a JSON Schema an action) so a client knows what to send.

    | action          | data                                                      |
    |-----------------|-----------------------------------------------------------|
    | fix_address     | {ship_to: Address} (domain.holds.Address, every field text |
    |                 | except lat/lon numbers)                                   |
    | confirm_payment | {status: authorized|captured, amount: int > 0,            |
    |                 |  reference: text, method?: text}                          |
    | any other       | no data: `{}`                                             |

Only the shape is checked here; whether the address can be shipped to is the workflow's
question (domain.hold_decisions), so a shipped-to-nowhere fix still waits as a hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.holds import TEXT_FIELDS

MAX_MONEY = 10**12  # minor units, as the orders API takes them


@dataclass(frozen=True)
class DataField:
    """One field of an action's data. `kind`: text, integer, number or address."""

    name: str
    kind: str
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    max_length: int = 200


@dataclass(frozen=True)
class DataProblem:
    loc: tuple[str, ...]  # the field at fault under `data`, e.g. ("ship_to", "city")
    message: str


ADDRESS_FIELDS: tuple[DataField, ...] = (
    *(DataField(name, "text", required=False) for name in TEXT_FIELDS),
    DataField("lat", "number", required=False),
    DataField("lon", "number", required=False),
)

ACTION_DATA: dict[str, tuple[DataField, ...]] = {
    "fix_address": (DataField("ship_to", "address"),),
    "confirm_payment": (
        DataField("status", "text", choices=("authorized", "captured")),
        DataField("amount", "integer", minimum=1),
        DataField("reference", "text"),
        DataField("method", "text", required=False, max_length=40),
    ),
}


def fields_of(action: str) -> tuple[DataField, ...]:
    """The fields of the action's data; () for an action that takes none."""
    return ACTION_DATA.get(action, ())


def data_schema(action: str) -> dict[str, Any]:
    """The action's data as a JSON Schema object (what the read model shows)."""
    return _object_schema(fields_of(action))


def check_data(action: str, data: Mapping[str, Any]) -> list[DataProblem]:
    """Every way `data` is not the action's declared data; [] when it is."""
    return _check_object(fields_of(action), data, ())


# -- the schema ------------------------------------------------------------------------


def _object_schema(fields: tuple[DataField, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in fields},
        "required": [f.name for f in fields if f.required],
        "additionalProperties": False,
    }


def _field_schema(f: DataField) -> dict[str, Any]:
    if f.kind == "address":
        return _object_schema(ADDRESS_FIELDS)
    if f.kind == "number":
        return {"type": ["number", "null"]}
    schema: dict[str, Any] = {"type": "integer" if f.kind == "integer" else "string"}
    if f.choices:
        schema["enum"] = list(f.choices)
    if f.minimum is not None:
        schema["minimum"], schema["maximum"] = f.minimum, MAX_MONEY
    if f.kind == "text":
        schema["maxLength"] = f.max_length
        if f.required and not f.choices:
            schema["minLength"] = 1
    return schema


# -- the check -------------------------------------------------------------------------


def _check_object(
    fields: tuple[DataField, ...], data: Mapping[str, Any], at: tuple[str, ...]
) -> list[DataProblem]:
    known = {f.name: f for f in fields}
    problems = [
        DataProblem(
            (*at, name), "is not a field of this action's data" if not at else "is not an address field"
        )
        for name in data
        if name not in known
    ]
    for f in fields:
        if f.name not in data:
            if f.required:
                problems.append(DataProblem((*at, f.name), "is required"))
            continue
        problems += _check_field(f, data[f.name], (*at, f.name))
    return problems


def _check_field(f: DataField, value: Any, loc: tuple[str, ...]) -> list[DataProblem]:
    if f.kind == "address":
        if not isinstance(value, Mapping):
            return [DataProblem(loc, "must be an address object")]
        return _check_object(ADDRESS_FIELDS, value, loc)
    if f.kind == "number":
        ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        return [] if ok else [DataProblem(loc, "must be a number or null")]
    if f.kind == "integer":
        return _check_integer(f, value, loc)
    return _check_text(f, value, loc)


def _check_integer(f: DataField, value: Any, loc: tuple[str, ...]) -> list[DataProblem]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [DataProblem(loc, "must be an integer")]
    if f.minimum is not None and not f.minimum <= value <= MAX_MONEY:
        return [DataProblem(loc, f"must be between {f.minimum} and {MAX_MONEY}")]
    return []


def _check_text(f: DataField, value: Any, loc: tuple[str, ...]) -> list[DataProblem]:
    if not isinstance(value, str):
        return [DataProblem(loc, "must be text")]
    if f.choices and value not in f.choices:
        return [DataProblem(loc, f"must be one of {list(f.choices)}")]
    if f.required and not value.strip():
        return [DataProblem(loc, "must not be empty")]
    if len(value) > f.max_length:
        return [DataProblem(loc, f"must be at most {f.max_length} characters")]
    return []
