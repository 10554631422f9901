"""PII detection and replacement with Presidio, behind a cheap gate that does not change the findings.

Presidio's pattern recognizers run with a blank English spaCy pipeline saved to disk (no spaCy model is
on PyPI); `pii.spacy_model` names a real model (package or path) to enable PERSON and other NER types.

The gate: every supported recognizer needs a tell-tale character pattern — `@` for e-mail, a dotted quad
or hex-colon group for IPs, a run of 5+ digits (with separators) for phones, cards and SSNs, two letters
and two digits for IBANs. Presidio runs only on windows of `context_chars` around such candidates (cut at
whitespace, overlapping windows merged), asked only for the entity types the window can hold. A test
compares gated findings with Presidio on whole documents.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from corpus.config import ConfigError, PiiConf
from corpus.io.offline_tldextract import make_tldextract_offline

GATED_TYPES = {"EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"}
TRIGGERS: dict[str, re.Pattern] = {
    # Each trigger is a superset of what the Presidio recognizer's own pattern needs.
    # E-mail: a local-part character before "@" and a word character after it.
    "EMAIL_ADDRESS": re.compile(r"[!#$%&'*+\-/=?^_`{|}~\w]@\w"),
    "IP_ADDRESS": re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:"),
    # Phone numbers go through the phonenumbers matcher, which accepts short numbers ("16 48" in a DE/FE
    # format): any run of 4+ digits with separators.
    "PHONE_NUMBER": re.compile(r"(?:\d[\s().\-+/]{0,3}){3,}\d"),
    # Cards: 13+ digits with optional single "-"/" " separators (our pattern, see _credit_card_recognizer).
    "CREDIT_CARD": re.compile(r"\d(?:[- ]?\d){12,}"),
    # SSN patterns are all 9 digits with at most one separator between groups.
    "US_SSN": re.compile(r"\d(?:[- .]?\d){8}"),
    # IBAN: case-sensitive country code, check digits and at least two groups of four.
    "IBAN_CODE": re.compile(r"[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2}"),
}
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


def build_analyzer(spacy_model: str | None):
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    make_tldextract_offline()  # Presidio's e-mail recognizer calls tldextract
    model = _spacy_model(spacy_model)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    analyzer.registry.remove_recognizer("CreditCardRecognizer")
    analyzer.registry.add_recognizer(_credit_card_recognizer())
    return analyzer


def _credit_card_recognizer():
    """Presidio's credit-card recognizer (same Luhn check, context and score) with Mastercard's 2221-2720
    range added: Presidio's pattern misses those valid cards (found by the planted-PII test)."""
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    pattern = (r"\b(?!1\d{12}(?!\d))((4\d{3})|(5[0-5]\d{2})|(2[2-7]\d{2})|(6\d{3})|(1\d{3})|(3\d{3}))"
               r"[- ]?(\d{3,4})[- ]?(\d{3,4})[- ]?(\d{3,5})\b")
    return CreditCardRecognizer(patterns=[Pattern("All Credit Cards (weak, incl. Mastercard 2-series)", pattern, 0.3)])


def _windows(text: str, entities: list[str], margin: int) -> list[tuple[int, int, frozenset[str]]]:
    spans: list[tuple[int, int, str]] = []
    for entity in entities:
        trigger = TRIGGERS.get(entity)
        if trigger is None:  # no gate known for this type (e.g. PERSON): the whole text
            spans.append((0, len(text), entity))
            continue
        for m in trigger.finditer(text):
            spans.append((m.start(), m.end(), entity))
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
        self.conf = conf
        self.analyzer = build_analyzer(conf.spacy_model)
        self.entities = list(conf.entities)
        self.cheap_artifacts = None
        if conf.spacy_model is None:
            # A blank pipeline has no lemmas, so Presidio's context enhancement can never fire and the
            # tokens change nothing: skip tokenizing (measured: most of the gated cost). Tested for equality.
            from presidio_analyzer.nlp_engine import NlpArtifacts

            engine = self.analyzer.nlp_engine
            empty = engine.nlp["en"].make_doc("")
            self.cheap_artifacts = NlpArtifacts(entities=[], tokens=empty, tokens_indices=[], lemmas=[],
                                                nlp_engine=engine, language="en")

    def find_all(self, text: str) -> list[Finding]:
        """Presidio on the whole text: the reference the gate is tested against."""
        return self._analyze(text, self.entities, 0, reference=True)

    def find(self, text: str) -> list[Finding]:
        if not self.conf.gate:
            return self.find_all(text)
        found: list[Finding] = []
        for start, end, types in _windows(text, self.entities, self.conf.context_chars):
            for lo, hi in self._chunks(text, start, end):
                found += self._analyze(text[lo:hi], sorted(types), lo)
        return sorted(set(found))

    def _chunks(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Bound the work per call: long windows are cut into overlapping chunks (some Presidio patterns are
        super-linear on long runs such as "a@a@a@…"). Spans shorter than the overlap are found whole."""
        size, overlap = MAX_WINDOW_CHARS, 2 * self.conf.context_chars + 200
        if end - start <= size:
            return [(start, end)]
        chunks, lo = [], start
        while lo < end:
            hi = min(end, lo + size)
            chunks.append((lo, hi))
            if hi == end:
                break
            lo = hi - overlap
        return chunks

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

    def too_dense(self, text: str) -> bool:
        """More candidate text than `max_candidate_chars`: tables of numbers and the like, where Presidio's
        cost explodes; such documents are dropped (and counted) rather than kept unscrubbed."""
        covered = sum(e - s for s, e, _ in _windows(text, self.entities, self.conf.context_chars))
        return covered > self.conf.max_candidate_chars

    def scrub(self, text: str) -> tuple[str, list[tuple[Finding, str]]]:
        """(text with PII replaced, [(finding, original value)])."""
        findings = self.policy(text, self.find(text))
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
