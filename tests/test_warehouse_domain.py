"""The warehouse rules as the business states them (waves, packing), then their properties
for any input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.waves import (
    CARRIER_LIMITS,
    Package,
    PickLine,
    PickListLine,
    PickTask,
    build_waves,
    pick_order,
    validate_pack,
)

GROUND, EXPRESS = CARRIER_LIMITS["ground"], CARRIER_LIMITS["express"]
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


# -- waves -----------------------------------------------------------------------------


def task(
    shipment: str, minutes: int, *lines: PickLine, promise: str = "standard", location: str = "DC-A"
) -> PickTask:
    return PickTask(shipment, location, T0 + timedelta(minutes=minutes), tuple(lines), promise)


def test_express_first_then_oldest_then_shipment_id() -> None:
    tasks = [
        task("S-3", 0, PickLine("TEE", 1)),
        task("S-2", 5, PickLine("TEE", 1), promise="express"),
        task("S-1", 0, PickLine("MUG", 1)),
        task("S-4", 9, PickLine("TEE", 1), promise="express"),
    ]
    waves = build_waves(tasks)
    assert [(w.id, w.promise, w.shipments) for w in waves] == [
        ("DC-A-W1", "express", ("S-2", "S-4")),
        ("DC-A-W2", "standard", ("S-1", "S-3")),
    ]


def test_a_wave_sums_its_pick_list_per_sku_and_lot() -> None:
    tasks = [
        task("S-1", 0, PickLine("TEE", 2), PickLine("MILK", 1, lot="L2")),
        task("S-2", 1, PickLine("TEE", 3), PickLine("MILK", 4, lot="L1"), PickLine("MILK", 1, lot="L2")),
    ]
    (wave,) = build_waves(tasks)
    assert wave.pick_list == (
        PickListLine("MILK", "L1", 4),
        PickListLine("MILK", "L2", 2),
        PickListLine("TEE", "", 5),
    )
    assert wave.lines == 5


def test_waves_close_at_the_line_limit_and_never_split_a_shipment() -> None:
    tasks = [
        task("S-1", 0, PickLine("A", 1), PickLine("B", 1)),
        task("S-2", 1, PickLine("C", 1)),
        task("S-3", 2, PickLine("D", 1), PickLine("E", 1)),
        task("S-4", 3, *(PickLine(f"X{i}", 1) for i in range(5))),  # bigger than a wave
    ]
    assert [w.shipments for w in build_waves(tasks, max_lines_per_wave=3)] == [
        ("S-1", "S-2"),
        ("S-3",),
        ("S-4",),
    ]


def test_each_location_gets_its_own_waves() -> None:
    tasks = [task("S-1", 0, PickLine("A", 1), location="DC-B"), task("S-2", 0, PickLine("A", 1))]
    assert [(w.location, w.number, w.shipments) for w in build_waves(tasks)] == [
        ("DC-A", 1, ("S-2",)),
        ("DC-B", 1, ("S-1",)),
    ]


def test_a_shipment_is_picked_once() -> None:
    with pytest.raises(ValueError, match="two pick tasks"):
        build_waves([task("S-1", 0), task("S-1", 1)])


# -- pack ------------------------------------------------------------------------------


def box(weight_g: int = 2_000, dims: tuple[int, int, int] = (400, 300, 200), **lines: int) -> Package:
    return Package(weight_g, *dims, lines=lines)


def test_a_good_pack() -> None:
    assert validate_pack({"TEE": 3, "MUG": 1}, [box(TEE=2), box(TEE=1, MUG=1)], GROUND) == []


def test_packed_must_equal_picked() -> None:
    problems = validate_pack({"TEE": 3, "MUG": 1}, [box(TEE=2, CAP=1)], GROUND)
    assert problems == ["CAP: packed 1, picked 0", "MUG: packed 0, picked 1", "TEE: packed 2, picked 3"]
    assert validate_pack({"TEE": 1}, [], GROUND) == ["no packages", "TEE: packed 0, picked 1"]


def test_weight_length_and_girth_per_service() -> None:
    heavy = box(40_000, TEE=1)
    assert validate_pack({"TEE": 1}, [heavy], GROUND) == [
        "package 1: weighs 40000 g, over the ground limit of 31500 g"
    ]
    assert validate_pack({"TEE": 1}, [heavy], EXPRESS) == []
    # 1 000 + 2 × 700 + 2 × 500 = 3 400 mm: fine by ground, too much for express, in any orientation.
    for dims in [(1_000, 700, 500), (500, 1_000, 700)]:
        assert validate_pack({"TEE": 1}, [box(dims=dims, TEE=1)], GROUND) == []
        assert validate_pack({"TEE": 1}, [box(dims=dims, TEE=1)], EXPRESS) == [
            "package 1: measures 3400 mm length + girth, over the express limit of 3300 mm"
        ]
    too_long = validate_pack({"SKI": 1}, [box(dims=(2_800, 100, 100), SKI=1)], GROUND)
    assert too_long == ["package 1: is 2800 mm long, over the ground limit of 2740 mm"]


def test_a_package_needs_a_size_and_contents() -> None:
    assert validate_pack({"TEE": 1}, [box(0, (0, 300, 200), TEE=1), box()], GROUND) == [
        "package 1: weight_g must be positive",
        "package 1: length_mm must be positive",
        "package 2: is empty",
    ]


# -- properties ------------------------------------------------------------------------


@st.composite
def pick_tasks(draw: st.DrawFn) -> list[PickTask]:
    n = draw(st.integers(0, 25))
    return [
        PickTask(
            shipment=f"S-{i:02}",
            location=draw(st.sampled_from(["DC-A", "DC-B"])),
            created_at=T0 + timedelta(minutes=draw(st.integers(0, 5))),
            lines=tuple(
                PickLine(
                    draw(st.sampled_from(["A", "B", "C"])),
                    draw(st.integers(1, 3)),
                    draw(st.sampled_from(["", "L1"])),
                )
                for _ in range(draw(st.integers(0, 6)))
            ),
            promise=draw(st.sampled_from(["express", "standard"])),
        )
        for i in draw(st.permutations(range(n)))
    ]


@given(pick_tasks(), st.integers(1, 10))
def test_waves_hold_every_task_once_in_pick_order(tasks: list[PickTask], limit: int) -> None:
    waves = build_waves(tasks, max_lines_per_wave=limit)
    by_id = {t.shipment: t for t in tasks}
    listed = [s for w in waves for s in w.shipments]
    assert sorted(listed) == sorted(by_id)
    for location in {t.location for t in tasks}:
        mine = [w for w in waves if w.location == location]
        assert [w.number for w in mine] == list(range(1, len(mine) + 1))
        order = [by_id[s] for w in mine for s in w.shipments]
        assert order == sorted((t for t in tasks if t.location == location), key=pick_order)
        rank = {"express": 0, "standard": 1}  # express first, then oldest, then shipment id
        keys = [(rank[t.promise], t.created_at, t.shipment) for t in order]
        assert keys == sorted(keys)
    for wave in waves:
        members = [by_id[s] for s in wave.shipments]
        assert {t.location for t in members} == {wave.location} and {t.promise for t in members} == {
            wave.promise
        }
        assert wave.lines <= limit or len(members) == 1
        units: dict[tuple[str, str], int] = {}
        for t in members:
            for ln in t.lines:
                units[(ln.sku, ln.lot)] = units.get((ln.sku, ln.lot), 0) + ln.qty
        assert {(p.sku, p.lot): p.qty for p in wave.pick_list} == units
        assert [p.sku for p in wave.pick_list] == sorted(p.sku for p in wave.pick_list)
