"""Evaluation: suites on third-party data, Bastion's benchmarks, one versioned result format, reports
and comparisons. Sits on top of every other layer; only the `bastion` command line imports it."""

from evals._assisted import VARIANTS, check_variants
from evals._bench import benches, run_bench
from evals._compare import Comparison, Row, compare
from evals._context import ALL_MODES, EvalContext, NoProgress, Progress
from evals._corpora import Corpus, Doc, Query
from evals._errors import DatasetError, EvalError, EvalResultError, UsageError
from evals._markdown import render_markdown
from evals._report import render_html, write_report
from evals._result import SCHEMA, DataVersion, EvalResult, Metric, Series, load_result
from evals._suites import SUITES, Suite, resolve, run_suite
from evals._tune import Label, load_labels, tune

__all__ = [
    "ALL_MODES",
    "SCHEMA",
    "SUITES",
    "VARIANTS",
    "Comparison",
    "Corpus",
    "DataVersion",
    "DatasetError",
    "Doc",
    "EvalContext",
    "EvalError",
    "EvalResult",
    "EvalResultError",
    "Label",
    "Metric",
    "NoProgress",
    "Progress",
    "Query",
    "Row",
    "Series",
    "Suite",
    "UsageError",
    "benches",
    "check_variants",
    "compare",
    "load_labels",
    "load_result",
    "render_html",
    "render_markdown",
    "resolve",
    "run_bench",
    "run_suite",
    "tune",
    "write_report",
]
