"""PII detection and replacement with Presidio, behind a cheap gate that does not change the findings.

Presidio's pattern recognizers run with a blank English spaCy pipeline saved to disk (no spaCy model is
on PyPI); `pii.spacy_model` names a real model (package or path) to enable PERSON and other NER types.

Recognizers (`pii.recognizers`): `corpus` (default) is ours from corpus/pii/recognizers.py in Presidio's
AnalyzerEngine and registry (Presidio's e-mail recognizer, our phone, card, IBAN, SSN and IP recognizers);
`presidio` is Presidio's defaults on whole documents, the reference of the figures in BENCHMARKS.md.

The gate: every recognizer needs a tell-tale character pattern — `@` for e-mail, two colons or a dotted digit
run for IPs, a digit run with enough digits for one of the document's phone regions, 12 digits for cards, 9 for
SSNs, two letters before digits for IBANs (one pass, see _trigger_spans). Presidio runs only on windows of
`context_chars` around such candidates (cut at whitespace, overlapping windows merged), asked only for the
entity types the window can hold. Tests compare gated findings with our recognizers on whole documents.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from corpus.config import ConfigError, PiiConf
from corpus.io.offline_tldextract import make_tldextract_offline

GATED_TYPES = {"EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"}
# Triggers (each a superset of what our recognizer for the type needs, docs/pii.md):
# - e-mail: "@" with a local-part character before it and a word character after it;
# - one pass over digit runs (digits joined by up to 4 non-word characters, "x" or "ー": every separator the
#   phonenumbers matcher and our card, SSN and IPv4 patterns accept) classifies each run: phone when it has
#   enough digits for one of the document's regions, card from 12 digits, SSN from 9, IPv4 when dotted, IBAN
#   when two letters come right before it;
# - IPv6: two colons at most four hex digits apart (every IPv6 form has them).
DIGIT_RUN = re.compile(r"\d(?:[\W_xX\u30fc]{0,4}\d)*")
IPV6_TRIGGER = re.compile(r":[0-9A-Fa-f]{0,4}:")
EMAIL_LOCAL_CHARS = set("!#$%&'*+-/=?^_`{|}~")
PLUS_LEAD = 10  # the matcher's lead ("(", "[", "+" with punctuation) is at most this long
MAX_WINDOW_CHARS = 4000
# FineWeb replaces e-mails with this and IPs with addresses from documentation/benchmark ranges.
FAKE_EMAIL = "email@example.com"
FAKE_IPS = ("198.51.100.23", "203.0.113.42", "192.0.2.117", "198.18.0.99")
FIXED = {
    "PHONE_NUMBER": "555-0100",
    "CREDIT_CARD": "0000-0000-0000-0000",
    "IBAN_CODE": "XX00 0000 0000 0000",
    "US_SSN": "000-00-0000",
}
EXAMPLE_EMAIL = re.compile(r"@(?:[\w.-]+\.)?(?:example\.(?:com|net|org)|[\w.-]+\.(?:example|test|invalid|localhost))$",
                           re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Finding:
    start: int
    end: int
    entity_type: str
    score: float


class SpacyModelError(ConfigError):
    """`pii.spacy_model` names no installed spaCy model."""


def check_spacy_model(name: str) -> None:
    """Raise SpacyModelError unless `name` is an installed spaCy model package or a model folder. Presidio would
    `pip download` a missing model, on every executor; callers on the driver check before any work starts."""
    import spacy

    if spacy.util.is_package(name) or (Path(name) / "config.cfg").is_file():
        return
    raise SpacyModelError(
        f"pii.spacy_model={name!r} is neither an installed spaCy model package nor a model folder (with a "
        f"config.cfg). Install the model on the driver and every executor (pip install <its wheel>), give a "
        f"folder path, or unset pii.spacy_model to run the pattern recognizers only. Nothing is downloaded.")


def _spacy_model(name: str | None) -> str:
    """What Presidio loads: the configured model, checked, or a blank English pipeline."""
    if not name:
        return _blank_pipeline_path()
    check_spacy_model(name)
    return name


_BLANK_PIPELINE: list[str] = []


def _blank_pipeline_path() -> str:
    """A blank English pipeline saved once per process to a private temp folder (mkdtemp: mode 0700 and an
    unguessable name; a fixed shared path in /tmp could be planted or swapped by another user), removed at exit."""
    if not _BLANK_PIPELINE:
        import atexit
        import shutil

        import spacy

        path = tempfile.mkdtemp(prefix="corpus-spacy-blank-en-")
        atexit.register(shutil.rmtree, path, True)
        spacy.blank("en").to_disk(path)
        _BLANK_PIPELINE.append(path)
    return _BLANK_PIPELINE[0]


def _import_presidio_without_ml_stacks() -> None:
    """Import presidio_analyzer without transformers and torch, when nothing in this process imported them yet.

    Presidio's package imports its transformers NLP engine (transformers, then torch) whether or not it is used:
    3 to 4 s of the 5.5 s a Python worker spent loading Presidio, paid by every worker of a `corpus pii` run
    (measured on the demo: most of its wall time). A blank pipeline and our pattern recognizers use neither, so
    a `None` entry in sys.modules makes Presidio's and thinc's guarded imports fail ("not installed"); the entries
    are removed afterwards, so a later `import torch` in the same process works as usual. Only for a blank
    pipeline: a named spaCy model may be a transformer one, which needs them (same trick as
    corpus.build.word_tokenizer._import_spacy_without_torch).
    """
    import sys

    blocked = [name for name in ("transformers", "torch") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import presidio_analyzer.nlp_engine  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def build_analyzer(spacy_model: str | None, recognizers: str = "corpus", phone_leniency: int = 1,
                   phone_context_leniency: int | None = 0):
    """Presidio's AnalyzerEngine; with `recognizers="corpus"` ours replace Presidio's for the same types."""
    if not spacy_model:
        _import_presidio_without_ml_stacks()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from corpus.pii.recognizers import REPLACED_PRESIDIO, corpus_recognizers

    make_tldextract_offline()  # Presidio's e-mail recognizer calls tldextract
    model = _spacy_model(spacy_model)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    if recognizers == "corpus":
        for name in REPLACED_PRESIDIO:
            analyzer.registry.remove_recognizer(name)
        for recognizer in corpus_recognizers(phone_leniency, phone_context_leniency):
            analyzer.registry.add_recognizer(recognizer)
    return analyzer


def _trigger_spans(text: str, entities: list[str], phone_min: tuple[int, int]) -> list[tuple[int, int, str]]:
    want = set(entities)
    spans: list[tuple[int, int, str]] = [(0, len(text), e) for e in entities if e not in GATED_TYPES]
    if "EMAIL_ADDRESS" in want:
        i = text.find("@")
        while i != -1:
            if 0 < i < len(text) - 1 and (text[i - 1].isalnum() or text[i - 1] in EMAIL_LOCAL_CHARS) \
                    and (text[i + 1].isalnum() or text[i + 1] == "_"):
                spans.append((i - 1, i + 2, "EMAIL_ADDRESS"))
            i = text.find("@", i + 1)
    if "IP_ADDRESS" in want:
        spans += [(m.start(), m.end(), "IP_ADDRESS") for m in IPV6_TRIGGER.finditer(text)]
    if want & {"IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"}:
        national_min, plus_min = phone_min
        for m in DIGIT_RUN.finditer(text):
            s, e = m.span()
            run = m.group()
            digits = sum(c.isdigit() for c in run)
            if "PHONE_NUMBER" in want:
                # Whether the matcher's candidate can hold a "+": in its lead or (never) inside.
                lead = text[max(0, s - PLUS_LEAD) : e]
                if digits >= (min(national_min, plus_min) if "+" in lead or "\uff0b" in lead else national_min):
                    spans.append((s, e, "PHONE_NUMBER"))
            if digits >= 12 and "CREDIT_CARD" in want:
                spans.append((s, e, "CREDIT_CARD"))
            if digits >= 9 and "US_SSN" in want:
                spans.append((s, e, "US_SSN"))
            if digits >= 4 and "." in run and "IP_ADDRESS" in want:
                spans.append((s, e, "IP_ADDRESS"))
            if s >= 2 and text[s - 2].isalpha() and text[s - 1].isalpha() and "IBAN_CODE" in want:
                spans.append((s - 2, e, "IBAN_CODE"))
    return spans


def _windows(text: str, entities: list[str], margin: int,
             phone_min: tuple[int, int] = (1, 1)) -> list[tuple[int, int, frozenset[str]]]:
    spans = _trigger_spans(text, entities, phone_min)
    if not spans:
        return []
    spans.sort()
    merged: list[list] = []
    for s, e, entity in spans:
        s, e = _widen(text, s - margin, e + margin)
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
            merged[-1][2].add(entity)
        else:
            merged.append([s, e, {entity}])
    return [(s, e, frozenset(types)) for s, e, types in merged]


MAX_WIDEN = 256


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """Move window edges outwards to whitespace so no token is cut (at most MAX_WIDEN characters, so a
    document without spaces stays linear)."""
    start, end = max(0, start), min(len(text), end)
    floor, ceiling = max(0, start - MAX_WIDEN), min(len(text), end + MAX_WIDEN)
    while start > floor and not text[start - 1].isspace():
        start -= 1
    while end < ceiling and not text[end].isspace():
        end += 1
    return start, end


class PiiScrubber:
    def __init__(self, conf: PiiConf):
        conf = conf.effective()
        self.conf = conf
        self.analyzer = build_analyzer(conf.spacy_model, conf.recognizers, conf.phone_leniency,
                                       conf.phone_context_leniency)
        self.entities = list(conf.entities)
        self.gated = conf.gate and conf.recognizers == "corpus"  # Presidio's defaults are the whole-text reference
        self.phone = next((r for r in self.analyzer.registry.recognizers if r.name == "RegionalPhoneRecognizer"),
                          None)
        # Leniencies the phone recognizer uses: the gate must fire for the most permissive digit minimum of each.
        self._phone_passes = {conf.phone_leniency == 0} | (
            {conf.phone_context_leniency == 0} if conf.phone_context_leniency is not None else set())
        self.cheap_artifacts = None
        if conf.spacy_model is None:
            # A blank pipeline has no lemmas, so Presidio's context enhancement can never fire and the
            # tokens change nothing: skip tokenizing (measured: most of the gated cost). Tested for equality.
            from presidio_analyzer.nlp_engine import NlpArtifacts

            engine = self.analyzer.nlp_engine
            empty = engine.nlp["en"].make_doc("")
            self.cheap_artifacts = NlpArtifacts(entities=[], tokens=empty, tokens_indices=[], lemmas=[],
                                                nlp_engine=engine, language="en")

    def _set_regions(self, regions: tuple[str, ...] | None) -> tuple[int, int]:
        """Point the phone recognizer at the document's regions; returns the gate's phone digit minimum."""
        from corpus.pii.recognizers import DEFAULT_REGIONS

        regions = tuple(regions or DEFAULT_REGIONS)
        if self.phone is not None:
            self.phone.regions = regions
        return self._phone_min(regions)

    def _phone_min(self, regions: tuple[str, ...]) -> tuple[int, int]:
        from corpus.pii.recognizers import CONTEXT_MIN_DIGITS, phone_trigger_min

        mins = [phone_trigger_min(regions, possible) for possible in self._phone_passes]
        national, plus = min(m[0] for m in mins), min(m[1] for m in mins)
        if self.conf.phone_context_leniency is not None:  # the any-region pass next to phone words
            national, plus = min(national, CONTEXT_MIN_DIGITS), min(plus, CONTEXT_MIN_DIGITS)
        return national, plus

    def find_all(self, text: str, regions: tuple[str, ...] | None = None) -> list[Finding]:
        """The recognizers on the whole text (Presidio's full path, tokens included): the gate's reference."""
        self._set_regions(regions)
        return self._analyze(text, self.entities, 0, reference=True)

    def find(self, text: str, regions: tuple[str, ...] | None = None) -> list[Finding]:
        if not self.gated:
            return self.find_all(text, regions)
        phone_min = self._set_regions(regions)
        found: list[Finding] = []
        for start, end, types in _windows(text, self.entities, self.conf.context_chars, phone_min):
            for lo, hi in self._chunks(text, start, end):
                found += self._analyze(text[lo:hi], sorted(types), lo)
        return sorted(set(found))

    def _chunks(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Bound the work per call: long windows are cut into overlapping chunks (some Presidio patterns are
        super-linear on long runs such as "a@a@a@…"). Chunks begin and end at whitespace outside digit runs, so
        no token and no phone candidate is cut (a cut run would be segmented differently); spans shorter than
        the overlap are found whole. A digit run longer than a chunk stays in one piece."""
        size, overlap = MAX_WINDOW_CHARS, 2 * self.conf.context_chars + 200
        if end - start <= size:
            return [(start, end)]
        runs = [m.span() for m in DIGIT_RUN.finditer(text, start, end)]
        run_starts = [r[0] for r in runs]

        def safe(p: int) -> bool:  # a cut at p: whitespace before it, inside no digit run
            if p <= start or p >= end:
                return True
            i = bisect.bisect_right(run_starts, p) - 1
            return text[p - 1].isspace() and (i < 0 or runs[i][1] < p)

        def safe_at_or_before(p: int, floor: int) -> int | None:
            while p > floor and not safe(p):
                p -= 1
            return p if p > floor else None

        def safe_at_or_after(p: int) -> int:
            while p < end and not safe(p):
                p += 1
            return p

        chunks, lo = [], start
        while True:
            if lo + size >= end:
                chunks.append((lo, end))
                return chunks
            hi = safe_at_or_before(lo + size, lo + overlap + 1) or safe_at_or_after(lo + size)
            chunks.append((lo, hi))
            if hi >= end:
                return chunks
            lo = max(safe_at_or_after(hi - overlap), lo + 1)
            if lo >= hi:  # no safe point in the overlap: continue from the cut itself
                lo = hi

    def _analyze(self, text: str, entities: list[str], offset: int, reference: bool = False) -> list[Finding]:
        if not text.strip():
            return []
        results = self.analyzer.analyze(text, language="en", entities=entities,
                                        score_threshold=self.conf.score_threshold,
                                        nlp_artifacts=None if reference else self.cheap_artifacts)
        return sorted(Finding(r.start + offset, r.end + offset, r.entity_type, round(r.score, 6)) for r in results)

    def policy(self, text: str, findings: list[Finding]) -> list[Finding]:
        """Drop findings the policy keeps (private IPs, example e-mails), then resolve overlaps."""
        kept = []
        for f in findings:
            value = text[f.start : f.end]
            if f.entity_type == "IP_ADDRESS" and self.conf.keep_private_ips and _non_public_ip(value):
                continue
            if f.entity_type == "EMAIL_ADDRESS" and self.conf.keep_example_emails and EXAMPLE_EMAIL.search(value):
                continue
            kept.append(f)
        # Highest score wins an overlap, then the longer span, then the earlier one.
        chosen: list[Finding] = []
        for f in sorted(kept, key=lambda f: (-f.score, -(f.end - f.start), f.start, f.entity_type)):
            if all(f.end <= c.start or f.start >= c.end for c in chosen):
                chosen.append(f)
        return sorted(chosen)

    def replacement(self, entity_type: str, value: str) -> str:
        mode = self.conf.replacement
        if mode == "tag":
            return f"<{entity_type}>"
        if mode == "hash":
            return f"<{entity_type}:{hashlib.sha256(value.encode()).hexdigest()[:16]}>"
        if entity_type == "EMAIL_ADDRESS":
            return FAKE_EMAIL
        if entity_type == "IP_ADDRESS":
            return FAKE_IPS[int(hashlib.sha256(value.encode()).hexdigest(), 16) % len(FAKE_IPS)]
        return FIXED.get(entity_type, f"<{entity_type}>")

    def too_dense(self, text: str, language: str | None = None, url: str | None = None) -> bool:
        """More candidate text than `max_candidate_chars`: tables of numbers and the like, where Presidio's
        cost explodes; such documents are dropped (and counted) rather than kept unscrubbed."""
        from corpus.pii.recognizers import regions_for

        phone_min = self._phone_min(regions_for(language, url))
        covered = sum(e - s for s, e, _ in _windows(text, self.entities, self.conf.context_chars, phone_min))
        return covered > self.conf.max_candidate_chars

    def scrub(self, text: str, language: str | None = None,
              url: str | None = None) -> tuple[str, list[tuple[Finding, str]]]:
        """(text with PII replaced, [(finding, original value)]); `language` and `url` pick the phone regions."""
        from corpus.pii.recognizers import regions_for

        findings = self.policy(text, self.find(text, regions_for(language, url)))
        out, last, replaced = [], 0, []
        for f in findings:
            value = text[f.start : f.end]
            out += [text[last : f.start], self.replacement(f.entity_type, value)]
            last = f.end
            replaced.append((f, value))
        out.append(text[last:])
        return "".join(out), replaced


def _non_public_ip(value: str) -> bool:
    try:
        ip = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return not ip.is_global


_WORKER_SCRUBBERS: dict[str, PiiScrubber] = {}


def worker_scrubber(conf_json: str) -> PiiScrubber:
    if conf_json not in _WORKER_SCRUBBERS:
        _WORKER_SCRUBBERS[conf_json] = PiiScrubber(PiiConf.model_validate_json(conf_json))
    return _WORKER_SCRUBBERS[conf_json]
