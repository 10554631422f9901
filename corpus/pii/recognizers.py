"""Our Presidio recognizers: phones by region (phonenumbers), cards (Luhn), IBANs (mod 97), IPs (ipaddress), SSNs.

They plug into Presidio's AnalyzerEngine and registry like its own recognizers (PatternRecognizer and
LocalRecognizer subclasses) and find what Presidio's defaults miss (docs/pii.md has the measurements):

- phones: `phonenumbers` for the regions that fit the document (language and TLD, `regions_for`), numbers
  valid for a region always, merely possible ones only after a context word ("tel", "phone", "Telefon"…);
  a region is only asked when a candidate has enough digits to be one of its numbers (exact pre-filter);
- cards: 12–19 digits in the usual groupings with one kind of separator, Luhn and issuer prefix checked;
- IBANs: upper or lower case, compact or spaced, the country's exact length and the mod-97 checksum;
- IPs: Presidio's IPv4/IPv6 patterns (compressed, embedded, mapped), validated with `ipaddress`;
- SSNs: Presidio's patterns; its very weak ones (bare 9 digits, 5-4, 3-6) only after a context word.

Context checks are lemma-free: a lower-cased look at the `CONTEXT_CHARS` characters before a match (no
spaCy model needed). They stay inside the gate's windows (margin ≥ CONTEXT_CHARS), so the gate stays exact.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher
from phonenumbers.phonenumbermatcher import _PATTERN as PHONE_CANDIDATE  # the matcher's own candidate regex
from presidio_analyzer import LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import IpRecognizer, UsSsnRecognizer

CONTEXT_CHARS = 48  # look-back for context words; must stay below the gate margin (PiiConf.context_chars >= 50)

# Regions asked for phone numbers, by document language; the TLD's country is added (regions_for).
# NANP (US) also covers Canada and the Caribbean: one region parses all +1 numbers.
LANGUAGE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB", "AU", "IN"),  # the site's country (TLD) is added: .ie, .nz, .za…
    "de": ("DE", "AT", "CH"),
    "fr": ("FR", "BE", "CH", "CA"),
    "es": ("ES", "MX", "AR", "CO", "CL", "US"),
    "it": ("IT", "CH"),
    "nl": ("NL", "BE"),
    "pt": ("BR", "PT"),
    "pl": ("PL",),
    "ru": ("RU", "UA", "BY", "KZ"),
    "uk": ("UA",),
    "ja": ("JP",),
    "zh": ("CN", "TW", "HK", "SG"),
    "ko": ("KR",),
    "sv": ("SE",),
    "da": ("DK",),
    "no": ("NO",),
    "fi": ("FI",),
    "tr": ("TR",),
    "cs": ("CZ",),
}
# Presidio's own default regions, for documents of unknown language.
DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")
_TLD_REGION = {"uk": "GB"}

PHONE_CONTEXT = re.compile(
    r"(?<!\w)(?:phone|tel\b|tel\.|telephone|cell|mobile|mob\b|fax|call|dial(?:l?ing|l?ed|s)?\b|reach|ring\b|whatsapp|hotline|sms\b"
    r"|telefon|handy|mobil|rufnummer|anruf|rufen|erreich|t[ée]l[ée]phone|t[ée]l\b|t[ée]l\.|portable|appel|joindre"
    r"|tel[ée]fono|m[óo]vil|celular|ll[aá]m|telefono|cellulare|chiam|telefoon|bel\b|bellen|telefone|ligue"
    r"|телефон|тел\b|тел\.|моб|звон|факс|сотов|номер\s+телефона|n[uú]mero\s+de\s+tel|num[ée]ro\s+de\s+t[ée]l)"
    r"|電話|电话|手机|手機|座机|座機|传真|傳真|热线|熱線|致电|致電|拨打|撥打|联系方式|聯絡|携帯|ケータイ|ファックス|ＴＥＬ|Ｔｅｌ"
    r"|연락처|전화",
    re.IGNORECASE)
SSN_CONTEXT = re.compile(r"(?<!\w)(?:social\s+sec|ssn|ss#|ssid|soc\.?\s*sec|taxpayer)", re.IGNORECASE)
# A digit, a sentence end (not "No. 12"; CJK full stops need no space) or a line end.
_BETWEEN = re.compile(r"\d|[.!?;]\s+[^\W\d_]|[。！？；]|\n")
_BETWEEN_AFTER = re.compile(r"[\d.!?;\n。！？；]")


def context_near(pattern: re.Pattern, text: str, start: int, end: int, after: bool = False) -> bool:
    """A context word within CONTEXT_CHARS before `start` (or after `end`), in the same sentence with no digit
    in between, so the word belongs to this number and not to another one next to it."""
    last = None
    for match in pattern.finditer(text, max(0, start - CONTEXT_CHARS), start):
        last = match  # the nearest word before the number
    if last is not None and not _BETWEEN.search(text, last.end(), start):
        return True
    if after:
        m = pattern.search(text, end, min(len(text), end + CONTEXT_CHARS))
        return m is not None and not _BETWEEN_AFTER.search(text, end, m.start())
    return False


def regions_for(language: str | None, url: str | None) -> tuple[str, ...]:
    """Phone regions for a document: its language's regions plus its country-code TLD's region (sorted, so a
    document always gets the same set)."""
    regions = set(LANGUAGE_REGIONS.get((language or "").split("_")[0].lower(), ()))
    if url:
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.strip().lower()).split("/")[0].split(":")[0].rstrip(".")
        tld = host.rsplit(".", 1)[-1] if "." in host else ""
        region = _TLD_REGION.get(tld, tld.upper())
        if len(tld) == 2 and region in phonenumbers.SUPPORTED_REGIONS:
            regions.add(region)
    return tuple(sorted(regions)) if regions else DEFAULT_REGIONS


def _min_length(md, possible: bool) -> int:
    desc = md.general_desc
    lengths = list(desc.possible_length or ())
    if possible:
        lengths += list(desc.possible_length_local_only or ())
    return min(x for x in lengths if x > 0) if any(x > 0 for x in lengths) else 1


def _transform_added(md) -> int:
    """Digits a region's national-prefix transform can add to what is written (Antigua's 7-digit local
    numbers gain "268", Guernsey's "1481"): the literal digits of the rule, group references aside."""
    return sum(c.isdigit() for c in re.sub(r"\\\d", "", md.national_prefix_transform_rule or ""))


@lru_cache(maxsize=2)
def _international_min(possible: bool) -> int:
    """Fewest digits any number written with a country code can have: len(country code) + shortest number
    (less what a prefix transform may add)."""
    best = 99
    for region in phonenumbers.SUPPORTED_REGIONS:
        md = PhoneMetadata.metadata_for_region(region)
        best = min(best, len(str(md.country_code)) + max(1, _min_length(md, possible) - _transform_added(md)))
    for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        md = PhoneMetadata.metadata_for_nongeo_region(cc)
        if md is not None:
            best = min(best, len(str(cc)) + _min_length(md, possible))
    return best


ISBN_BEFORE = re.compile(r"isbn(?:[- ]?1[03])?:?\s*$", re.IGNORECASE)  # "ISBN 0375403744" is a book, not a phone
YEAR_RANGE = re.compile(r"(?:19|20)\d\d\s*[-\u2010-\u2015/]\s*(?:19|20)\d\d")  # "2004 – 2014" is no phone
CONTEXT_MIN_DIGITS = 7  # merely possible numbers after a context word: shorter ones are prices, years, codes
WORLD_MAX_DIGITS = 15  # E.164's longest number
# A phone-shaped candidate for the any-region pass: an optional "+" or "00", then 2-6 groups of digits (one may be
# in parentheses) with one separator each, then an optional extension. Every phone format of phonenumbers'
# metadata fits; a bare run of 7+ digits fits too (many regions write numbers unspaced).
WORLD_PHONE_SHAPE = re.compile(
    r"(?:[+\uff0b]\s?|00)?(?:\(\d{1,5}\)|\d{1,15})(?:\s?[-.\u2010-\u2015/ ]?\s?(?:\(\d{1,5}\)|\d{1,8})){0,6}"
    r"(?P<ext>\s*(?:x|ext\.?|extension|доб\.?|内线|分机|分機|内線)\s*\d{1,6})?",
    re.IGNORECASE)
# 17.05.2023, 2023-05-17: dates, not phones, even after a phone word
DATE_LIKE = re.compile(r"\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d\d|(?:19|20)\d\d[./-]\d{1,2}[./-]\d{1,2}")


def _exit_code_min(md) -> int:
    """Length of the region's shortest international exit code ("00", "011", "810"…), 4 if none is shorter."""
    pattern = re.compile(md.international_prefix or "")
    for n in range(1, 4):
        if any(pattern.fullmatch(f"{i:0{n}d}") for i in range(10**n)):
            return n
    return 4


@lru_cache(maxsize=1024)
def min_digits(region: str, possible: bool) -> int:
    """Fewest digits one of our phone matches for `region` can contain (exact bound, see docs/pii.md): a
    national number has at least the region's shortest length, less what its prefix transform may add; an
    international one without "+" needs the region's exit code before the country code; context matches need
    CONTEXT_MIN_DIGITS."""
    md = PhoneMetadata.metadata_for_region(region)
    national = max(1, _min_length(md, possible) - _transform_added(md))
    bound = min(national, _international_min(possible) + _exit_code_min(md))
    return max(bound, CONTEXT_MIN_DIGITS) if possible else bound


def phone_candidates(text: str) -> list[tuple[int, int, int, bool]]:
    """(start, end, digits, has plus) for each candidate of the phonenumbers matcher's own regex."""
    out = []
    for m in PHONE_CANDIDATE.finditer(text):
        s = m.group()
        out.append((m.start(), m.end(), sum(c.isdigit() for c in s), "+" in s or "\uff0b" in s))
    return out


def _plus_min(possible: bool) -> int:
    return max(_international_min(possible), CONTEXT_MIN_DIGITS) if possible else _international_min(possible)


def plausible(candidate: tuple[int, int, int, bool], region: str, possible: bool) -> bool:
    digits, plus = candidate[2], candidate[3]
    return digits >= (_plus_min(possible) if plus else min_digits(region, possible))


def phone_trigger_min(regions: tuple[str, ...], possible: bool) -> tuple[int, int]:
    """(digits needed without "+", with "+") for any region of `regions` to match: the gate's phone trigger."""
    return min(min_digits(r, possible) for r in regions), _plus_min(possible)


def world_phone_spans(text: str, candidates) -> list[tuple[int, int]]:
    """Candidates of any region next to a phone word: 7-15 digits (not counting an extension) in a phone
    shape (WORLD_PHONE_SHAPE), not a date or a year range; with "+" or "00" the country code must exist."""
    out = []
    for start, end, digits, plus in candidates:
        if digits < CONTEXT_MIN_DIGITS:
            continue
        value = text[start:end]
        m = WORLD_PHONE_SHAPE.fullmatch(value)
        if m is None:
            continue
        ext = m.group("ext")
        number = value[: len(value) - len(ext)] if ext else value
        n_digits = sum(c.isdigit() for c in number)
        if not CONTEXT_MIN_DIGITS <= n_digits <= WORLD_MAX_DIGITS or DATE_LIKE.fullmatch(number) \
                or YEAR_RANGE.fullmatch(number):
            continue
        if (plus or number.startswith("00")) and not _country_code_ok(number):
            continue
        if context_near(PHONE_CONTEXT, text, start, end, after=True):
            out.append((start, end))
    return out


def _country_code_ok(number: str) -> bool:
    """An international number ("+" or "00") whose country code exists and whose length it allows."""
    digits = "".join(c for c in number if c.isdigit())
    if not number.lstrip().startswith(("+", "\uff0b")):
        digits = digits[2:]  # "00" is the exit code most of the world dials
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False


class _PlausibleMatcher(PhoneNumberMatcher):
    """phonenumbers' matcher that drops a candidate without parsing it when it has fewer digits than any match
    for the region needs (every match, inner ones included, lies inside its candidate): same matches, and
    years, prices and dates cost one digit count instead of several parses."""

    def __init__(self, text: str, region: str, leniency: int, national_min: int, plus_min: int,
                 need_context: bool = False, taken: tuple[tuple[int, int], ...] = ()):
        super().__init__(text, region, leniency=leniency)
        self._national_min, self._plus_min, self._need_context = national_min, plus_min, need_context
        self._taken = taken

    def _extract_match(self, candidate, offset):
        digits = sum(c.isdigit() for c in candidate)
        if digits < (self._plus_min if ("+" in candidate or "\uff0b" in candidate) else self._national_min):
            return None
        if self._need_context:
            # Context matches need a context word within CONTEXT_CHARS of the match, so of its candidate, and
            # must not overlap a match already taken: when one taken span holds every digit of the candidate,
            # any match in it would overlap.
            if PHONE_CONTEXT.search(self.text, max(0, offset - CONTEXT_CHARS),
                                    offset + len(candidate) + CONTEXT_CHARS) is None:
                return None
            if self._taken:
                first = offset + next(i for i, c in enumerate(candidate) if c.isdigit())
                last = offset + len(candidate) - next(i for i, c in enumerate(reversed(candidate)) if c.isdigit())
                if any(s <= first and last <= e for s, e in self._taken):
                    return None
        return super()._extract_match(candidate, offset)


class RegionalPhoneRecognizer(LocalRecognizer):
    """Phone numbers with `phonenumbers` for the document's regions (set `regions` before each analyze call).

    `leniency` applies everywhere; `context_leniency` (lower, e.g. POSSIBLE) only for matches that follow a
    phone context word. A region is skipped when no candidate has enough digits for it."""

    SCORE = 0.4  # Presidio's phone score
    CONTEXT_SCORE = 0.35

    def __init__(self, leniency: int = 2, context_leniency: int | None = 0, regions=DEFAULT_REGIONS):
        self.leniency = leniency
        self.context_leniency = context_leniency if context_leniency is not None and context_leniency < leniency \
            else None
        self.regions = tuple(regions)
        super().__init__(supported_entities=["PHONE_NUMBER"], supported_language="en",
                         name="RegionalPhoneRecognizer", context=[])

    def load(self) -> None:
        pass

    def _matches(self, text: str, candidates, leniency: int, need_context: bool = False,
                 taken: tuple[tuple[int, int], ...] = ()) -> dict[tuple[int, int], None]:
        found: dict[tuple[int, int], None] = {}
        possible = leniency == Leniency.POSSIBLE
        for region in self.regions:
            if not any(plausible(c, region, possible) for c in candidates):
                continue
            matcher = _PlausibleMatcher(text, region, leniency, min_digits(region, possible), _plus_min(possible),
                                        need_context, taken)
            for m in matcher:
                found[(m.start, m.end)] = None
        return found

    def analyze(self, text: str, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        candidates = phone_candidates(text)
        if not candidates:
            return []
        spans = {span: self.SCORE for span in self._matches(text, candidates, self.leniency)}
        if self.context_leniency is not None and PHONE_CONTEXT.search(text):
            for s, e in self._matches(text, candidates, self.context_leniency, need_context=True,
                                      taken=tuple(spans)):
                if (s, e) in spans or any(s < e2 and s2 < e for s2, e2 in spans):
                    continue
                digits = sum(c.isdigit() for c in text[s:e])
                if digits >= CONTEXT_MIN_DIGITS and not YEAR_RANGE.fullmatch(text[s:e]) \
                        and not DATE_LIKE.fullmatch(text[s:e]) and context_near(PHONE_CONTEXT, text, s, e, after=True):
                    spans[(s, e)] = self.CONTEXT_SCORE
            # Any region: a phone-shaped number next to a phone word is a phone, whatever the document's
            # language and domain say (a .com page of a Seoul office, a German page with a Chinese number).
            for s, e in world_phone_spans(text, candidates):
                if not any(s < e2 and s2 < e for s2, e2 in spans):
                    spans[(s, e)] = self.CONTEXT_SCORE
        return [RecognizerResult("PHONE_NUMBER", s, e, score,
                                 recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                       RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})
                for (s, e), score in sorted(spans.items()) if not ISBN_BEFORE.search(text, max(0, s - 16), s)]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer_ok(d: str) -> bool:
    """Issuer prefix and length: Visa, Mastercard (51–55, 2221–2720), Amex, Discover, JCB, Diners, UnionPay,
    Maestro, Mir. Zero-filled and other prefixes are not cards."""
    n, p2, p4 = len(d), int(d[:2]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 2200 <= p4 <= 2204:
        return 16 <= n <= 19
    if p2 in (30, 36, 38, 39):
        return 14 <= n <= 19
    if p2 == 35 or d[0] == "6" or p2 == 50 or 56 <= p2 <= 58 or d[:4] == "0604":
        return 12 <= n <= 19  # JCB, Discover, UnionPay, Maestro (12 digits and up, 0604 in the UK)
    if p4 in (1800, 2131):
        return n == 15  # JCB's old 15-digit ranges
    return False


class GroupedCardRecognizer(PatternRecognizer):
    """Card numbers: contiguous, 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4 and Presidio's own groupings, with one
    kind of separator (space, dash, dot, no-break space); valid only with Luhn and a known issuer prefix."""

    PATTERNS = [
        Pattern("card contiguous", r"(?<![\w.,])\d{12,19}(?![\w]|[.,]\d)", 0.3),
        Pattern("card 4-4-4(-4)(-3)",
                r"(?<![\w.,])\d{4}([ .\-\u00a0])\d{4}\1\d{4}(?:\1\d{1,4})?(?:\1\d{1,3})?(?![\w]|[.,\-]\d)", 0.3),
        Pattern("card 4-6-x", r"(?<![\w.,])\d{4}([ .\-\u00a0])\d{6}\1\d{4,5}(?![\w]|[.,\-]\d)", 0.3),
        Pattern("card presidio", r"(?<![\w.,])\d{4}[- ]?\d{3,4}[- ]?\d{3,4}[- ]?\d{3,5}(?![\w]|[.,\-]\d)", 0.3),
    ]

    def __init__(self):
        super().__init__(supported_entity="CREDIT_CARD", patterns=self.PATTERNS, name="GroupedCardRecognizer",
                         context=[], supported_language="en")

    def validate_result(self, pattern_text: str) -> bool:
        digits = "".join(c for c in pattern_text if c.isdigit())
        return 12 <= len(digits) <= 19 and digits.isascii() and _issuer_ok(digits) and luhn_ok(digits)


# Compact IBAN length per country (SWIFT IBAN registry; Presidio's iban_patterns has the same countries).
IBAN_LENGTH = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}")
_IBAN_SEPARATORS = " -\u00a0"
_ALNUM = set(string.ascii_letters + string.digits)
_IBAN_VALUES = {ord(c): str(int(c, 36)) for c in string.ascii_uppercase}


def iban_checksum_ok(compact: str) -> bool:
    s = (compact[4:] + compact[:4]).upper()
    return s.isalnum() and s.isascii() and int(s.translate(_IBAN_VALUES)) % 97 == 1


class IbanChecksumRecognizer(LocalRecognizer):
    """IBANs in any case, compact or with single separators: the country's exact length, then the mod-97
    checksum (Presidio's own recognizer is case-sensitive and loses IBANs followed by a word, docs/pii.md)."""

    SCORE = 1.0

    def __init__(self):
        super().__init__(supported_entities=["IBAN_CODE"], supported_language="en", name="IbanChecksumRecognizer",
                         context=[])

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        results = []
        for m in _IBAN_START.finditer(text):
            length = IBAN_LENGTH.get(m.group()[:2].upper())
            if length is None:
                continue
            end = self._scan(text, m.start(), length)
            if end is None:
                continue
            compact = "".join(c for c in text[m.start():end] if c in _ALNUM)
            if iban_checksum_ok(compact):
                results.append(RecognizerResult("IBAN_CODE", m.start(), end, self.SCORE,
                                                recognition_metadata={
                                                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results

    @staticmethod
    def _scan(text: str, start: int, length: int) -> int | None:
        """End of `length` alphanumerics from `start`, single separators allowed between them; None when
        the run is shorter or continues with more alphanumerics."""
        i, n, count = start, len(text), 0
        while i < n and count < length:
            c = text[i]
            if c in _ALNUM:
                count += 1
                i += 1
            elif c in _IBAN_SEPARATORS and count >= 2 and i + 1 < n and text[i + 1] in _ALNUM:
                i += 1
            else:
                return None
        if count < length or (i < n and text[i] in _ALNUM):
            return None
        return i


class ContextSsnRecognizer(UsSsnRecognizer):
    """Presidio's SSN recognizer; its very weak patterns (bare 9 digits, 5-4, 3-6: ZIP+4 codes, order numbers)
    count only after an SSN context word."""

    CONTEXT_SCORE = 0.6

    def __init__(self):
        super().__init__(name="ContextSsnRecognizer")

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        kept = []
        for r in results:
            if context_near(SSN_CONTEXT, text, r.start, r.end):
                r.score = max(r.score, self.CONTEXT_SCORE)  # an SSN word next to it outweighs a phone reading
            elif r.score < 0.5:
                continue
            kept.append(r)
        return kept


class ValidatedIpRecognizer(IpRecognizer):
    """Presidio's IPv4/IPv6 patterns (compressed, IPv4-embedded and -mapped IPv6, zones, prefixes), each match
    validated with `ipaddress`."""

    def __init__(self):
        super().__init__(name="ValidatedIpRecognizer")

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in results if not self._in_longer_dotted_number(text, r.start, r.end)]

    @staticmethod
    def _in_longer_dotted_number(text: str, start: int, end: int) -> bool:
        """Four groups out of a longer dotted run (a phone "+33.6.12.30.38.70", a version "1.2.3.4.5") or after
        a "+": not an address."""
        if start > 0 and text[start - 1] == "+":
            return True
        if start > 1 and text[start - 1] == "." and text[start - 2].isdigit():
            return True
        return end + 1 < len(text) and text[end] == "." and text[end + 1].isdigit()


def corpus_recognizers(leniency: int = 2, context_leniency: int | None = 0):
    """Our recognizers, replacing Presidio's for the same entity types (e-mail stays Presidio's)."""
    return [RegionalPhoneRecognizer(leniency, context_leniency), GroupedCardRecognizer(), IbanChecksumRecognizer(),
            ContextSsnRecognizer(), ValidatedIpRecognizer()]


REPLACED_PRESIDIO = ("PhoneRecognizer", "CreditCardRecognizer", "IbanRecognizer", "UsSsnRecognizer", "IpRecognizer")
