"""The shape guard, run by `make shape` (part of `make test`): three rules ruff does not enforce.

1. No `# fmt: skip` (nor `# fmt: off`) without a reason. The formatter owns the layout; a
   table that reads better aligned may keep one if the same line, or the line above, says why
   in a comment that starts `kept aligned:`, e.g.

       }  # fmt: skip # kept aligned: one row an event, its debit and credit columns read down

   (ruff honours `# fmt: skip` followed by another comment; `# fmt: skip (why)` it does not.)
   And it must be a table: the statement it sits on is a list, tuple, dict or set literal of
   more than one row (an assignment, an expression or a return of one). A signature, a call or
   one record kept on long lines is not a table: the formatter lays those out.
2. No module over MODULE_LIMIT lines in the code (domain/ workflows/ activities/ api/ models/
   runtime/ client/ cli/ bench/ tools/ worker.py), nor over TEST_LIMIT in tests/. Migrations are
   exempt: each is one file by design, written once and never edited.
3. `duplicates` (a command some machines have, see README "Code shape") reports nothing
   substantive. A row is substantive unless any of these holds:
   - it is marked `boilerplate` (what it shares is punctuation, keywords, a folder-wide shape);
   - a side is under migrations/ (histories: the same DDL shape repeats by design, never edited);
   - both sides are in tests/ and it is a `shape` row (arrange/act/assert of the same form with
     other values is how tests read; an identical run in tests still counts);
   - it is a `shape` row shorter than SHAPE_MIN_LINES lines (short same-shape runs are mostly
     call sites of one helper with other arguments);
   - its two files are on the allow-list DUPLICATES_ALLOWED (tools/duplicates_allowed.txt), one
     accepted pair a line, with the reason.
   Where `duplicates` is not on PATH the check says "duplicates not installed: skipped".

Exit status 1 with every offender printed, 0 when all three hold.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# -- 1. fmt: skip --------------------------------------------------------------------------

FMT_ESCAPE = re.compile(r"#\s*fmt:\s*(skip|off|on)\b")
JUSTIFIED = re.compile(r"#\s*kept aligned:\s*\S")

# TEMP(issue 12): files whose owners are reshaping them and still carry unexplained
# fmt-skip comments. Each entry goes when its file has none left.
TEMP_FMT_SKIP: frozenset[str] = frozenset()


def _comments(source: str) -> dict[int, str]:
    """Line number (1-based) -> the comment on it. A file that does not tokenize (someone is
    halfway through an edit) is read line by line instead: a `#` in a string may then count."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return {n: line[line.index("#") :] for n, line in enumerate(source.splitlines(), 1) if "#" in line}
    return {tok.start[0]: tok.string for tok in tokens if tok.type == tokenize.COMMENT}


def unexplained_fmt_escapes(source: str) -> list[int]:
    """The 1-based numbers of the lines with a `# fmt: skip/off/on` comment that neither it nor a
    comment-only line above explains with `# kept aligned: why`, or that does not close a table
    (a source that does not parse is judged by its comments alone)."""
    comments = _comments(source)
    lines = source.splitlines()
    table_ends = _table_ends(source)
    tables = set(range(1, len(lines) + 2)) if table_ends is None else table_ends
    found = []
    for n, comment in sorted(comments.items()):
        escape = FMT_ESCAPE.search(comment)
        if escape is None:
            continue
        same_line = JUSTIFIED.search(comment[escape.end() :]) is not None
        above = (
            n >= 2
            and lines[n - 2].lstrip().startswith("#")
            and JUSTIFIED.search(comments.get(n - 1, "")) is not None
        )
        if not (same_line or above) or n not in tables:
            found.append(n)
    return found


TABLE_LITERALS = (ast.List, ast.Tuple, ast.Dict, ast.Set)


def _table_ends(source: str) -> set[int] | None:
    """The last lines of statements that are tables: a collection literal of more than one row,
    assigned, returned or standing alone. None when the source does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    ends = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return)):
            value = node.value
            if (
                isinstance(value, TABLE_LITERALS)
                and value.end_lineno is not None
                and value.end_lineno > value.lineno
            ):
                ends.add(value.end_lineno)
    return ends


# -- 2. module size -----------------------------------------------------------------------

# 400: a module a reader holds in their head in one sitting, about one idea.
MODULE_LIMIT = 400
# 500 for tests: a test module is a flat list of scenarios and formatted request bodies and
# expected tables spread over lines, so it may be a little longer; past 500 it mixes themes.
TEST_LIMIT = 500
CODE_DIRS = (
    "domain",
    "workflows",
    "activities",
    "api",
    "models",
    "runtime",
    "client",
    "cli",
    "bench",
    "tools",
)
CODE_FILES = ("worker.py",)
EXEMPT_DIRS = ("migrations",)

# TEMP(issue 12): over the limit, being split by their owners. Each entry goes when its file fits.
TEMP_OVER_LIMIT: frozenset[str] = frozenset()


def size_limit(path: str) -> int | None:
    """The most lines `path` may have, None where no limit applies."""
    top = path.split("/", 1)[0]
    if top in EXEMPT_DIRS:
        return None
    if top == "tests":
        return TEST_LIMIT
    if top in CODE_DIRS or path in CODE_FILES:
        return MODULE_LIMIT
    return None


# -- 3. duplicates ------------------------------------------------------------------------

SHAPE_MIN_LINES = 10
DUPLICATES_ALLOWED = ROOT / "tools" / "duplicates_allowed.txt"
ROW = re.compile(r"^(D\d+)\s+(\S+?):(\d+)-(\d+)\s+~\s+(\S+?):(\d+)-(\d+)(.*)$")


@dataclass(frozen=True)
class Side:
    path: str
    first: int
    last: int

    @property
    def lines(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Row:
    text: str
    a: Side
    b: Side
    shape: bool
    boilerplate: bool

    @property
    def lines(self) -> int:
        return max(self.a.lines, self.b.lines)

    @property
    def pair(self) -> frozenset[str]:
        return frozenset((self.a.path, self.b.path))


def parse_rows(output: str) -> list[Row]:
    """The pair rows of `duplicates` output (the count line and the `left out:`/`incomplete:`
    lines are not rows)."""
    rows = []
    for line in output.splitlines():
        m = ROW.match(line.strip())
        if m is None:
            continue
        tail = m.group(8).split()
        rows.append(
            Row(
                text=line.strip(),
                a=Side(m.group(2), int(m.group(3)), int(m.group(4))),
                b=Side(m.group(5), int(m.group(6)), int(m.group(7))),
                shape="shape" in tail,
                boilerplate="boilerplate" in tail,
            )
        )
    return rows


def parse_allowed(text: str) -> dict[frozenset[str], str]:
    """`a.py ~ b.py  # why` a line; blank lines and lines starting with # are passed over. A pair
    without a reason is an error: the point of the list is the reason."""
    allowed: dict[frozenset[str], str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pair, _, reason = line.partition("#")
        paths = [p.strip() for p in pair.split("~")]
        if len(paths) != 2 or not all(paths) or not reason.strip():
            raise ValueError(f"duplicates_allowed.txt:{n}: want `a.py ~ b.py  # reason`, got {raw!r}")
        allowed[frozenset(paths)] = reason.strip()
    return allowed


def why_not_substantive(row: Row, allowed: dict[frozenset[str], str]) -> str | None:
    """None when the row is substantive, else the reason it is not."""
    sides = (row.a.path, row.b.path)
    if row.boilerplate:
        return "boilerplate"
    if any(p.startswith("migrations/") for p in sides):
        return "in a migration"
    if row.shape and all(p.startswith("tests/") for p in sides):
        return "same shape, both in tests"
    if row.shape and row.lines < SHAPE_MIN_LINES:
        return f"same shape, under {SHAPE_MIN_LINES} lines"
    if row.pair in allowed:
        return f"allowed: {allowed[row.pair]}"
    return None


def run_duplicates() -> str | None:
    exe = shutil.which("duplicates")
    if exe is None:
        return None
    done = subprocess.run(  # noqa: S603 - our own fixed arguments, the command found on PATH
        [exe, "--repo", str(ROOT), "--most", "200", "--seconds", "120"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return done.stdout + done.stderr


# -- the run ------------------------------------------------------------------------------


def python_files() -> list[str]:
    """Tracked and untracked-but-not-ignored .py files, as repo-relative paths."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({p for p in out.splitlines() if (ROOT / p).is_file()})


def check_fmt_skips(files: Iterable[str]) -> list[str]:
    problems = []
    for path in files:
        if path in TEMP_FMT_SKIP:
            continue
        source = (ROOT / path).read_text(encoding="utf-8")
        problems += [
            f"{path}:{n}: `# fmt: skip` not on a table with `# kept aligned: why`"
            for n in unexplained_fmt_escapes(source)
        ]
    return problems


def check_sizes(files: Iterable[str]) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    for path in files:
        limit = size_limit(path)
        if limit is None:
            continue
        n = len((ROOT / path).read_text(encoding="utf-8").splitlines())
        if path in TEMP_OVER_LIMIT:
            if n <= limit:
                notes.append(f"{path}: {n} lines, within {limit} now: drop it from TEMP_OVER_LIMIT")
        elif n > limit:
            problems.append(f"{path}: {n} lines, over the limit of {limit}: split it by theme")
    return problems, notes


def check_duplicates() -> tuple[list[str], list[str]]:
    output = run_duplicates()
    if output is None:
        return [], ["duplicates not installed: skipped"]
    allowed = parse_allowed(DUPLICATES_ALLOWED.read_text(encoding="utf-8"))
    rows = parse_rows(output)
    problems = [
        f"{r.text}  (duplicated code: make it one helper)"
        for r in rows
        if why_not_substantive(r, allowed) is None
    ]
    notes = [line for line in output.splitlines() if line.startswith(("incomplete:", "(+"))]
    used = {r.pair for r in rows}
    notes += [
        f"duplicates_allowed.txt: {' ~ '.join(sorted(p))} no longer reported: drop it"
        for p in allowed
        if p not in used
    ]
    return problems, notes


def main() -> int:
    files = python_files()
    fmt = check_fmt_skips(files)
    sizes, size_notes = check_sizes(files)
    dups, dup_notes = check_duplicates()
    for title, problems in (
        ("fmt: skip without a reason", fmt),
        ("modules over the size limit", sizes),
        ("substantive duplicates", dups),
    ):
        if problems:
            print(f"shape: {title}:")
            print("\n".join(f"  {p}" for p in problems))
    for note in size_notes + dup_notes:
        print(f"shape: {note}")
    failed = bool(fmt or sizes or dups)
    print("shape: FAILED" if failed else "shape: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
