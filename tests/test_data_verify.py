"""Verifiers, normalisation, official EM/F1, FinQA numeric match and the safe FinQA interpreter."""

import json
import math

import pytest
from conftest import DATA, needs_data

from tsallis_ref.data import (
    FinQAProgramError,
    execute_program,
    extract_answer,
    finqa_numeric_match,
    hotpot_f1,
    max_over_aliases,
    normalize_answer,
    parse_program,
    relaxed_match,
    reward_exact_match,
    squad_em,
    squad_f1,
    squad_normalize,
    table_from_context,
    try_execute,
)


@pytest.mark.parametrize(
    "gen,expected",
    [
        ("<think>2+2 is 4, so Answer: 5</think>\n\nThe answer is 4.", "4"),
        ("<think>long reasoning</think>Rush", "Rush"),
        ("reasoning...\nAnswer: The Beatles\nextra line", "The Beatles"),
        ("so the final answer is 0.10319.", "0.10319"),
        ("The answer is: Paris", "Paris"),
        ("We get \\boxed{42}", "42"),
        ("ANSWER: **yes**", "yes"),
        ("", ""),
    ],
)
def test_extract_answer(gen, expected):
    assert extract_answer(gen) == expected


def test_squad_normalisation_is_official_and_numeric_safe_variant():
    assert squad_normalize("The  Beatles!") == "beatles"
    assert squad_normalize("-0.05") == "005"  # official behaviour, why we keep a numeric-safe variant
    assert normalize_answer("-0.05") == "-0.05"
    assert normalize_answer("$1,234.5 million.") == "1234.5 million"
    assert normalize_answer("12 %") == "12%"
    assert normalize_answer("An Apple-pie") == "applepie"


def test_reward_exact_match_and_relaxed_match():
    assert reward_exact_match("the Rush", "Rush") == 1.0
    assert reward_exact_match("Rush band", "Rush") == 0.0
    assert reward_exact_match("J. Doe", "Jane Doe", ["J. Doe"]) == 1.0
    assert relaxed_match("I think it is Rush, the band", "Rush")
    assert not relaxed_match("Yes", "no")
    assert relaxed_match("10", "1")  # the paper's rule is a plain substring test
    assert not relaxed_match("0.1", "-0.1")
    assert not relaxed_match("anything", "")


def test_official_em_f1_and_aliases():
    assert squad_em("The Rush.", "rush") == 1.0
    assert squad_f1("Rush band", "Rush") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert squad_f1("nothing", "Rush") == 0.0
    assert hotpot_f1("yes it is", "yes") == 0.0  # official HotpotQA: a yes/no gold needs exactly yes/no
    assert hotpot_f1("Rush band", "Rush") == pytest.approx(squad_f1("Rush band", "Rush"))
    assert hotpot_f1("no", "yes") == 0.0
    assert hotpot_f1("yes", "yes") == 1.0
    assert max_over_aliases(squad_em, "J. Doe", "Jane Doe", ["J. Doe"]) == 1.0
    assert max_over_aliases(squad_f1, "Jane", "Jane Doe", ["J. Doe"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "pred,gold,ok",
    [
        ("17%", 0.17043, True),  # percentage, rounded to the shown precision
        ("0.17", 0.17043, True),
        ("17.04", 0.17043, True),  # percentage written without its sign
        ("The answer is 9813.67", 9813.66667, True),
        ("$ 1,234", 1234.0, True),
        ("0.2", "20%", True),
        ("0.2", 0.17043, False),  # rounding is accepted only with >= 2 significant digits
        ("1.3%", 0.01328, True),
        ("1e-05", 1e-05, True),  # scientific notation
        ("2.5", 2.25, False),
        ("17.1", 17.043, False),
        ("-3.2%", -0.03219, True),
        ("3.2%", -0.03219, False),  # sign matters
        ("25", 0.17043, False),
        ("yes", "yes", True),
        ("no", "yes", False),
        ("no number here", 1.0, False),
    ],
)
def test_finqa_numeric_match(pred, gold, ok):
    assert finqa_numeric_match(pred, gold) is ok


def test_finqa_numeric_match_without_percent_scale():
    assert not finqa_numeric_match("17.04", 0.17043, percent_scale=False)


TABLE = [
    ["", "2019", "2018"],
    ["net revenue", "$ 1,200", "$ 1,000"],
    ["costs", "700", "$ -650 ( 650 )"],
    ["notes", "1", "n/a"],
]


@pytest.mark.parametrize(
    "program,expected",
    [
        ("subtract(1200, 1000), divide(#0, 1000)", 0.2),
        ("divide(3.8, divide(100, 100))", 3.8),  # nested program_re form
        ("multiply(22.5, const_1000), divide(#0, 53620)", 0.41962),
        ("add(const_m1, 2)", 1.0),
        ("divide(9896, 23.6%)", 41932.20339),
        ("exp(1.1, 2)", 1.21),
        ("table_sum(net revenue, none)", 2200.0),
        ("table_average(net revenue, none), divide(#0, const_100)", 11.0),
        ("table_max(costs, none)", 700.0),
        ("table_min(costs, none)", -650.0),
        ("table_min(Net  Revenue, none)", 1000.0),
        ("greater(700, 650)", "yes"),
        ("subtract(5, 7), greater(#0, 0)", "no"),
        ("add(1, 2), EOF", 3.0),
    ],
)
def test_execute_program(program, expected):
    assert execute_program(program, TABLE) == expected


@pytest.mark.parametrize(
    "program,msg",
    [
        ("divide(1, 0)", "division by zero"),
        ("subtract(1, 1), divide(5, #0)", "step 1: division by zero"),
        ("add(#1, 2)", "reference '#1' to a step not yet computed"),
        ("__import__(os)", "unknown operation '__import__'"),
        ("add(1, os.system('x'))", "unknown operation 'system'|not a number|unexpected"),
        ("add(1)", "takes 2 arguments"),
        ("add(1, 2", "unclosed"),
        ("table_sum(missing row, none)", "not found"),
        ("table_sum(notes, none)", "non-numeric cell 'n/a'"),
        ("", "empty program"),
        ("add(1, 2) subtract(3, 1)", "expected ','"),
        ("greater(2, 1), add(#0, 1)", "yes/no value used in arithmetic"),
    ],
)
def test_execute_program_errors(program, msg):
    with pytest.raises(FinQAProgramError, match=msg):
        execute_program(program, TABLE)
    v, err = try_execute(program, TABLE)
    assert v is None and err


def test_table_op_needs_table_and_parse_tree():
    with pytest.raises(FinQAProgramError, match="needs the table"):
        execute_program("table_sum(net revenue, none)")
    steps = parse_program("add(1, 2), subtract(#0, const_1)")
    assert [s.op for s in steps] == ["add", "subtract"] and steps[1].args == ("#0", "const_1")
    assert table_from_context("a b\nnet revenue | 1 | 2\n") == [["net revenue", "1", "2"]]


@needs_data
def test_interpreter_agrees_with_real_finqa_programs():
    orig = json.load(open(DATA / "finqa/train_20_original.json"))
    agree = 0
    for r in orig:
        v, err = try_execute(r["qa"]["program"], r["table"])
        g = r["qa"]["exe_ans"]
        agree += (v == g) if isinstance(g, str) else (err is None and math.isclose(v, g, abs_tol=1e-5))
    assert agree == len(orig)  # 20/20, including table_max and greater
    rows = [json.loads(x) for x in open(DATA / "finqa/train_250_processed.jsonl")]
    agree = sum(
        math.isclose(
            try_execute(r["program"], table_from_context(r["context"]))[0] or float("nan"),
            round(r["formula_value"], 5),
            abs_tol=1e-5,
        )
        for r in rows
    )
    assert agree == len(rows)


# ------------------------------------------------------------------ audit: tolerance, negatives, official executor
@pytest.mark.parametrize(
    "pred,gold,ok",
    [
        ("0.1706", 0.17043, False),  # wrong at the 4th decimal it shows (a 1e-3 relative tolerance accepted it)
        ("9813", 9813.66667, False),  # truncated, not rounded: 9813.66667 rounds to 9814
        ("9814", 9813.66667, True),
        ("1235.7", 1234.5, False),  # off by 1.2 (relative 1e-3 accepted it)
        ("0.170434", 0.17043, True),  # more digits than the gold: equal at the official 5 decimals
        ("0.170436", 0.17043, False),  # rounds to 0.17044
        ("17.0432%", 0.17043, True),  # the 5-decimal comparison is in the gold's unit
        ("2.3", 2.25, True),  # half-up rounding of an exact half (Python's round gives 2.2)
        ("2.2", 2.25, True),  # half-to-even is a rounding of 2.25 too
        ("0.13", 0.125, True),
        ("0.2", 0.2, True),  # one significant digit is fine when it is exact
        ("3", 3.0, True),
    ],
)
def test_finqa_numeric_match_precision_is_the_shown_one(pred, gold, ok):
    assert finqa_numeric_match(pred, gold) is ok


@pytest.mark.parametrize(
    "text,value",
    [
        ("-23158 ( 23158 )", -23158.0),  # FinQA tables restate a negative in parentheses
        ("$ -23158 ( 23158 )", -23158.0),
        ("-3.2% ( 3.2% )", -3.2),
        ("(3.2)", -3.2),  # an answer that is just an accounting negative
        ("$ ( 1,234 )", -1234.0),
        ("( 3.2 % )", -3.2),
        ("0.17 (17%)", 17.0),  # a parenthesised restatement of a different number is left alone
        ("revenue (2019) was 5", 5.0),
    ],
)
def test_parse_number_reads_financial_negatives(text, value):
    from tsallis_ref.data import parse_number

    assert parse_number(text)[0] == value


def test_finqa_numeric_match_accepts_a_financial_negative():
    assert finqa_numeric_match("$ -23158 ( 23158 )", -23158.0)
    assert finqa_numeric_match("(3.2%)", -0.032)
    assert not finqa_numeric_match("(3.2%)", 0.032)


def test_table_ops_use_the_official_row_lookup():
    # the official executor builds {row[0]: row[1:]}: with a repeated row name the LAST row wins
    table = [["", "2019", "2018"], ["total", "1", "2"], ["other", "5", "6"], ["total", "10", "20"]]
    assert execute_program("table_sum(total, none)", table) == 30.0
    # an exact name wins over a case/space-insensitive one
    table2 = [["Total", "1", "2"], ["total", "10", "20"], ["TOTAL", "100", "200"]]
    assert execute_program("table_sum(total, none)", table2) == 30.0
    assert execute_program("table_sum(ToTal, none)", table2) == 300.0  # no exact row: the last insensitive match


def test_deeply_nested_program_is_a_counted_failure_not_a_crash():
    prog = "add(1, " * 3000 + "1" + ")" * 3000
    v, err = try_execute(prog)
    assert v is None and "nested" in err
    with pytest.raises(FinQAProgramError, match="nested"):
        execute_program(prog)


# ------------------------------------------------------------------ audit: crafted programs, thousands, overflow
def _answered_within(program: str, seconds: float):
    import time

    t0 = time.perf_counter()
    v, err = try_execute(program)
    dt = time.perf_counter() - t0
    assert dt < seconds, f"{len(program)}-character program took {dt:.1f} s"
    return v, err


@pytest.mark.parametrize(
    "program",
    [
        "add(" + "a" * 60000 + "!(1,2), 3)",  # the backtracking name search (about 90 s before the fix)
        "add(" + " " * 60000 + "x(1, 2), 3)",
        "add(1, 2)," + " " * 60000 + "x",  # white space before a bad step / an EOF
        "add(1, 2)" + "," + " " * 60000 + "EOF!",
        "add(" + "1, " * 20000 + "2)",
        "add(1, " * 20000 + "1" + ")" * 20000,  # deep nesting: refused, never a RecursionError
    ],
)
def test_crafted_60kb_programs_are_answered_in_linear_time(program):
    # a linear parser answers in milliseconds; the bound is generous for a loaded machine, and the quadratic
    # parser needed about 6 s at 16 KB, so about 90 s here
    assert len(program) >= 60000
    v, err = _answered_within(program, 2.0)
    assert (v is None) != (err is None)


def test_long_valid_program_runs_in_linear_time():
    prog = "add(1, 2), " + ", ".join(f"add(#{i}, 1)" for i in range(6000))
    assert len(prog) > 60000
    v, err = _answered_within(prog, 2.0)
    assert err is None and v == 6003.0


@pytest.mark.parametrize(
    "program,expected",
    [
        ("add(1,234, 0)", 1234.0),  # the official executor splits arguments on ", " only
        ("add(1,234,567, 1)", 1234568.0),
        ("add($ 1,234, 1,000)", 2234.0),
        ("subtract(1,234.5, 0.5)", 1234.0),
        ("add(1,2)", 3.0),  # not a thousands group: two arguments, as before
        ("add(1,23, 4)", None),  # "1", "23", "4": three arguments
    ],
)
def test_thousands_separators_in_arguments(program, expected):
    v, err = try_execute(program)
    if expected is None:
        assert v is None and "takes 2 arguments, got 3" in err
    else:
        assert err is None and v == expected


@pytest.mark.parametrize(
    "program",
    [
        "exp(10, 300), multiply(#0, #0)",
        "multiply(1e200, 1e200)",
        "add(1e308, 1e308)",
        "subtract(-1e308, 1e308)",
        "divide(1e308, 1e-308)",
        "exp(10, 400)",
        "exp(-8, 0.5)",
    ],
)
def test_every_result_is_finite_or_an_error(program):
    v, err = try_execute(program)
    assert v is None and ("finite" in err or "failed" in err)
    with pytest.raises(FinQAProgramError):
        execute_program(program)


def test_table_op_overflow_is_an_error():
    with pytest.raises(FinQAProgramError, match="finite"):
        execute_program("table_sum(big, none)", [["big", "1e308", "1e308"]])
