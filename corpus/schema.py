"""The rows every step writes: the document and removed-page schemas and the quality-metric report columns.

One place, imported by the pure build pipeline (which fills rows) and by the writers (which store them)."""

from __future__ import annotations

import pyarrow as pa

FINEWEB_COLUMNS = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("date", pa.string()),
        ("dump", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
    ]
)

# FineWeb's published columns, in FineWeb's order (HuggingFaceFW/fineweb): what RUN/final/docs holds
# (corpus.steps.publish); our other columns go to the RUN/final/extras sidecar, joined by id.
FINEWEB_SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("id", pa.string()),
        ("dump", pa.string()),
        ("url", pa.string()),
        ("date", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("token_count", pa.int64()),
    ]
)

# Per-document values for the report (corpus.report.page): `chars` is the length of the extracted text (what the
# filters saw, before C4's line removal and normalization); each metric column is a value a quality filter
# compared to a threshold, keyed by QualityChain.measure's "stage.value" name. Null where that check did not
# run (the document was dropped earlier, or the filter is disabled).
QUALITY_METRIC_COLUMNS = {
    "rep_dup_para_frac": "gopher_repetition.dup_para_frac",
    "rep_dup_line_char_frac": "gopher_repetition.dup_line_char_frac",
    "rep_top_2_gram_frac": "gopher_repetition.top_2_gram_frac",
    "rep_dup_5_gram_frac": "gopher_repetition.duplicated_5_n_grams_frac",
    "gopher_words": "gopher_quality.n_non_symbol_words",
    "gopher_avg_word_length": "gopher_quality.avg_word_length",
    "gopher_hash_ratio": "gopher_quality.hash_ratio",
    "gopher_alpha_words_ratio": "gopher_quality.alpha_words_ratio",
    "gopher_stop_words": "gopher_quality.n_stop_words",
    "fineweb_line_punct_ratio": "fineweb.line_punct_ratio",
    "fineweb_short_line_ratio": "fineweb.short_line_ratio",
    "fineweb_char_dup_ratio": "fineweb.char_dup_ratio",
    "fineweb_list_ratio": "fineweb.list_ratio",
}
_MEASURE_FIELDS = [("chars", pa.int64())] + [(name, pa.float64()) for name in QUALITY_METRIC_COLUMNS]
DOC_SCHEMA = pa.schema([*FINEWEB_COLUMNS, *_MEASURE_FIELDS])

# What a person needs to judge a drop (the report's samples per reason, corpus.report.data): the start of the
# extracted text, clipped to TEXT_HEAD_CHARS (null when the page was dropped before extraction), and the
# language-ID result (null before language ID ran), which decides `language` drops against language.threshold.
TEXT_HEAD_CHARS = 300
REMOVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("file_path", pa.string()),
        *_MEASURE_FIELDS,
        ("text_head", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
    ]
)


def quality_metric_row(metrics: dict) -> dict:
    """QualityChain.measure's values as the metric columns (NaN, e.g. an undefined mean, becomes null)."""
    row = {}
    for column, key in QUALITY_METRIC_COLUMNS.items():
        value = metrics.get(key)
        row[column] = None if value is None or value != value else float(value)
    return row


def with_stage_columns(schema: pa.Schema, extra_fields: list[tuple[str, pa.DataType]]) -> pa.Schema:
    """`schema` plus the columns of the enabled stages that declare some (corpus.build.stage.Stage.columns), in
    stage order; the default stages declare none, so the default schemas are DOC_SCHEMA and REMOVED_SCHEMA."""
    return pa.schema([*schema, *extra_fields]) if extra_fields else schema
