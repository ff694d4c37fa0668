"""Warehouse work: pick waves and pack checks.

**Waves** (`build_waves`, API `GET /v1/pick-tasks?location=`): a picker walks the aisles
once per wave with one summed pick list, then sorts the units into shipments. Per location,
open pick tasks are taken in the order they must leave:

1. express before standard (`PROMISE_RANK`; a promise we do not know goes last, still listed);
2. then oldest first (`created_at`);
3. then by shipment id, so equal input always gives the same waves.

Waves are filled in that order without skipping ahead (a later task never rides in an
earlier wave than an older one), up to `max_lines_per_wave` pick lines. A shipment is
never split across waves (it is packed at once); one that alone exceeds the limit gets a
wave of its own. Express and standard never share a wave: the summed pick list is walked
to the end before any shipment can be packed, so standard units in an express wave would
delay the express shipments.

**Pack** (`validate_pack`, API `POST /v1/shipments/{id}/pack`): what is packed must be
exactly what was picked, and every package must fit the carrier service (`CARRIER_LIMITS`):
weight, longest side, and girth = length + 2 × width + 2 × height with length the longest
side (the carriers' "length plus girth")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

# -- waves -----------------------------------------------------------------------------

PROMISE_RANK: dict[str, int] = {"express": 0, "standard": 1}


@dataclass(frozen=True)
class PickLine:
    sku: str
    qty: int
    lot: str = ""  # "" lets the picker take any lot (FEFO at the shelf)


@dataclass(frozen=True)
class PickTask:
    """The open pick work of one shipment."""

    shipment: str
    location: str
    created_at: datetime
    lines: tuple[PickLine, ...]
    promise: str = "standard"  # "express" | "standard"


@dataclass(frozen=True)
class PickListLine:
    sku: str
    lot: str
    qty: int


@dataclass(frozen=True)
class Wave:
    location: str
    number: int  # 1, 2, … per location, in the order to pick them
    promise: str
    shipments: tuple[str, ...]  # in pick order
    pick_list: tuple[PickListLine, ...]  # summed per (sku, lot), sorted by sku then lot
    lines: int  # pick lines of its shipments (what `max_lines_per_wave` counts)

    @property
    def id(self) -> str:
        return f"{self.location}-W{self.number}"


def pick_order(task: PickTask) -> tuple[int, str, datetime, str]:
    """The sort key of open pick work at one location (see the module docstring)."""
    rank = PROMISE_RANK.get(task.promise, len(PROMISE_RANK))
    return rank, task.promise if rank == len(PROMISE_RANK) else "", task.created_at, task.shipment


def build_waves(tasks: Sequence[PickTask], max_lines_per_wave: int = 50) -> list[Wave]:
    """Waves of every location, by location code, then wave number."""
    if max_lines_per_wave < 1:
        raise ValueError("a wave holds at least one line")
    seen: set[str] = set()
    for task in tasks:
        if task.shipment in seen:
            raise ValueError(f"shipment {task.shipment} has two pick tasks")
        seen.add(task.shipment)
        if any(ln.qty < 0 for ln in task.lines):
            raise ValueError(f"shipment {task.shipment} picks a negative quantity")

    by_location: dict[str, list[PickTask]] = defaultdict(list)
    for task in tasks:
        by_location[task.location].append(task)

    waves: list[Wave] = []
    for location in sorted(by_location):
        groups: list[list[PickTask]] = []
        lines = 0
        for task in sorted(by_location[location], key=pick_order):
            current = groups[-1] if groups else None
            fits = (
                current is not None
                and current[0].promise == task.promise
                and lines + len(task.lines) <= max_lines_per_wave
            )
            if current is not None and fits:
                current.append(task)
                lines += len(task.lines)
            else:
                groups.append([task])
                lines = len(task.lines)
        waves.extend(_wave(location, number, group) for number, group in enumerate(groups, start=1))
    return waves


def _wave(location: str, number: int, tasks: list[PickTask]) -> Wave:
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for task in tasks:
        for ln in task.lines:
            summed[(ln.sku, ln.lot)] += ln.qty
    return Wave(
        location=location,
        number=number,
        promise=tasks[0].promise,
        shipments=tuple(t.shipment for t in tasks),
        pick_list=tuple(PickListLine(sku, lot, qty) for (sku, lot), qty in sorted(summed.items()) if qty > 0),
        lines=sum(len(t.lines) for t in tasks),
    )


# -- pack ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierLimits:
    service: str
    max_weight_g: int
    max_length_mm: int  # longest side
    max_girth_mm: int  # length + 2 × width + 2 × height


CARRIER_LIMITS: dict[str, CarrierLimits] = {
    "ground": CarrierLimits("ground", max_weight_g=31_500, max_length_mm=2_740, max_girth_mm=4_190),
    "express": CarrierLimits("express", max_weight_g=68_000, max_length_mm=2_740, max_girth_mm=3_300),
}


@dataclass(frozen=True)
class Package:
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    lines: Mapping[str, int]  # sku -> units in this package

    @property
    def longest_mm(self) -> int:
        return max(self.length_mm, self.width_mm, self.height_mm)

    @property
    def girth_mm(self) -> int:
        """Length + 2 × width + 2 × height, with length the longest side whatever the
        packer called it (a carrier measures the box, not the form)."""
        longest = self.longest_mm
        return longest + 2 * (self.length_mm + self.width_mm + self.height_mm - longest)


def validate_pack(picked: Mapping[str, int], packages: Sequence[Package], limits: CarrierLimits) -> list[str]:
    """Every problem of a pack, [] when it may ship: package by package, then the
    picked-versus-packed comparison per SKU (sorted)."""
    problems: list[str] = []
    if not packages:
        problems.append("no packages")
    for i, pkg in enumerate(packages, start=1):
        problems.extend(f"package {i}: {p}" for p in _package_problems(pkg, limits))

    packed: dict[str, int] = defaultdict(int)
    for pkg in packages:
        for sku, qty in pkg.lines.items():
            packed[sku] += qty
    for sku in sorted(set(picked) | set(packed)):
        if packed.get(sku, 0) != picked.get(sku, 0):
            problems.append(f"{sku}: packed {packed.get(sku, 0)}, picked {picked.get(sku, 0)}")
    return problems


def _package_problems(pkg: Package, limits: CarrierLimits) -> list[str]:
    out: list[str] = []
    if not pkg.lines or not any(qty > 0 for qty in pkg.lines.values()):
        out.append("is empty")
    out.extend(f"{sku} has qty {qty}" for sku, qty in sorted(pkg.lines.items()) if qty < 0)
    sizes = {
        "weight_g": pkg.weight_g,
        "length_mm": pkg.length_mm,
        "width_mm": pkg.width_mm,
        "height_mm": pkg.height_mm,
    }
    bad = [name for name, value in sizes.items() if value <= 0]
    out.extend(f"{name} must be positive" for name in bad)
    if bad:
        return out  # limits mean nothing for a box without a size
    if pkg.weight_g > limits.max_weight_g:
        out.append(f"weighs {pkg.weight_g} g, over the {limits.service} limit of {limits.max_weight_g} g")
    if pkg.longest_mm > limits.max_length_mm:
        out.append(
            f"is {pkg.longest_mm} mm long, over the {limits.service} limit of {limits.max_length_mm} mm"
        )
    if pkg.girth_mm > limits.max_girth_mm:
        out.append(
            f"measures {pkg.girth_mm} mm length + girth, over the {limits.service} limit of "
            f"{limits.max_girth_mm} mm"
        )
    return out
