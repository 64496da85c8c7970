"""Loaders for FinQA, HotpotQA and MuSiQue into one uniform ``datasets.Dataset`` schema.

Accepted inputs (paper §7.1 uses subsets of the official splits of the three benchmarks):

* **FinQA**: the original release (JSON list of ``{id, pre_text, post_text, table, qa: {question, answer,
  exe_ans, program, gold_inds, ...}}``), the processed JSONL (``{id, question, context, answer, program,
  evidence_indices, gold_value, ...}``, context = pre_text + linearised table + post_text; its answers written
  as Python floats, "464.0" or "1e-05", become "464" and "0.00001", the released string an alias) and the Hub's flat
  copies (``{id, pre_text, post_text, table, question}`` plus ``answer, final_result, program_re, gold_inds: [str]``
  in ``ibm-research/finqa`` or ``answers`` in ``dreamerdeo/finqa``). The gold answer y* of the original and Hub
  formats is the execution result ``exe_ans`` (``final_result``) written with at most 5 decimals, as in the
  processed format and as the official evaluation grades it; the annotated ``qa.answer`` string ("17%") is an
  alias only when it is that number rounded (some disagree with their own program, e.g. "380" for 3.8) and is
  kept in the metadata as ``annotated_answer`` either way.
* **HotpotQA**: the original distractor release (JSON list or JSONL, ``_id``, ``context: [[title, [sent...]]]``,
  ``supporting_facts: [[title, sent_idx]]``) and the Hub's columnar schema (``id``, ``context: {title: [...],
  sentences: [[...]]}``, ``supporting_facts: {title: [...], sent_id: [...]}``).
* **MuSiQue**: JSONL or a JSON list of ``{id, question, answer, answer_aliases, answerable,
  paragraphs: [{idx, title, paragraph_text, is_supporting}], question_decomposition}``.

Each comes from a local file (``.json``, ``.jsonl`` or ``.parquet``, the format the Hub serves), an in-memory ``datasets.Dataset`` / list of dicts, or a Hub dataset
name through ``datasets.load_dataset`` (only when a hub is reachable).

Uniform schema (:func:`features`): ``id, dataset, question, context`` (the linearised text), ``paragraphs``
(``[{title, text}]``, the units truncation works on), ``supporting`` (indices into ``paragraphs`` of the
supporting paragraphs, empty when unknown), ``answer``, ``aliases``, ``metadata`` (a JSON string; decode with
:func:`record_metadata`).

Bad input policy: a malformed *record* (missing/ill-typed field, or any value the converter cannot read) or an
unanswerable one (MuSiQue
``answerable: false``, HotpotQA test items without an answer) is not loaded but **counted** in the returned
:class:`LoadReport` (with file, record index, id, field and reason) and logged as one warning line; it never
raises mid-way. Boolean fields (MuSiQue ``answerable``, ``is_supporting``) are read strictly: true/false,
"true"/"false" or 0/1, anything else is malformed. A malformed *file* (a directory or missing path, not UTF-8 text,
unreadable Parquet, bad JSON, wrong top-level type, a required field missing from every record) raises :class:`DataFormatError` naming the file, the record and the field.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DataFormatError",
    "LoadReport",
    "Problem",
    "features",
    "DATASETS",
    "load_benchmark",
    "read_records",
    "detect_dataset",
    "linearise_paragraphs",
    "convert_record",
    "record_metadata",
    "records_to_dataset",
    "default_data_dir",
]

log = logging.getLogger(__name__)

DATASETS = ("finqa", "hotpotqa", "musique")


def features():
    """The uniform schema as ``datasets.Features``."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "dataset": datasets.Value("string"),
            "question": datasets.Value("string"),
            "context": datasets.Value("string"),
            "paragraphs": [{"title": datasets.Value("string"), "text": datasets.Value("string")}],
            "supporting": [datasets.Value("int32")],
            "answer": datasets.Value("string"),
            "aliases": [datasets.Value("string")],
            "metadata": datasets.Value("string"),
        }
    )


class DataFormatError(ValueError):
    """A whole input file (or object) is unusable; the message names the file, the record and the field."""


@dataclass
class Problem:
    source: str
    index: int
    id: str | None
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: record {self.index} (id={self.id!r}) field {self.field!r}: {self.reason}"


@dataclass
class LoadReport:
    """What a load did: counts of records read, loaded, malformed and unanswerable, with each problem."""

    dataset: str
    source: str
    n_read: int = 0
    n_loaded: int = 0
    n_malformed: int = 0
    n_unanswerable: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.dataset} from {self.source}: read {self.n_read}, loaded {self.n_loaded}, "
            f"malformed {self.n_malformed}, unanswerable {self.n_unanswerable}"
        )

    def __str__(self) -> str:
        lines = [self.summary()] + [f"  - {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"  ... and {len(self.problems) - 20} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "source": self.source,
            "n_read": self.n_read,
            "n_loaded": self.n_loaded,
            "n_malformed": self.n_malformed,
            "n_unanswerable": self.n_unanswerable,
            "problems": [vars(p) for p in self.problems],
        }


class _Skip(Exception):
    def __init__(self, field: str, reason: str, unanswerable: bool = False):
        super().__init__(reason)
        self.field, self.reason, self.unanswerable = field, reason, unanswerable


# --------------------------------------------------------------------------------------------- reading
#: file suffixes read as JSON (a list of records, or one record per line) and as Apache Parquet
JSON_SUFFIXES = (".json", ".jsonl")
PARQUET_SUFFIXES = (".parquet", ".pq")
_FORMATS_HINT = "a .json (list of records), .jsonl (one record per line) or .parquet file"


def _read_parquet(p: Path) -> list[Any]:
    """The rows of a Parquet file as dicts (``pyarrow``, imported only here)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFormatError(
            f"{p}: a Parquet file needs the pyarrow package (pip install pyarrow), which is "
            "not installed; or convert the file to JSON lines"
        ) from None
    try:
        return pq.read_table(p).to_pylist()
    except Exception as e:  # a truncated or foreign file: pyarrow's own error, with the file named
        raise DataFormatError(
            f"{p}: not a readable Parquet file ({type(e).__name__}: {e}); pass {_FORMATS_HINT}"
        ) from None


def read_records(path: str | os.PathLike) -> list[Any]:
    """Read a JSON list (``.json``), JSON lines (``.jsonl``; also detected by content) or Parquet (``.parquet``,
    also detected by its ``PAR1`` magic bytes; the Hub serves its datasets this way) file.

    Raises :class:`DataFormatError` naming the file (and the line / record) for a missing path, a directory, a
    file that is not UTF-8 text (latin-1, a binary format), bad JSON or a wrong top-level type.
    """
    p = Path(path)
    if p.is_dir():
        inside = sorted(str(c.name) for c in p.iterdir() if c.suffix in JSON_SUFFIXES + PARQUET_SUFFIXES)[:5]
        raise DataFormatError(
            f"{p}: is a directory, not a file; pass one file in it"
            + (f" (e.g. {', '.join(inside)})" if inside else f" ({_FORMATS_HINT})")
        )
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file (pass {_FORMATS_HINT}, a datasets.Dataset or a hub name)")
    raw = p.read_bytes()
    if p.suffix.lower() in PARQUET_SUFFIXES or raw[:4] == b"PAR1":
        return _read_parquet(p)
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte order mark (Windows exports) is not part of the JSON
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataFormatError(
            f"{p}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}); JSON must be "
            f"UTF-8: re-encode the file (e.g. `iconv -f latin1 -t utf-8`), or pass {_FORMATS_HINT}"
        ) from None
    stripped = text.lstrip()
    if not stripped:
        raise DataFormatError(f"{p}: the file is empty")
    if stripped[0] not in "[{":
        raise DataFormatError(f"{p}: does not start like JSON (first character {stripped[0]!r}); pass {_FORMATS_HINT}")
    if stripped[0] == "[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        return data
    if stripped[0] == "{" and p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON lines with a .json suffix
        if isinstance(data, dict):
            raise DataFormatError(
                f"{p}: top level is a JSON object with keys {sorted(data)[:8]}; expected a list of records "
                "(a JSON list) or one record per line (JSONL)"
            )
    out = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataFormatError(
                f"{p}: invalid JSON on line {i + 1} (record {len(out)}), column {e.colno}: {e.msg}"
            ) from None
    return out


def detect_dataset(rec: dict) -> str | None:
    """Guess the benchmark from one record's keys."""
    if not isinstance(rec, dict):
        return None
    if "qa" in rec or "program" in rec or "pre_text" in rec:
        return "finqa"
    if "paragraphs" in rec or "answer_aliases" in rec:
        return "musique"
    if "supporting_facts" in rec or ("context" in rec and not isinstance(rec.get("context"), str)):
        return "hotpotqa"
    return None


# --------------------------------------------------------------------------------------------- helpers
def _req(rec: dict, key: str, typ=str, nonempty: bool = True):
    if key not in rec or rec[key] is None:
        raise _Skip(key, "missing")
    v = rec[key]
    if not isinstance(v, typ):
        tn = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise _Skip(key, f"expected {tn}, got {type(v).__name__}")
    if nonempty and typ is str and not v.strip():
        raise _Skip(key, "empty string")
    return v


_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _bool(value, field: str, default: bool | None = None) -> bool:
    """A boolean field read strictly: ``true``/``false`` (JSON), the strings ``"true"``/``"false"`` (any case)
    and ``0``/``1`` (numbers or strings). Anything else (``"no"``, ``2``, a list) makes the record malformed,
    never a silent truthy value; ``None`` (absent) gives ``default`` (malformed when there is none)."""
    if value is None:
        if default is None:
            raise _Skip(field, "missing")
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise _Skip(field, f"expected a boolean (true/false or 0/1), got {value!r}")


def linearise_paragraphs(paragraphs: Sequence[dict], dataset: str) -> str:
    """The context text of a list of ``{title, text}`` paragraphs.

    HotpotQA / MuSiQue: ``"title: text"`` blocks separated by a blank line. FinQA: text lines joined by a
    newline, the table (title ``"table"``, rows ``cell | cell``) set off by blank lines, no titles.
    """
    if dataset == "finqa":
        out = ""
        for p in paragraphs:
            if p["title"] == "table":
                out = out.rstrip("\n") + ("\n\n" if out else "") + p["text"] + "\n\n"
            else:
                out += p["text"] + "\n"
        return out.strip("\n")
    return "\n\n".join((f"{p['title']}: {p['text']}" if p["title"] else p["text"]) for p in paragraphs)


def _linearise(paragraphs: Sequence[dict]) -> str:
    return linearise_paragraphs(paragraphs, "hotpotqa")


# --------------------------------------------------------------------------------------------- FinQA
def _is_noise(t) -> bool:
    return str(t).strip() in ("", ".")


def _finqa_table_lines(table) -> list[str]:
    if not isinstance(table, list) or not all(isinstance(r, list) for r in table):
        raise _Skip("table", "expected a list of rows")
    return [" | ".join(str(c) for c in row) for row in table]


def _render_exe(v) -> str:
    """FinQA's execution result as the gold string: at most 5 decimals (the official rounding), no float noise.

    ``0.17043000000000003`` (a float decoded by ``datasets``' Json type) -> ``"0.17043"``, ``26138609.0`` ->
    ``"26138609"``, ``1e-05`` -> ``"0.00001"``; ``"yes"``/``"no"`` and other strings stay as written.
    """
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        t = v.strip()
        try:
            x = float(t.replace(",", ""))
        except ValueError:
            return t
    else:
        x = float(v)
    if not math.isfinite(x):
        return str(v).strip()
    x = round(x, 5)
    if x == 0:
        return "0"
    return f"{x:.5f}".rstrip("0").rstrip(".")


def _finqa_gold(exe, annotated, exe_field: str, ans_field: str) -> tuple[str, list[str]]:
    """``(answer, aliases)``: y* is the execution result when there is one, the annotated answer an alias if equal."""
    from .verify import finqa_numeric_match

    ann = "" if annotated is None else str(annotated).strip()
    if exe is not None and str(exe).strip():
        answer = _render_exe(exe)
        same = (
            ann
            and ann != answer
            and (
                finqa_numeric_match(ann, answer, percent_scale=False)
                if answer not in ("yes", "no")
                else ann.lower() == answer
            )
        )
        return answer, [ann] if same else []
    if ann:
        return ann, []
    raise _Skip(ans_field, f"missing (neither {exe_field} nor {ans_field})")


def _finqa_paragraphs(pre, post, table):
    """Paragraphs of pre_text, the table, post_text (punctuation-only sentences dropped) and the index maps."""
    tlines = _finqa_table_lines(table)
    # FinQA text_i indexes pre_text + post_text; the table sits between them. Sentences that are only
    # punctuation (the release pads post_text with ".") are dropped, with the indices remapped.
    paragraphs, text_pos, table_pos = [], {}, None
    for i, t in enumerate(pre):
        if not _is_noise(t):
            text_pos[i] = len(paragraphs)
            paragraphs.append({"title": "", "text": str(t).strip()})
    if tlines:
        table_pos = len(paragraphs)
        paragraphs.append({"title": "table", "text": "\n".join(tlines)})
    for j, t in enumerate(post):
        if not _is_noise(t):
            text_pos[len(pre) + j] = len(paragraphs)
            paragraphs.append({"title": "", "text": str(t).strip()})
    return paragraphs, text_pos, table_pos


def _gold_inds_support(gold_inds: dict, text_pos: dict, table_pos) -> set:
    """Supporting paragraphs from FinQA's ``gold_inds`` keys: ``text_i`` -> its sentence, ``table_i`` -> the table."""
    sup = set()
    for key in gold_inds:
        kind, _, num = str(key).partition("_")
        if kind == "text" and num.isdigit() and int(num) in text_pos:
            sup.add(text_pos[int(num)])
        elif kind == "table" and table_pos is not None:
            sup.add(table_pos)
    return sup


def _ws(t) -> str:
    return " ".join(str(t).split())


def _evidence_texts_support(paragraphs, texts) -> set:
    """Supporting paragraphs from evidence *sentences*: the text paragraphs equal to one, and the table when some
    evidence is not a text sentence (FinQA writes a table row as a sentence, "the net revenue of 2019 is ...")."""
    ev = {_ws(t) for t in texts if _ws(t)}
    sup = {i for i, p in enumerate(paragraphs) if p["title"] == "" and _ws(p["text"]) in ev}
    matched = {_ws(paragraphs[i]["text"]) for i in sup}
    if ev - matched:
        sup |= {i for i, p in enumerate(paragraphs) if p["title"] == "table"}
    return sup


def _convert_finqa(rec: dict) -> dict:
    if "qa" in rec:  # original release
        qa = _req(rec, "qa", dict)
        rid = _req(rec, "id")
        question = _req(qa, "question")
        program = qa.get("program") or ""
        exe = qa.get("exe_ans")
        answer, aliases = _finqa_gold(exe, qa.get("answer"), "exe_ans", "qa.answer")
        pre = _req(rec, "pre_text", list, nonempty=False)
        post = _req(rec, "post_text", list, nonempty=False)
        table = rec.get("table") or []
        paragraphs, text_pos, table_pos = _finqa_paragraphs(pre, post, table)
        gold_inds = qa.get("gold_inds") or {}
        if not isinstance(gold_inds, dict):
            raise _Skip(
                "qa.gold_inds", f"expected a dict {{'text_i' | 'table_i': sentence}}, got {type(gold_inds).__name__}"
            )
        sup = _gold_inds_support(gold_inds, text_pos, table_pos)
        context = linearise_paragraphs(paragraphs, "finqa")
        meta = {
            "format": "finqa_original",
            "program": program,
            "gold_value": exe,
            "annotated_answer": qa.get("answer"),
            "table": table,
            "filename": rec.get("filename"),
            "gold_inds": gold_inds,
        }
    elif isinstance(rec.get("context"), str) or not any(k in rec for k in ("pre_text", "post_text", "table")):
        # processed
        rid = _req(rec, "id")
        question = _req(rec, "question")
        context = _req(rec, "context")
        if rec.get("answer") is None or not str(rec.get("answer")).strip():
            raise _Skip("answer", "missing")
        released = str(rec["answer"]).strip()
        # the release writes a whole number as "464.0" and tiny ones as "1e-05" (Python float repr): y* is the
        # same number written as a reader (and the warm prompt's format) would, "464" / "0.00001"; when that
        # rewrite would change the number (more than 5 decimals) the released string is kept
        answer = _render_exe(released)
        try:
            if float(answer) != float(released.replace(",", "")):
                answer = released
        except ValueError:
            answer = released
        program = rec.get("program") or ""
        lines = [ln for ln in context.split("\n")]
        paragraphs, cur_table = [], []
        for ln in lines:
            if " | " in ln:
                cur_table.append(ln)
                continue
            if cur_table:
                paragraphs.append({"title": "table", "text": "\n".join(cur_table)})
                cur_table = []
            if not _is_noise(ln):
                paragraphs.append({"title": "", "text": ln.strip()})
        if cur_table:
            paragraphs.append({"title": "table", "text": "\n".join(cur_table)})
        ev = rec.get("evidence_indices") or {}
        if not isinstance(ev, dict):
            raise _Skip(
                "evidence_indices", f"expected a dict {{'text_i' | 'table_i': sentence}}, got {type(ev).__name__}"
            )
        ev_texts = {_ws(v) for k, v in ev.items() if str(k).startswith("text")}
        sup = {i for i, p in enumerate(paragraphs) if p["title"] == "" and _ws(p["text"]) in ev_texts}
        if any(str(k).startswith("table") for k in ev):
            sup |= {i for i, p in enumerate(paragraphs) if p["title"] == "table"}
        context = linearise_paragraphs(paragraphs, "finqa")
        gv = rec.get("gold_value")
        aliases = [
            a for a in dict.fromkeys([released, str(rec.get("target_answer") or "").strip()]) if a and a != answer
        ]
        meta = {
            "format": "finqa_processed",
            "program": program,
            "gold_value": gv,
            "released_answer": released,
            "formula_value": rec.get("formula_value"),
            "target_answer": rec.get("target_answer"),
            "scale_relation": rec.get("scale_relation"),
            "evidence_indices": ev,
        }
    else:  # the Hub's flat copies: ibm-research/finqa, dreamerdeo/finqa
        rid = _req(rec, "id")
        question = _req(rec, "question")
        pre = _req(rec, "pre_text", list, nonempty=False) if rec.get("pre_text") is not None else []
        post = _req(rec, "post_text", list, nonempty=False) if rec.get("post_text") is not None else []
        table = rec.get("table") or []
        exe_field = "final_result" if "final_result" in rec else "exe_ans"
        ans_field = "answer" if "answer" in rec else "answers"
        exe = rec.get(exe_field)
        answer, aliases = _finqa_gold(exe, rec.get(ans_field), exe_field, ans_field)
        program = rec.get("program_re") or rec.get("program") or ""
        paragraphs, text_pos, table_pos = _finqa_paragraphs(pre, post, table)
        gold = rec.get("gold_inds", rec.get("gold_evidence")) or []
        if isinstance(gold, dict):  # a copy that kept the original {text_i: sentence} dict
            sup = _gold_inds_support(gold, text_pos, table_pos)
        elif isinstance(gold, list):
            sup = _evidence_texts_support(paragraphs, gold)
        else:
            raise _Skip("gold_inds", f"expected a list of evidence sentences, got {type(gold).__name__}")
        context = linearise_paragraphs(paragraphs, "finqa")
        meta = {
            "format": "finqa_hub",
            "program": program,
            "gold_value": exe,
            "annotated_answer": rec.get(ans_field),
            "table": table,
            "gold_inds": gold,
        }
    return {
        "id": str(rid),
        "dataset": "finqa",
        "question": question,
        "context": context,
        "paragraphs": paragraphs,
        "supporting": sorted(sup),
        "answer": answer,
        "aliases": aliases,
        "metadata": meta,
    }


# --------------------------------------------------------------------------------------------- HotpotQA
def _convert_hotpotqa(rec: dict) -> dict:
    rid = rec.get("_id", rec.get("id"))
    if rid is None:
        raise _Skip("_id", "missing (neither _id nor id)")
    question = _req(rec, "question")
    ctx = rec.get("context")
    if ctx is None:
        raise _Skip("context", "missing")
    if isinstance(ctx, dict):  # Hub columnar
        titles, sents = ctx.get("title"), ctx.get("sentences")
        if not isinstance(titles, list) or not isinstance(sents, list) or len(titles) != len(sents):
            raise _Skip("context", "columnar context needs lists 'title' and 'sentences' of equal length")
        pairs = list(zip(titles, sents))
    elif isinstance(ctx, list):
        pairs = []
        for j, item in enumerate(ctx):
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], list)):
                raise _Skip(f"context[{j}]", "expected [title, [sentence, ...]]")
            pairs.append((item[0], item[1]))
    else:
        raise _Skip("context", f"expected a list or a {{title, sentences}} dict, got {type(ctx).__name__}")
    paragraphs = [{"title": str(t), "text": "".join(str(s) for s in ss).strip()} for t, ss in pairs]
    sf = rec.get("supporting_facts")
    if sf is None:
        facts = []  # the test split has none
    elif isinstance(sf, dict):
        titles, sids = sf.get("title"), sf.get("sent_id")
        if not isinstance(titles, list) or not isinstance(sids, list) or len(titles) != len(sids):
            raise _Skip(
                "supporting_facts", "columnar supporting facts need lists 'title' and 'sent_id' of equal length"
            )
        facts = list(zip(titles, sids))
    elif isinstance(sf, list):
        facts = []
        for j, f in enumerate(sf):
            if not (isinstance(f, (list, tuple)) and len(f) == 2):
                raise _Skip(f"supporting_facts[{j}]", f"expected a [title, sentence index] pair, got {f!r}")
            facts.append((f[0], f[1]))
    else:
        raise _Skip(
            "supporting_facts",
            f"expected a list of [title, sentence index] pairs or a {{title, sent_id}} dict, got {type(sf).__name__}",
        )
    for j, (title, sid) in enumerate(facts):
        if not isinstance(title, str):
            raise _Skip(f"supporting_facts[{j}]", f"title {title!r} is not a string")
        if isinstance(sid, bool) or not isinstance(sid, numbers.Integral):
            raise _Skip(f"supporting_facts[{j}]", f"sentence index {sid!r} is not an int")
    sup_titles = {str(t) for t, _ in facts}
    sup = [i for i, p in enumerate(paragraphs) if p["title"] in sup_titles]
    ans = rec.get("answer")
    if ans is None or (isinstance(ans, str) and not ans.strip()):
        raise _Skip("answer", "no gold answer (test split?)", unanswerable=True)
    if not isinstance(ans, str):
        raise _Skip("answer", f"expected str, got {type(ans).__name__}")
    meta = {
        "format": "hotpotqa_columnar" if isinstance(ctx, dict) else "hotpotqa_original",
        "type": rec.get("type"),
        "level": rec.get("level"),
        "supporting_facts": [[str(t), int(s)] for t, s in facts],
    }
    return {
        "id": str(rid),
        "dataset": "hotpotqa",
        "question": question,
        "context": _linearise(paragraphs),
        "paragraphs": paragraphs,
        "supporting": sup,
        "answer": ans.strip(),
        "aliases": [],
        "metadata": meta,
    }


# --------------------------------------------------------------------------------------------- MuSiQue
def _convert_musique(rec: dict, keep_unanswerable: bool = False) -> dict:
    rid = _req(rec, "id")
    question = _req(rec, "question")
    paras = _req(rec, "paragraphs", list, nonempty=False)
    unanswerable = not _bool(rec.get("answerable"), "answerable", default=True)
    if unanswerable and not keep_unanswerable:
        raise _Skip("answerable", "answerable is false", unanswerable=True)
    ans = str(rec.get("answer") or "") if unanswerable else _req(rec, "answer")
    aliases = rec.get("answer_aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _Skip("answer_aliases", "expected a list of strings")
    items = []
    for j, p in enumerate(paras):
        if not isinstance(p, dict) or not isinstance(p.get("paragraph_text"), str):
            raise _Skip(f"paragraphs[{j}]", "expected {idx, title, paragraph_text, is_supporting}")
        idx = p.get("idx", j)
        if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
            raise _Skip(f"paragraphs[{j}].idx", f"expected an int, got {idx!r}")
        _bool(p.get("is_supporting"), f"paragraphs[{j}].is_supporting", default=False)  # malformed if not a boolean
        items.append((idx, p))
    items.sort(key=lambda t: t[0])
    paragraphs = [{"title": str(p.get("title", "")), "text": p["paragraph_text"].strip()} for _, p in items]
    sup = [i for i, (_, p) in enumerate(items) if _bool(p.get("is_supporting"), "is_supporting", default=False)]
    meta = {
        "format": "musique",
        "answerable": not unanswerable,
        "hops": str(rid).split("__")[0],
        "question_decomposition": rec.get("question_decomposition"),
    }
    return {
        "id": str(rid),
        "dataset": "musique",
        "question": question,
        "context": _linearise(paragraphs),
        "paragraphs": paragraphs,
        "supporting": sup,
        "answer": ans.strip(),
        "aliases": [a for a in aliases if a.strip()],
        "metadata": meta,
    }


_CONVERTERS = {"finqa": _convert_finqa, "hotpotqa": _convert_hotpotqa, "musique": _convert_musique}
_REQUIRED = {"finqa": ("id",), "hotpotqa": ("question",), "musique": ("id", "question", "paragraphs")}


def convert_record(rec: dict, dataset: str) -> dict:
    """Convert one raw record to the uniform schema (metadata as a dict). Raises ``ValueError`` if malformed."""
    try:
        return _CONVERTERS[dataset](rec)
    except _Skip as e:
        raise ValueError(f"field {e.field!r}: {e.reason}") from None


def record_metadata(row: dict) -> dict:
    """The metadata of a uniform row as a dict (stored as a JSON string to stay Arrow-friendly)."""
    m = row["metadata"]
    return json.loads(m) if isinstance(m, str) else dict(m)


def _check_dataset(dataset: str) -> str:
    d = dataset.lower().replace("_", "").replace("-", "")
    if d not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not one of {DATASETS}")
    return d


def records_to_dataset(
    records: Iterable[Any],
    dataset: str | None = None,
    *,
    source: str = "<records>",
    strict: bool = False,
    keep_unanswerable: bool = False,
):
    """Convert raw records into the uniform ``datasets.Dataset``; returns ``(dataset, LoadReport)``.

    ``strict=True`` raises :class:`DataFormatError` at the first record that would not be loaded, instead of
    counting it: a malformed one, or an unanswerable one (MuSiQue ``answerable: false``, a HotpotQA record
    without an answer) unless ``keep_unanswerable`` keeps it. So a strict load returns every record or raises.
    ``keep_unanswerable=True`` keeps unanswerable MuSiQue records (answer may then be empty) instead of skipping.
    """
    import datasets

    records = list(records)
    if not records:
        raise DataFormatError(f"{source}: no records")
    if dataset is None:
        kinds = {detect_dataset(r) for r in records[:50]} - {None}
        if len(kinds) != 1:
            raise DataFormatError(
                f"{source}: cannot tell the benchmark from the record keys "
                f"(record 0 keys: {sorted(records[0])[:10] if isinstance(records[0], dict) else type(records[0]).__name__}); "
                f"pass dataset= one of {DATASETS}"
            )
        dataset = kinds.pop()
    dataset = _check_dataset(dataset)
    # a required field missing from every record means the wrong file or format, not bad records
    dicts = [r for r in records if isinstance(r, dict)]
    if not dicts:
        raise DataFormatError(f"{source}: record 0 is a {type(records[0]).__name__}, expected JSON objects")
    for key in _REQUIRED[dataset]:
        if dataset == "finqa" and key == "id":
            continue
        if all(key not in r for r in dicts):
            raise DataFormatError(
                f"{source}: record 0 (and every other) has no field {key!r}; "
                f"is this a {dataset} file? record 0 keys: {sorted(dicts[0])[:12]}"
            )
    if dataset == "hotpotqa" and all(("_id" not in r and "id" not in r) for r in dicts):
        raise DataFormatError(f"{source}: record 0 (and every other) has no field '_id' or 'id'")
    if dataset == "finqa" and all(("qa" not in r and "question" not in r) for r in dicts):
        raise DataFormatError(
            f"{source}: record 0 (and every other) has neither 'qa' (original FinQA) nor "
            f"'question' (processed FinQA); record 0 keys: {sorted(dicts[0])[:12]}"
        )
    report = LoadReport(dataset=dataset, source=source)
    rows = []
    conv = _CONVERTERS[dataset]
    for i, rec in enumerate(records):
        report.n_read += 1
        rid = rec.get("_id", rec.get("id")) if isinstance(rec, dict) else None
        try:
            if not isinstance(rec, dict):
                raise _Skip("<record>", f"expected a JSON object, got {type(rec).__name__}")
            try:
                if keep_unanswerable and dataset == "musique":
                    row = conv(rec, keep_unanswerable=True)
                    report.n_unanswerable += not row["metadata"]["answerable"]
                else:
                    row = conv(rec)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
                # a value no check above foresaw: count the record, never stop the load (or an epoch) here
                raise _Skip("<record>", f"unreadable ({type(e).__name__}: {e})") from None
        except _Skip as e:
            prob = Problem(source, i, None if rid is None else str(rid), e.field, e.reason)
            if strict:
                raise DataFormatError(str(prob)) from None
            report.problems.append(prob)
            if e.unanswerable:
                report.n_unanswerable += 1
            else:
                report.n_malformed += 1
            continue
        row["metadata"] = json.dumps(row["metadata"], default=str)
        rows.append(row)
    report.n_loaded = len(rows)
    if report.problems:
        log.warning("%s", report.summary())
    else:
        log.info("%s", report.summary())
    ds = (
        datasets.Dataset.from_list(rows, features=features())
        if rows
        else datasets.Dataset.from_dict({k: [] for k in features()}, features=features())
    )
    return ds, report


def _is_local_path(source) -> bool:
    """A ``pathlib.Path`` (any ``os.PathLike``) always names a file; a string does when it exists, ends with a
    data-file suffix or starts like a path (``/``, ``./``, ``../``, ``~``); any other string is a Hub name."""
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str):
        return False
    return (
        Path(source).exists()
        or source.lower().endswith(JSON_SUFFIXES + PARQUET_SUFFIXES)
        or source.startswith(("/", "./", "../", "~"))
    )


def load_benchmark(
    source,
    dataset: str | None = None,
    *,
    split: str = "train",
    name: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    keep_unanswerable: bool = False,
    **load_dataset_kwargs,
):
    """Load FinQA / HotpotQA / MuSiQue into the uniform schema; returns ``(datasets.Dataset, LoadReport)``.

    ``source`` is a local ``.json``/``.jsonl``/``.parquet`` path (:func:`read_records`), a ``datasets.Dataset`` (e.g. the Hub copy loaded
    elsewhere), a list of dicts, or a Hub dataset name (e.g. ``"hotpotqa/hotpot_qa"`` with ``name="distractor"``),
    which goes through ``datasets.load_dataset(source, name, split=split)`` and so needs a reachable hub.
    ``dataset`` is detected from the record keys when not given. ``limit`` keeps the first ``limit`` records.
    """
    import datasets

    if _is_local_path(source):
        records = read_records(Path(source).expanduser())
        src = str(source)
        if not isinstance(records, list):
            raise DataFormatError(f"{src}: top level is a {type(records).__name__}, expected a list of records")
    elif isinstance(source, datasets.Dataset):
        records, src = source, f"<datasets.Dataset {source.info.dataset_name or ''} {len(source)} rows>"
    elif isinstance(source, datasets.DatasetDict):
        if split not in source:
            raise DataFormatError(f"DatasetDict has no split {split!r}; splits: {list(source)}")
        records, src = source[split], f"<DatasetDict[{split}]>"
    elif isinstance(source, list):
        records, src = source, "<list>"
    elif isinstance(source, str):
        try:
            hub = datasets.load_dataset(source, name, split=split, **load_dataset_kwargs)
        except Exception as e:  # network / not found: say what to do instead
            raise DataFormatError(
                f"{source}: not a local file and datasets.load_dataset({source!r}, {name!r}, "
                f"split={split!r}) failed ({type(e).__name__}: {e}); pass a local path "
                f"such as ../shared/data/..."
            ) from e
        records, src = hub, f"hub:{source}/{name or ''}[{split}]"
    else:
        raise TypeError(
            f"source must be a path, a datasets.Dataset, a list of dicts or a hub name, got {type(source).__name__}"
        )
    if limit is not None:
        records = (
            records.select(range(min(limit, len(records))))
            if isinstance(records, datasets.Dataset)
            else records[:limit]
        )
    return records_to_dataset(records, dataset, source=src, strict=strict, keep_unanswerable=keep_unanswerable)


def default_data_dir(start: str | os.PathLike | None = None) -> Path | None:
    """Find ``shared/data`` beside the repository (``../shared/data`` from the repo root), or ``None``.

    Honours ``$TSALLIS_REF_DATA``; otherwise walks up from ``start`` (default: this file) looking for a
    ``shared/data`` sibling or a ``../shared/data`` next to a directory holding ``pyproject.toml``.
    """
    env = os.environ.get("TSALLIS_REF_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    here = Path(start or __file__).resolve()
    for d in [here] + list(here.parents):
        for cand in (d / "shared" / "data", d.parent / "shared" / "data"):
            if (cand / "finqa").is_dir() or (cand / "hotpotqa").is_dir():
                return cand
    return None
