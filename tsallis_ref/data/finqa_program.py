"""A small, safe interpreter for FinQA programs (Chen et al. 2021), never ``eval``.

FinQA writes the gold computation as a flat program of steps, e.g.
``subtract(5829, 5735), divide(#0, 5735)``, where ``#n`` is the result of step ``n``.
The nested form of the release (``program_re``, e.g. ``divide(3.8, divide(100, 100))``) is accepted too.

Operations (those of the official FinQA executor): ``add subtract multiply divide exp greater``
(``greater`` returns ``"yes"``/``"no"``) and the table operations ``table_sum table_average table_max
table_min`` whose first argument is a table row name (second argument ``none``). Arguments are numbers
(``1,234``, ``$ 12``, ``23.6%`` = 0.236), ``const_X`` (``const_m1`` = -1, ``const_1000`` = 1000) or ``#n``.
As in the official executor, the final result is rounded to 5 decimals.

A program is parsed into a tree first (a tiny recursive-descent parser), then evaluated; any problem
(unknown op, bad argument, forward ``#n`` reference, division by zero, unknown table row) raises
:class:`FinQAProgramError` with the step and the reason. :func:`try_execute` returns ``(value, error)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

__all__ = [
    "FinQAProgramError",
    "parse_program",
    "execute_program",
    "try_execute",
    "str_to_num",
    "table_from_context",
    "BINARY_OPS",
    "TABLE_OPS",
]

Value = Union[float, str]

BINARY_OPS = ("add", "subtract", "multiply", "divide", "exp", "greater")
TABLE_OPS = ("table_sum", "table_average", "table_max", "table_min")


class FinQAProgramError(ValueError):
    """A FinQA program that cannot be parsed or executed (the message names the step and the reason)."""


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple  # of Call | str (raw argument text)


def str_to_num(text: str) -> float | None:
    """Official FinQA number parsing: commas and ``$`` dropped, ``x%`` -> x/100, ``const_m1`` -> -1.

    Returns ``None`` when ``text`` is not a number.
    """
    t = text.replace(",", "").replace("$", "").strip()
    if t.startswith("const_"):
        c = t[len("const_") :]
        c = "-1" if c == "m1" else c
        try:
            return float(c)
        except ValueError:
            return None
    pct = t.endswith("%")
    if pct:
        t = t[:-1].strip()
    try:
        v = float(t)
    except ValueError:
        return None
    if not math.isfinite(v):
        return None
    return v / 100.0 if pct else v


_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
#: deepest nesting of calls accepted (the release's nested programs are 2-3 deep)
MAX_DEPTH = 100


def _show(program: str, width: int = 80) -> str:
    """``program`` for an error message, cut to ``width`` characters."""
    return repr(program) if len(program) <= width else repr(program[:width]) + f"... ({len(program)} characters)"


def _strip_eof(s: str) -> str:
    """Drop the release's trailing ``EOF`` (and the comma before it), in linear time."""
    t = s.rstrip()
    if t.endswith("EOF"):
        t = t[:-3].rstrip()
        if t.endswith(","):
            t = t[:-1].rstrip()
    return t


def _thousands_comma(s: str, i: int) -> bool:
    """Whether the ``,`` at ``s[i]`` is a thousands separator inside a number (``1,234``), not an argument separator.

    The official executor splits arguments on ``", "`` (comma *and* space), so ``add(1,234, 0)`` adds 1234 and 0.
    Here a comma is part of a number when a digit precedes it and exactly three digits follow it (then no digit),
    so ``add(1,2)`` still reads as two arguments.
    """
    return (
        i > 0
        and s[i - 1].isdigit()
        and s[i + 1 : i + 4].isdigit()
        and len(s[i + 1 : i + 4]) == 3
        and not s[i + 4 : i + 5].isdigit()
    )


def parse_program(program: str) -> list[Call]:
    """Parse ``"op(a, b), op(#0, c)"`` (flat) or nested calls into a list of :class:`Call` trees.

    A single left-to-right scan with an explicit stack: linear in the length of the program whatever it holds
    (no backtracking regular expression, no recursion), nesting limited to :data:`MAX_DEPTH`.
    """
    if not isinstance(program, str) or not program.strip():
        raise FinQAProgramError(f"empty program {program!r}")
    s = _strip_eof(program.strip())
    n = len(s)
    steps: list[Call] = []
    i = 0
    while True:
        # one step: op(...)
        while i < n and s[i].isspace():
            i += 1
        m = _IDENT.match(s, i)
        j = m.end() if m else i
        while j < n and s[j].isspace():
            j += 1
        if not m or j >= n or s[j] != "(":
            raise FinQAProgramError(f"expected 'op(' at character {i} of {_show(program)}")
        stack: list[tuple[str, list]] = [(m.group(0).lower(), [])]
        i = start = j + 1
        after_call = False  # the current argument is a nested call that has just closed
        call = None
        while call is None:
            if i >= n:
                raise FinQAProgramError(f"unclosed '(' in {_show(program)}")
            ch = s[i]
            if ch == ")" or (ch == "," and not _thousands_comma(s, i)):
                op, args = stack[-1]
                arg = s[start:i].strip()
                if after_call:
                    if arg:
                        raise FinQAProgramError(
                            f"expected ',' or ')' after a nested call at character {start} of {_show(program)}"
                        )
                elif ch == "," or arg or args:
                    args.append(arg)
                after_call = False
                i = start = i + 1
                if ch == ")":
                    stack.pop()
                    done = Call(op, tuple(args))
                    if stack:
                        stack[-1][1].append(done)
                        after_call = True
                    else:
                        call = done
            elif ch == "(":
                name = s[start:i].strip()
                if after_call or not _IDENT.fullmatch(name):
                    raise FinQAProgramError(f"unexpected '(' at character {i} of {_show(program)}")
                if len(stack) >= MAX_DEPTH:
                    raise FinQAProgramError(
                        f"program nested too deeply to parse (more than {MAX_DEPTH} levels): {_show(program, 60)}"
                    )
                stack.append((name.lower(), []))
                i = start = i + 1
            else:
                i += 1
        steps.append(call)
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            return steps
        if s[i] != ",":
            raise FinQAProgramError(f"expected ',' between steps at character {i} of {_show(program)}")
        i += 1


def _row_values(table: Sequence[Sequence[str]], name: str, step: int) -> list[float]:
    """The numbers of the row called ``name``, looked up as the official executor does.

    The official executor builds ``{row[0]: row[1:]}``, so the row name must match exactly and, when a name
    repeats, the *last* row wins. Only when no row matches exactly, a case- and white-space-insensitive match
    (again the last one) is used. Cells are read like its ``process_row``: ``$`` dropped, text from ``(`` on
    dropped ("-23158 ( 23158 )" -> -23158), then :func:`str_to_num`.
    """
    rows = [r for r in table if r]
    exact = [r for r in rows if str(r[0]).strip() == name.strip()]
    key = " ".join(name.lower().split())
    loose = [r for r in rows if " ".join(str(r[0]).lower().split()) == key]
    if not exact and not loose:
        raise FinQAProgramError(f"step {step}: table row {name!r} not found")
    row = (exact or loose)[-1]
    vals = []
    for cell in row[1:]:
        c = str(cell).replace("$", "").split("(")[0].strip()
        v = str_to_num(c)
        if v is None:
            raise FinQAProgramError(f"step {step}: table row {name!r} has a non-numeric cell {cell!r}")
        vals.append(v)
    if not vals:
        raise FinQAProgramError(f"step {step}: table row {name!r} has no values")
    return vals


def _finite(r, step: int, what: str) -> float:
    """``r`` when it is a finite real number, else :class:`FinQAProgramError` (``inf``, ``nan``, complex)."""
    if isinstance(r, complex) or not math.isfinite(r):
        raise FinQAProgramError(f"step {step}: {what} is not a finite real number ({r})")
    return float(r)


def execute_program(program: str, table: Sequence[Sequence[str]] | None = None, *, round_to: int | None = 5) -> Value:
    """Execute a FinQA program safely and return the last step's value (float, or "yes"/"no").

    ``table`` (list of rows, first cell = row name) is needed only by the ``table_*`` ops.
    Raises :class:`FinQAProgramError` on any problem, including division by zero and a result that is not a
    finite real number (an overflow to ``inf``, ``exp`` of a negative base to a fractional power): every value
    returned, and every intermediate one, is finite.
    """
    steps = parse_program(program)
    results: list[Value] = []

    def arg_value(a, step: int) -> Value:
        if isinstance(a, Call):
            return run(a, step)
        if a.startswith("#"):
            try:
                j = int(a[1:])
            except ValueError:
                raise FinQAProgramError(f"step {step}: bad reference {a!r}") from None
            if not 0 <= j < len(results):
                raise FinQAProgramError(f"step {step}: reference {a!r} to a step not yet computed")
            return results[j]
        v = str_to_num(a)
        if v is None:
            raise FinQAProgramError(f"step {step}: argument {a!r} is not a number, #n or const_X")
        return v

    def num(v: Value, step: int) -> float:
        if isinstance(v, str):
            raise FinQAProgramError(f"step {step}: a yes/no value used in arithmetic")
        return v

    def run(call: Call, step: int) -> Value:
        op = call.op
        if op in TABLE_OPS:
            if table is None:
                raise FinQAProgramError(f"step {step}: {op} needs the table, none was given")
            if len(call.args) < 1 or isinstance(call.args[0], Call):
                raise FinQAProgramError(f"step {step}: {op} needs a row name")
            vals = _row_values(table, call.args[0], step)
            if op == "table_sum":
                r = float(sum(vals))
            elif op == "table_average":
                r = float(sum(vals) / len(vals))
            else:
                r = float(max(vals) if op == "table_max" else min(vals))
            return _finite(r, step, f"{op}({call.args[0]})")
        if op not in BINARY_OPS:
            raise FinQAProgramError(f"step {step}: unknown operation {op!r}")
        if len(call.args) != 2:
            raise FinQAProgramError(f"step {step}: {op} takes 2 arguments, got {len(call.args)}")
        a = num(arg_value(call.args[0], step), step)
        b = num(arg_value(call.args[1], step), step)
        if op == "greater":
            return "yes" if a > b else "no"
        if op == "divide" and b == 0:
            raise FinQAProgramError(f"step {step}: division by zero")
        try:
            r = {
                "add": lambda: a + b,
                "subtract": lambda: a - b,
                "multiply": lambda: a * b,
                "divide": lambda: a / b,
                "exp": lambda: a**b,
            }[op]()
        except (OverflowError, ZeroDivisionError) as e:
            raise FinQAProgramError(f"step {step}: {op}({a}, {b}) failed: {e}") from None
        return _finite(r, step, f"{op}({a}, {b})")

    for i, call in enumerate(steps):
        try:
            results.append(run(call, i))
        except RecursionError:
            raise FinQAProgramError(f"step {i}: program nested too deeply to execute") from None
    out = results[-1]
    if isinstance(out, float) and round_to is not None:
        out = round(out, round_to)
    return out


def try_execute(program: str, table=None, **kw) -> tuple[Value | None, str | None]:
    """``(value, None)`` on success, ``(None, reason)`` on failure; never raises on a bad program."""
    try:
        return execute_program(program, table, **kw), None
    except FinQAProgramError as e:
        return None, str(e)


def table_from_context(context: str) -> list[list[str]]:
    """Recover table rows from a processed FinQA context (lines ``name | v1 | v2``)."""
    return [[c.strip() for c in line.split(" | ")] for line in context.splitlines() if " | " in line]
