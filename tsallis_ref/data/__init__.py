"""Benchmarks of the paper (§7): FinQA, HotpotQA, MuSiQue loaders, warm/cold prompts, verifiers and metrics.

>>> from tsallis_ref.data import normalize_answer, relaxed_match, pass_at_k
>>> relaxed_match("The answer is Rush.", "rush")
True
>>> round(pass_at_k(16, 4, 1), 4)
0.25

``datasets`` / ``transformers`` / ``torch`` are imported lazily (only by the loaders). The evaluation harness that
samples from a model is :mod:`tsallis_ref.evaluation` (this package imports nothing of the trainer stack).
"""

from .answer_format import DEFAULT_ANSWER_FORMAT, THINK_END, AnswerFormat
from .examples import HUB_IDS, SPLIT_ALIASES, SPLIT_FILES, load_examples, resolve_source
from .finqa_program import (
    FinQAProgramError,
    execute_program,
    parse_program,
    str_to_num,
    table_from_context,
    try_execute,
)
from .loaders import (
    DATASETS,
    DataFormatError,
    LoadReport,
    Problem,
    convert_record,
    default_data_dir,
    detect_dataset,
    features,
    linearise_paragraphs,
    load_benchmark,
    read_records,
    record_metadata,
    records_to_dataset,
)
from .metrics import aggregate, maj_at_k, majority_vote, pass_at_k
from .prompts import (
    ANSWER_FORMATS,
    COLD_TEMPLATE,
    WARM_TEMPLATES,
    build_prompt,
    make_counter,
    to_training_examples,
    truncate_paragraphs,
    warm_template,
)
from .verify import (
    END_OF_RATIONALE_MARKERS,
    exact_match,
    extract_answer,
    finqa_numeric_match,
    hotpot_f1,
    max_over_aliases,
    musique_f1,
    normalize_answer,
    parse_number,
    relaxed_match,
    reward_exact_match,
    squad_em,
    squad_f1,
    squad_normalize,
)

__all__ = [
    "FinQAProgramError",
    "execute_program",
    "parse_program",
    "str_to_num",
    "table_from_context",
    "try_execute",
    "DATASETS",
    "DataFormatError",
    "LoadReport",
    "Problem",
    "convert_record",
    "default_data_dir",
    "detect_dataset",
    "features",
    "linearise_paragraphs",
    "load_benchmark",
    "read_records",
    "record_metadata",
    "records_to_dataset",
    "AnswerFormat",
    "DEFAULT_ANSWER_FORMAT",
    "THINK_END",
    "aggregate",
    "maj_at_k",
    "majority_vote",
    "pass_at_k",
    "ANSWER_FORMATS",
    "COLD_TEMPLATE",
    "WARM_TEMPLATES",
    "build_prompt",
    "make_counter",
    "to_training_examples",
    "truncate_paragraphs",
    "warm_template",
    "END_OF_RATIONALE_MARKERS",
    "exact_match",
    "extract_answer",
    "finqa_numeric_match",
    "hotpot_f1",
    "max_over_aliases",
    "musique_f1",
    "normalize_answer",
    "parse_number",
    "relaxed_match",
    "reward_exact_match",
    "squad_em",
    "squad_f1",
    "squad_normalize",
    "HUB_IDS",
    "SPLIT_ALIASES",
    "SPLIT_FILES",
    "load_examples",
    "resolve_source",
]
