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
            "A = [1,",  # 1
            "     2]  # fmt: skip",  # 2: no reason
            "B = [1,",  # 3
            "     2]  # fmt: skip # kept aligned: columns",  # 4: reason on the line
            "# kept aligned: one row a case",  # 5
            "C = [1,",  # 6: the reason must be right above the skip, not above the table
            "     2]  # fmt: skip",  # 7
            "# kept aligned: one row a case",  # 8
            "D = [1, 2]  # fmt: skip",  # 9: reason on the line above, but one row is no table
            'E = "# fmt: skip"',  # 10: in a string, not a comment
            "# fmt: off",  # 11: off without a reason
            "F = [1,",  # 12
            "     2]  # fmt: skip (aligned)",  # 13: a reason ruff would not honour, nor do we
            "",
        ]
    )
    assert unexplained_fmt_escapes(source) == [2, 7, 9, 11, 13]


def test_a_fmt_skip_keeps_only_a_table_aligned() -> None:
    source = "\n".join(
        [
            "ROWS = [",  # 1
            "    (1,  2),",  # 2
            "]  # fmt: skip # kept aligned: one row a case",  # 3: a table
            "def f(a: int,",  # 4
            "      b: int) -> None:  # fmt: skip # kept aligned: the fixtures",  # 5: a signature
            "    g(a,",  # 6
            "      b)  # fmt: skip # kept aligned: one call",  # 7: a call
            "X = {'a': 1,  'b': 2}  # fmt: skip # kept aligned: one row",  # 8: one row is no table
            "",
        ]
    )
    assert unexplained_fmt_escapes(source) == [5, 7, 8]


def test_size_limits_by_folder() -> None:
    assert size_limit("models/stock.py") == MODULE_LIMIT
    assert size_limit("worker.py") == MODULE_LIMIT
    assert size_limit("tools/code_shape.py") == MODULE_LIMIT
    assert size_limit("tests/test_ledger.py") == TEST_LIMIT
    assert size_limit("migrations/versions/0002_inventory_core.py") is None
    assert size_limit("docs/conf.py") is None
