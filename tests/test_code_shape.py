"""The shape guard's rules (tools/code_shape.py), on made-up input: `make shape` runs it on the tree."""

from __future__ import annotations

import pytest

from tools.code_shape import (
    MODULE_LIMIT,
    TEST_LIMIT,
    parse_allowed,
    parse_rows,
    size_limit,
    unexplained_fmt_escapes,
    why_not_substantive,
)

OUTPUT = """\
5 pairs of places (12 files read), each sharing runs of 6 or more identical or same-shape lines
D1 models/a.py:10-24 ~ models/b.py:40-54 (+2 more runs)
D2 api/x.py:1-12 ~ api/y.py:5-16 shape
D3 tests/t1.py:3-20 ~ tests/t2.py:7-24 shape
D4 migrations/versions/0001.py:3-12 ~ models/a.py:30-39
D5 api/x.py:30-37 ~ api/y.py:50-57 shape
D6 domain/p.py:1-20 ~ domain/q.py:1-20 shape boilerplate
(+3 more pairs)
left out: 2 runs of 6 lines that stand in more than 8 places each (too common to list)
"""


def test_rows_are_parsed_with_their_markers() -> None:
    rows = parse_rows(OUTPUT)
    assert [r.text.split()[0] for r in rows] == ["D1", "D2", "D3", "D4", "D5", "D6"]
    first = rows[0]
    assert (first.a.path, first.a.first, first.a.last, first.b.path, first.lines) == (
        "models/a.py",
        10,
        24,
        "models/b.py",
        15,
    )
    assert not first.shape and not first.boilerplate
    assert rows[1].shape and not rows[1].boilerplate
    assert rows[5].shape and rows[5].boilerplate


def test_what_counts_as_substantive() -> None:
    rows = {r.text.split()[0]: r for r in parse_rows(OUTPUT)}
    verdicts = {name: why_not_substantive(row, {}) for name, row in rows.items()}
    assert verdicts == {
        "D1": None,  # the same 15 lines in two models
        "D2": None,  # the same 12-line shape in two routes
        "D3": "same shape, both in tests",
        "D4": "in a migration",
        "D5": "same shape, under 10 lines",
        "D6": "boilerplate",
    }
    allowed = parse_allowed("# accepted\n\nmodels/b.py ~ models/a.py  # the client mirrors the API\n")
    assert why_not_substantive(rows["D1"], allowed) == "allowed: the client mirrors the API"


def test_an_allowed_pair_needs_a_reason() -> None:
    with pytest.raises(ValueError, match=r"want `a\.py ~ b\.py  # reason`"):
        parse_allowed("models/a.py ~ models/b.py\n")


def test_a_fmt_skip_needs_a_kept_aligned_reason() -> None:
    source = "\n".join(
        [
            "A = [1,  2]  # fmt: skip",  # 1: no reason
            "B = [1,  2]  # fmt: skip # kept aligned: columns",  # 2: reason on the line
            "# kept aligned: one row a case",  # 3
            "C = [1,  2]  # fmt: skip",  # 4: reason on the line above
            'D = "# fmt: skip"',  # 5: in a string, not a comment
            "# fmt: off",  # 6: off without a reason
            "E = 1  # fmt: skip (aligned)",  # 7: a reason ruff would not honour, nor do we
            "",
        ]
    )
    assert unexplained_fmt_escapes(source) == [1, 6, 7]


def test_size_limits_by_folder() -> None:
    assert size_limit("models/stock.py") == MODULE_LIMIT
    assert size_limit("worker.py") == MODULE_LIMIT
    assert size_limit("tools/code_shape.py") == MODULE_LIMIT
    assert size_limit("tests/test_ledger.py") == TEST_LIMIT
    assert size_limit("migrations/versions/0002_inventory_core.py") is None
    assert size_limit("docs/conf.py") is None
