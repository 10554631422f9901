"""A deterministic, labelled synthetic Common-Crawl-like crawl: WARC/1.1 files plus ``truth.jsonl``.

Every response record has one truth line saying what the page is (``kind``), what a correct pipeline
should do with it (``expected``), its language, duplicate cluster, planted PII and article text, so the
pipeline can be scored end to end without real crawl data.

Determinism: all randomness comes from ``random.Random`` / Faker instances seeded from ``seed`` (each
page from its own derived seed), WARC dates and record ids are derived from the seed, and the gzip
members warcio writes come from zlib's gzip wrapper, whose header carries no timestamp or file name
(mtime 0; the tests check it).

The URL blocklist is datatrove's ``url_filterblacklistsv0_3_0.tar.gz``: its ``domains`` member is sorted
bytewise, so membership is a binary search over the decompressed bytes (~0.7 s once per process) instead
of a 4.5M-entry set. The tarball has no categories; "adult" domains are blocklisted ``.com`` entries
whose name carries an adult marker.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import io
import json
import os
import random
import re
import tarfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from faker import Faker
from faker.providers.lorem.en_US import Provider as _EnLorem
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

# Shares of page kinds in a synthetic crawl (normalised, then allocated by largest remainder).
KIND_SHARES: dict[str, float] = {
    "good_en": 0.40,
    "lang_de": 0.03,
    "lang_fr": 0.03,
    "lang_es": 0.03,
    "lang_ru": 0.03,
    "lang_zh": 0.03,
    "lang_ja": 0.03,
    "spam": 0.05,
    "repeated_lines": 0.05,
    "too_short": 0.04,
    "adult_domain": 0.03,
    "exact_dup": 0.04,
    "near_dup": 0.10,
    "non_html": 0.04,
    "http_error": 0.04,
    "redirect": 0.03,
}
PII_SHARE = 0.20  # of good_en pages
KEEP_KINDS = frozenset({"good_en", "exact_dup", "near_dup"})
PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN")
NEAR_DUP_MIN_JACCARD = 0.8

# kind -> (ISO 639-1, Faker locale, top-level domain, charsets a site may use besides utf-8)
_LANGS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "lang_de": ("de", "de_DE", "de", ("iso-8859-1", "windows-1252")),
    "lang_fr": ("fr", "fr_FR", "fr", ("windows-1252",)),
    "lang_es": ("es", "es_ES", "es", ("iso-8859-1", "windows-1252")),
    "lang_ru": ("ru", "ru_RU", "ru", ("windows-1251",)),
    "lang_zh": ("zh", "zh_CN", "cn", ("gb18030",)),
    "lang_ja": ("ja", "ja_JP", "jp", ("shift_jis",)),
}
_LOCAL_CHROME: dict[str, tuple[tuple[str, ...], str]] = {
    "de": (("Startseite", "Nachrichten", "Ratgeber", "Kontakt", "Impressum"), "Alle Rechte vorbehalten."),
    "fr": (("Accueil", "Actualités", "Guides", "Contact", "Mentions légales"), "Tous droits réservés."),
    "es": (("Inicio", "Noticias", "Guías", "Contacto", "Aviso legal"), "Todos los derechos reservados."),
    "ru": (("Главная", "Новости", "Статьи", "Контакты", "О нас"), "Все права защищены."),
    "zh": (("首页", "新闻", "文章", "联系我们", "关于我们"), "版权所有。"),
    "ja": (("ホーム", "ニュース", "記事", "お問い合わせ", "会社概要"), "無断転載を禁じます。"),
}

_NOUNS = tuple(w for w in _EnLorem.parts_of_speech["noun"] if len(w) >= 3)
_ADJS = tuple(w for w in _EnLorem.parts_of_speech["adjective"] if len(w) >= 3)
_VERBS = tuple(w for w in _EnLorem.parts_of_speech["verb"] if not w.endswith(("ing", "ed")))
_ADVS = tuple(w for w in _EnLorem.parts_of_speech["adverb"] if w.endswith("ly") and len(w) > 4)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "ten", "twelve", "twenty", "forty")

# Sentence templates. Fixed runs stay under five words so 5-gram shingles of different articles barely
# overlap (near-dup ground truth) and one article does not repeat its own 5-grams (Gopher repetition).
# Slots: noun, nouns (plural), adj, a_adj ("a"/"an" + adjective), verb, adv, name, city, company, year,
# num, month, day. A few templates carry Latin-1 letters so legacy charsets matter.
_TEMPLATES = (
    "The {adj} {noun} of {city} has become {adj} for many {nouns}.",
    "{name}, who works with {nouns} in {city}, said the {noun} was {adj} and {adj}.",
    "Many {nouns} {verb} the {noun} because it is {adj} and easy to {verb}.",
    "In {year}, a group of {adj} {nouns} began to {verb} the {noun} with {adj} {nouns}.",
    "It is not always {adj} to {verb} a {noun} when the {noun} is {adj}.",
    "According to {name}, the {noun} should {verb} more {nouns} than the {adj} {noun}.",
    "For most {nouns}, the easiest way to {verb} a {noun} is to {verb} it {adv}.",
    "We asked {name} whether the {noun} would {verb} the {noun}, and the answer was {adj}.",
    "Some {nouns} {adv} {verb} their {nouns}, while others prefer to {verb} {a_adj} {noun}.",
    "The {noun} was {adv} {adj}, but the {nouns} in {city} did not {verb} it.",
    "There are {num} {adj} {nouns} in the {noun}, and each of them can {verb} a {noun}.",
    "If you want to {verb} your {noun}, you should first {verb} the {adj} {noun}.",
    "This {noun} is {adj} enough to {verb} the {nouns} that {verb} the {noun}.",
    "{company} said on {day} that it will {verb} its {adj} {noun} by {month}.",
    "Researchers at {company} found that {adj} {nouns} tend to {verb} more {nouns}.",
    "The {nouns} we met in {city} were {adj}, and they were happy to {verb} the {noun}.",
    "One {noun} that people often forget is the {adj} {noun} of the {noun}.",
    "What makes the {noun} so {adj} is the way it can {verb} every {noun}.",
    "Local {nouns} say the {noun} has been {adj} since {year}.",
    "That is why the {noun} of {city} still matters to {nouns} and {nouns} alike.",
    "{a_adj} {noun} can help you {verb} the {noun} without {a_adj} {noun}.",
    "Most of the {nouns} in this {noun} are {adj}, so it is easy to {verb} them.",
    "{name} told us that she would {verb} the {noun} again next {month}.",
    "The report shows that {num} out of ten {nouns} {verb} a {noun} every {day}.",
    "You can {verb} the {noun} with {a_adj} {noun} or with {a_adj} {noun}.",
    "Even so, the {adj} {noun} is still the first thing {nouns} {verb}.",
    "During the {noun}, {name} and {name} tried to {verb} the {adj} {noun}.",
    "It seems {adj} that the {nouns} of {city} have not yet learned to {verb} the {noun}.",
    "As a result, the {noun} is now {adv} {adj} for {nouns} who {verb} with {nouns}.",
    "\"We wanted to {verb} the {noun} before {month},\" said {name}.",
    "Nobody expected the {adj} {noun} to {verb} so many {nouns} in {year}.",
    "The {nouns} at {company} spend {num} hours a week trying to {verb} the {noun}.",
    "Why would anyone {verb} {a_adj} {noun} when the {noun} is already {adj}?",
    "Our readers in {city} wrote to say that the {noun} felt {adj} and {adv} {adj}.",
    "Before you {verb} the {noun}, think about the {nouns} and the {adj} {noun} around it.",
    "{name} met us at a small café near the {noun} in {city}.",
    "Her résumé listed {num} years of {adj} work with {nouns} and {nouns}.",
    "The façade of the old {noun} looks {adj} in the evening light.",
    "It would be naïve to think that the {noun} can {verb} every {noun} by itself.",
    "Every {day}, the {nouns} of {city} gather to {verb} the {adj} {noun}.",
)
_TITLES = (
    "Why {Adj} {Nouns} Matter More Than You Think",
    "A Practical Guide to the {Adj} {Noun}",
    "How {City} Learned to {Verb} Its {Nouns}",
    "What Every {Noun} Should Know About {Nouns}",
    "The {Adj} {Noun} and the Future of {Nouns}",
    "{Num} Lessons From the {Adj} {Noun}",
    "Inside the {Noun} That Changed {City}",
)
_NAV = ("Home", "News", "Reviews", "Guides", "Opinion", "Travel", "Food", "Culture", "Science",
        "Business", "Sports", "Tech", "Health", "Style", "Books", "Podcasts")
_FOOTER = ("About us", "Contact", "Privacy policy", "Terms of use", "Advertise", "Careers", "Newsletter")
_SERVERS = ("nginx/1.24.0", "Apache/2.4.58 (Ubuntu)", "cloudflare", "Microsoft-IIS/10.0", "LiteSpeed",
            "nginx", "Apache")
_SPAM_KEYWORDS = ("cheap flights", "discount watches", "best price", "free shipping", "buy now",
                  "replica handbags", "cheap hotels", "limited offer", "online deals", "lowest price")
_ADULT_MARKERS = re.compile(rb"porn|sex|xxx|nude|adult|escort|milf|erotic|hentai|fetish|webcam")
# never put names suggesting minors or animals into generated URLs
_ADULT_EXCLUDE = re.compile(rb"teen|boy|girl|kid|child|young|school|pony|anim|lolit|baby|incest|rape")
_IBAN_LOCALES = ("en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL", "it_IT")
_PHONE_AREAS = ("212", "312", "415", "617", "202", "305", "206", "512", "702", "303", "646", "718")


@dataclass(frozen=True)
class SynthSummary:
    warc_files: list[Path]
    truth: Path
    counts: dict[str, int]

    def __str__(self) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(self.counts.items()))
        return f"{sum(self.counts.values())} responses in {len(self.warc_files)} WARC files ({kinds})"


@dataclass
class _Page:
    url: str
    kind: str
    body: bytes
    content_type: str  # HTTP Content-Type header value
    payload_type: str  # WARC-Identified-Payload-Type
    status: str = "200 OK"
    language: str | None = None
    cluster: str | None = None
    pii: list[dict] = field(default_factory=list)
    expected: str | None = "drop"
    article: str | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    charset: str | None = None


# ----------------------------------------------------------------------------------------- blocklist


@cache
def _blocklist() -> tuple[bytes, frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """(sorted domains file bytes, urls, banned words, banned subwords, soft banned words) from datatrove."""
    from datatrove.utils._import_utils import ASSETS_PATH

    domains, urls = b"", set()
    with tarfile.open(os.path.join(ASSETS_PATH, "url_filterblacklistsv0_3_0.tar.gz"), "r:gz") as tar:
        for member in tar:
            name = os.path.basename(member.name)
            if name == "domains":
                domains = tar.extractfile(member).read()
            elif name == "urls":
                lines = tar.extractfile(member).read().decode("utf-8", "replace").splitlines()
                urls = {x.strip() for x in lines if x and x[0] != "#"}

    def words(file: str) -> frozenset[str]:
        with open(os.path.join(ASSETS_PATH, file), encoding="utf-8") as f:
            return frozenset(_normalize_url_word(x) for x in f if x[0] != "#")

    return (domains, frozenset(urls), words("banned_words.txt"), words("banned_subwords.txt"),
            words("soft_banned_words.txt"))


def _normalize_url_word(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "", text).lower()


def _sorted_lines_contain(buf: bytes, key: bytes) -> bool:
    """Binary search for a whole line in bytewise-sorted, newline-separated ``buf``."""
    lo, hi = 0, len(buf)  # both always at line starts
    while lo < hi:
        mid = (lo + hi) // 2
        start = buf.rfind(b"\n", 0, mid) + 1 if mid > lo else lo
        end = buf.find(b"\n", start)
        end = len(buf) if end < 0 else end
        line = buf[start:end]
        if line == key:
            return True
        if line < key:
            lo = end + 1
        else:
            hi = start
    return False


def url_is_blocklisted(url: str) -> bool:
    """datatrove URLFilter's checks, for hosts whose registered domain is their last two labels."""
    domains, urls, banned, subwords, soft = _blocklist()
    host = urlsplit(url).hostname or ""
    for name in {host, ".".join(host.split(".")[-2:])}:
        if _sorted_lines_contain(domains, name.encode()):
            return True
    if url in urls:
        return True
    url_words = set(re.split(r"[^a-zA-Z0-9]+", url))
    if url_words & banned or len(url_words & soft) >= 2:
        return True
    flat = _normalize_url_word(url)
    return any(w and w in flat for w in subwords)


@cache
def _adult_domains() -> tuple[str, ...]:
    """Blocklisted two-label .com domains with an adult marker, sampled across the sorted list."""
    domains = _blocklist()[0]
    found: list[str] = []
    probes = 48
    for k in range(probes):
        pos = domains.find(b"\n", len(domains) * k // probes) + 1
        for _ in range(5000):  # scan forward to the first match after the probe point
            end = domains.find(b"\n", pos)
            if end < 0:
                break
            line = domains[pos:end]
            pos = end + 1
            if (line.endswith(b".com") and line.count(b".") == 1 and _ADULT_MARKERS.search(line)
                    and not _ADULT_EXCLUDE.search(line) and re.fullmatch(rb"[a-z][a-z0-9-]+\.com", line)):
                found.append(line.decode())
                break
    return tuple(dict.fromkeys(found))


# -------------------------------------------------------------------------------------------- prose


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


class _Prose:
    """English sentences from templates over a per-article vocabulary drawn from Faker's word lists."""

    def __init__(self, rng: random.Random, fk: Faker):
        self.rng = rng
        self.nouns = rng.sample(_NOUNS, 30)
        self.adjs = rng.sample(_ADJS, 20)
        self.verbs = rng.sample(_VERBS, 20)
        self.advs = rng.sample(_ADVS, 10)
        self.names = [fk.name() for _ in range(4)]
        self.cities = [fk.city() for _ in range(2)]
        self.companies = [fk.company() for _ in range(2)]

    def word(self, slot: str) -> str:
        r = self.rng
        if slot == "noun":
            return r.choice(self.nouns)
        if slot == "nouns":
            return _plural(r.choice(self.nouns))
        if slot == "adj":
            return r.choice(self.adjs)
        if slot == "a_adj":
            return _a(r.choice(self.adjs))
        if slot == "verb":
            return r.choice(self.verbs)
        if slot == "adv":
            return r.choice(self.advs)
        if slot == "name":
            return r.choice(self.names)
        if slot == "city":
            return r.choice(self.cities)
        if slot == "company":
            return r.choice(self.companies)
        if slot == "year":
            return str(r.randint(1975, 2023))
        if slot == "num":
            return r.choice(_NUMBERS)
        if slot == "month":
            return r.choice(_MONTHS)
        if slot == "day":
            return r.choice(_DAYS)
        raise KeyError(slot)

    def fill(self, template: str) -> str:
        text = re.sub(r"\{(\w+)\}", lambda m: self.word(m.group(1)), template)
        i = 1 if text[0] == '"' else 0
        return text[:i] + text[i].upper() + text[i + 1:]

    def sentence(self) -> str:
        return self.fill(self.rng.choice(_TEMPLATES))

    def paragraphs(self, n_min: int, n_max: int, s_min: int = 4, s_max: int = 7) -> list[list[str]]:
        return [[self.sentence() for _ in range(self.rng.randint(s_min, s_max))]
                for _ in range(self.rng.randint(n_min, n_max))]

    def title(self) -> str:
        def cap(m: re.Match) -> str:
            word = self.word(m.group(1).lower())
            return word[:1].upper() + word[1:]

        return re.sub(r"\{(\w+)\}", cap, self.rng.choice(_TITLES))


def _join(paragraphs: list[list[str]]) -> str:
    return "\n\n".join(" ".join(p) for p in paragraphs)


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.sub(r"[^\w\s]", "", text.lower()).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ---------------------------------------------------------------------------------------------- PII


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _pii_value(kind: str, rng: random.Random, fk: Faker) -> str:
    if kind == "EMAIL_ADDRESS":
        # Faker's email() uses reserved example.* domains, which the PII policy keeps on purpose.
        return f"{fk.user_name()}@{fk.free_email_domain()}"
    if kind == "PHONE_NUMBER":
        area, exch, line = rng.choice(_PHONE_AREAS), rng.randint(201, 989), rng.randint(100, 9999)
        if rng.random() < 0.5:
            return f"({area}) {exch}-{line:04d}"
        return f"+1 {area}-{exch}-{line:04d}"
    if kind == "IP_ADDRESS":
        return fk.ipv4_public()
    if kind == "CREDIT_CARD":
        number = fk.credit_card_number(rng.choice(("visa16", "mastercard", "discover")))
        assert len(number) == 16 and _luhn_ok(number), number
        sep = rng.choice(("-", " "))
        return sep.join(number[i:i + 4] for i in range(0, 16, 4))
    if kind == "IBAN_CODE":
        return fk.iban()
    if kind == "US_SSN":
        return fk.ssn()
    raise KeyError(kind)


_PII_TEMPLATES = {
    "EMAIL_ADDRESS": "Readers can send their questions to {v} before the end of {month}.",
    "PHONE_NUMBER": "To book a visit, call the office at {v} on any weekday.",
    "IP_ADDRESS": "The server at {v} handled most of the traffic during the {noun}.",
    "CREDIT_CARD": "One reader even posted the card number {v} in the comments, which is never a good idea.",
    "IBAN_CODE": "Donations can be sent to the account {v} at any time of the year.",
    "US_SSN": "A leaked form showed the number {v} right next to the name of {name}.",
}


# --------------------------------------------------------------------------------------------- HTML


@dataclass
class _Site:
    host: str
    name: str
    nav: list[str]
    footer: list[str]
    company: str
    lang: str = "en"


def _clean_host(rng: random.Random, fk: Faker, tlds: tuple[str, ...] = ("com", "org", "net")) -> str:
    for _ in range(50):
        first = re.sub(r"[^a-z]", "", fk.domain_word().lower()) or rng.choice(_NOUNS)
        second = rng.choice(_NOUNS)
        label = rng.choice((f"{first}{second}", f"{first}-{second}", f"the{second}{first}"))
        host = f"{rng.choice(('www.', 'www.', 'blog.', ''))}{label}.{rng.choice(tlds)}"
        if not url_is_blocklisted(f"https://{host}/"):
            return host
    raise RuntimeError("could not draw a host outside datatrove's blocklists")


def _english_site(rng: random.Random, fk: Faker, host: str | None = None) -> _Site:
    host = host or _clean_host(rng, fk)
    base = host.split(".")[-2].replace("-", " ").title()
    return _Site(host=host, name=base, nav=rng.sample(_NAV, rng.randint(5, 8)),
                 footer=rng.sample(_FOOTER, rng.randint(4, 6)), company=fk.company())


def _slug(text: str, max_words: int = 8) -> str:
    return "-".join(re.sub(r"[^a-z0-9 ]", "", text.lower()).split()[:max_words])


def _article_url(rng: random.Random, host: str, title: str) -> str:
    slug = _slug(title)
    style = rng.randrange(3)
    if style == 0:
        return f"https://{host}/{rng.randint(2015, 2024)}/{rng.randint(1, 12):02d}/{slug}/"
    if style == 1:
        return f"https://{host}/articles/{slug}-{rng.randint(1000, 99999)}"
    return f"https://{host}/{rng.choice(('blog', 'news', 'stories'))}/{slug}.html"


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _page_html(site: _Site, title: str, paragraphs: list[str], rng: random.Random, *, byline: str | None,
               sidebar: list[str], meta_charset: str | None, cookie_text: str | None,
               chrome: bool = True) -> str:
    """A full HTML document: head, cookie banner, header + nav, the article, a sidebar and a footer."""
    head = [f'<meta charset="{meta_charset}">' if meta_charset else "",
            f"<title>{_e(title)} | {_e(site.name)}</title>",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="description" content="{html.escape(paragraphs[0][:150]) if paragraphs else ""}">',
            f'<link rel="stylesheet" href="/assets/site-{rng.randint(100, 999)}.css">',
            "<script>window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}"
            " gtag('js', new Date());</script>"]
    body: list[str] = []
    if chrome and cookie_text:
        body.append(f'<div id="cookie-consent" class="cookie-banner"><p>{_e(cookie_text)}</p>'
                    '<button type="button">Accept</button> <button type="button">Reject</button></div>')
    if chrome:
        nav = "".join(f'<li><a href="/{_slug(x) or "home"}/">{_e(x)}</a></li>' for x in site.nav)
        body.append(f'<header class="site-header"><a class="logo" href="/">{_e(site.name)}</a>'
                    f'<nav class="main-nav"><ul>{nav}</ul></nav></header>')
    paras = "\n".join(f"<p>{_e(p)}</p>" for p in paragraphs)
    by = f'<p class="byline">{_e(byline)}</p>' if byline else ""
    wrapper = rng.choice(("article", "div"))
    attrs = ' class="post"' if wrapper == "article" else ' class="entry-content" itemprop="articleBody"'
    main = f"<main><{wrapper}{attrs}><h1>{_e(title)}</h1>{by}\n{paras}\n</{wrapper}>"
    if chrome and sidebar:
        links = "".join(f'<li><a href="/p/{_slug(t, 5)}">{_e(t)}</a></li>' for t in sidebar)
        main += f'<aside class="sidebar"><h3>{_e(rng.choice(("Popular", "Most read", "Related")))}</h3>' \
                f"<ul>{links}</ul></aside>"
    body.append(main + "</main>")
    if chrome:
        links = "".join(f'<li><a href="/{_slug(x)}">{_e(x)}</a></li>' for x in site.footer)
        body.append(f'<footer class="site-footer"><ul>{links}</ul>'
                    f"<p>© {rng.randint(2018, 2024)} {_e(site.company)}.</p></footer>")
    return (f'<!DOCTYPE html>\n<html lang="{site.lang}">\n<head>\n' + "\n".join(h for h in head if h)
            + "\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _encode_page(doc: str, rng: random.Random, legacy: tuple[str, ...]) -> tuple[bytes, str, str]:
    """(body bytes, Content-Type header, charset): mostly utf-8, some legacy charsets, some meta-only."""
    roll = rng.random()
    charset = rng.choice(legacy) if legacy and roll < 0.2 else "utf-8"
    meta_only = 0.2 <= roll < 0.32
    doc = doc.replace("<meta charset=\"utf-8\">", f'<meta charset="{charset}">', 1)
    body = doc.encode(charset, errors="xmlcharrefreplace")
    label = charset.upper() if rng.random() < 0.3 else charset
    content_type = "text/html" if meta_only else f"text/html; charset={label}"
    return body, content_type, charset


# ------------------------------------------------------------------------------------------- writer


def _derive(seed: int, *parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr((seed, *parts)).encode()).digest()[:8], "big")


def _record_id(seed: int, *parts: object) -> str:
    # The salt names the module as it was before the synth/ package: kept, so crawls stay byte-identical.
    digest = hashlib.sha1(repr(("corpus.synth", seed, *parts)).encode()).digest()
    return f"<urn:uuid:{uuid.UUID(bytes=digest[:16], version=5)}>"


class _Writer(WARCWriter):
    """warcio writer that refuses to invent random record ids or wall-clock dates."""

    @classmethod
    def _make_warc_id(cls):
        raise AssertionError("synthetic records must carry an explicit WARC-Record-ID")

    def curr_warc_date(self):
        raise AssertionError("synthetic records must carry an explicit WARC-Date")


def _warc_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Crawl:
    """Open WARC files, written round-robin so write order is page order."""

    def __init__(self, out_dir: Path, files: int, seed: int, start: datetime, mode: str):
        self.seed, self.start, self.mode = seed, start, mode
        self.paths = [out_dir / f"crawl-{i:05d}.warc.gz" for i in range(files)]
        self.handles = [p.open("wb") for p in self.paths]
        self.writers = [_Writer(h, gzip=True, warc_version="1.1") for h in self.handles]
        self.warcinfo_ids = []
        for i, writer in enumerate(self.writers):
            rid = _record_id(seed, mode, files, "warcinfo", i)
            self.warcinfo_ids.append(rid)
            info = (f"software: corpus.synth\r\nformat: WARC File Format 1.1\r\n"
                    f"conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
                    f"\r\nisPartOf: synthetic-crawl-{mode}-seed{seed}\r\noperator: corpus test fixtures\r\n"
                    f"description: deterministic labelled synthetic crawl, file {i + 1} of {files}\r\n"
                    f"robots: checked via crawler-commons\r\n").encode()
            writer.write_record(writer.create_warc_record(
                "", "warcinfo", payload=io.BytesIO(info), length=len(info),
                warc_content_type="application/warc-fields",
                warc_headers_dict={"WARC-Date": _warc_date(start), "WARC-Record-ID": rid,
                                   "WARC-Filename": self.paths[i].name}))

    def write(self, index: int, page: _Page, rng: random.Random) -> tuple[str, str]:
        """Request, response and metadata records of one page; returns (response id, file name)."""
        f = index % len(self.writers)
        writer = self.writers[f]
        when = self.start + timedelta(seconds=index * 7 + rng.randint(0, 5))
        date = _warc_date(when)
        parts = urlsplit(page.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        ip = f"{rng.randint(23, 216)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        req_id, resp_id, meta_id = (_record_id(self.seed, self.mode, index, t, page.url)
                                    for t in ("request", "response", "metadata"))
        common = {"WARC-Date": date, "WARC-Warcinfo-ID": self.warcinfo_ids[f], "WARC-IP-Address": ip}

        req_headers = StatusAndHeaders(f"GET {target} HTTP/1.1", [
            ("Host", parts.hostname or ""), ("Accept-Encoding", "br,gzip"),
            ("Accept-Language", "en-US,en;q=0.5"),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)"), ("Connection", "Keep-Alive"),
        ], is_http_request=True)
        writer.write_record(writer.create_warc_record(
            page.url, "request", http_headers=req_headers,
            warc_headers_dict={**common, "WARC-Record-ID": req_id}))

        headers = [("Date", format_datetime(when.replace(tzinfo=UTC), usegmt=True)),
                   ("Server", rng.choice(_SERVERS)), ("Content-Type", page.content_type),
                   ("Content-Length", str(len(page.body)))]
        if rng.random() < 0.5:
            headers.append(("Cache-Control", rng.choice(("max-age=600", "no-cache", "public, max-age=3600"))))
        if rng.random() < 0.3:
            headers.append(("X-Powered-By", rng.choice(("PHP/8.2.12", "Express", "WordPress"))))
        headers += page.extra_headers + [("Connection", "close")]
        writer.write_record(writer.create_warc_record(
            page.url, "response", payload=io.BytesIO(page.body), length=len(page.body),
            http_headers=StatusAndHeaders(page.status, headers, protocol="HTTP/1.1"),
            warc_headers_dict={**common, "WARC-Record-ID": resp_id, "WARC-Concurrent-To": req_id,
                               "WARC-Identified-Payload-Type": page.payload_type}))

        meta = f"via: {page.url}\r\nhopsFromSeed: \r\nfetchTimeMs: {rng.randint(40, 2500)}\r\n"
        if page.charset:
            meta += f"charset-detected: {page.charset.upper()}\r\n"
        meta_bytes = meta.encode()
        writer.write_record(writer.create_warc_record(
            page.url, "metadata", payload=io.BytesIO(meta_bytes), length=len(meta_bytes),
            warc_content_type="application/warc-fields",
            warc_headers_dict={**common, "WARC-Record-ID": meta_id, "WARC-Concurrent-To": resp_id}))
        return resp_id, self.paths[f].name

    def close(self) -> None:
        for h in self.handles:
            h.close()


def _start_date(seed: int) -> datetime:
    offset = timedelta(days=_derive(seed, "date") % 600, seconds=_derive(seed, "s") % 86400)
    return datetime(2024, 1, 1) + offset


# ------------------------------------------------------------------------------------------ planning


def _allocate(pages: int) -> dict[str, int]:
    """Largest-remainder allocation of ``pages`` over KIND_SHARES, every kind present when pages allow."""
    total = sum(KIND_SHARES.values())
    raw = {k: pages * s / total for k, s in KIND_SHARES.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], k))[: pages - sum(counts.values())]:
        counts[k] += 1
    if pages >= 3 * len(KIND_SHARES):
        for k in counts:
            need = (3 if k == "near_dup" else 1) - counts[k]
            if need > 0:
                counts[k] += need
                counts["good_en"] -= need
    if counts["near_dup"] < 3:  # clusters have at least three members
        counts["good_en"] += counts["near_dup"]
        counts["near_dup"] = 0
    return counts


def _cluster_sizes(n: int, rng: random.Random) -> list[int]:
    sizes = []
    while n > 6:
        sizes.append(rng.randint(3, min(6, n - 3)))
        n -= sizes[-1]
    return sizes + ([n] if n else [])


@dataclass
class _Plan:
    kinds: list[str]
    exact_source: dict[int, int]  # exact_dup index -> good_en index it copies
    near_cluster: dict[int, int]  # near_dup index -> index of the cluster's first member
    pii_pages: set[int]


def _plan(pages: int, rng: random.Random) -> _Plan:
    counts = _allocate(pages)
    kinds = [k for k in KIND_SHARES for _ in range(counts[k])]
    rng.shuffle(kinds)
    # an exact duplicate needs an earlier good_en page: swap any leading exact_dup with the first good_en
    while "exact_dup" in kinds and "good_en" in kinds and kinds.index("exact_dup") < kinds.index("good_en"):
        i, j = kinds.index("exact_dup"), kinds.index("good_en")
        kinds[i], kinds[j] = kinds[j], kinds[i]
    if "good_en" not in kinds:
        kinds = ["good_en" if k == "exact_dup" else k for k in kinds]
    goods = [i for i, k in enumerate(kinds) if k == "good_en"]
    exact_source = {i: rng.choice([g for g in goods if g < i])
                    for i, k in enumerate(kinds) if k == "exact_dup"}
    near = [i for i, k in enumerate(kinds) if k == "near_dup"]
    rng.shuffle(near)
    near_cluster: dict[int, int] = {}
    pos = 0
    for size in _cluster_sizes(len(near), rng):
        members = sorted(near[pos:pos + size])
        pos += size
        near_cluster.update({m: members[0] for m in members})
    pii_pages = set(rng.sample(goods, round(len(goods) * PII_SHARE))) if goods else set()
    return _Plan(kinds, exact_source, near_cluster, pii_pages)


# ------------------------------------------------------------------------------------------- pages


class _Generator:
    def __init__(self, seed: int):
        self.seed = seed
        self.fakers: dict[str, Faker] = {}
        self.pages: dict[int, _Page] = {}
        self.clusters: dict[int, dict] = {}  # first member index -> shared state of a near-dup cluster

    def faker(self, locale: str, index: int) -> Faker:
        if locale not in self.fakers:
            self.fakers[locale] = Faker(locale)
        fk = self.fakers[locale]
        fk.seed_instance(_derive(self.seed, "faker", locale, index))
        return fk

    @staticmethod
    def english(rng: random.Random, fk: Faker, *, kind: str, site: _Site, title: str,
                paragraphs: list[list[str]], cluster: str | None = None,
                pii: list[dict] | None = None) -> _Page:
        article = _join(paragraphs)
        titles = _Prose(rng, fk)  # sidebar links to other stories, about other things
        sidebar = [titles.title() for _ in range(rng.randint(3, 5))]
        cookie = rng.choice(("We use cookies to improve your experience on our site.",
                             "This website uses cookies. By continuing you accept our cookie policy.", None))
        byline = f"By {fk.name()} · {rng.choice(_MONTHS)} {rng.randint(1, 28)}, {rng.randint(2016, 2024)}"
        doc = _page_html(site, title, [" ".join(p) for p in paragraphs], rng, byline=byline, sidebar=sidebar,
                         meta_charset="utf-8", cookie_text=cookie)
        body, ctype, charset = _encode_page(doc, rng, ("windows-1252", "iso-8859-1"))
        url = _article_url(rng, site.host, title)
        if kind != "adult_domain" and url_is_blocklisted(url):  # a title word tripped a banned-word list
            url = f"https://{site.host}/p/{rng.randint(10000, 99999)}"
        return _Page(url=url, kind=kind, body=body, content_type=ctype, payload_type="text/html",
                     language="en", cluster=cluster, pii=pii or [],
                     expected="keep" if kind in KEEP_KINDS else "drop", article=article, charset=charset)

    def good_en(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        prose = _Prose(rng, fk)
        paragraphs = prose.paragraphs(4, 9)
        pii: list[dict] = []
        if index in plan.pii_pages:
            for kind in rng.sample(PII_TYPES, rng.randint(1, 3)):
                # IBANs from several countries; the other types are US-formatted
                source = self.faker(rng.choice(_IBAN_LOCALES), index) if kind == "IBAN_CODE" else fk
                value = _pii_value(kind, rng, source)
                sentence = prose.fill(_PII_TEMPLATES[kind].replace("{v}", "\0"))
                para = rng.choice(paragraphs)
                para.insert(rng.randint(1, len(para)), sentence.replace("\0", value))
                pii.append({"type": kind, "value": value})
        cluster = f"cluster-{index:05d}" if index in plan.exact_source.values() else None
        return self.english(rng, fk, kind="good_en", site=_english_site(rng, fk), title=prose.title(),
                            paragraphs=paragraphs, cluster=cluster, pii=pii)

    def exact_dup(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        src = self.pages[plan.exact_source[index]]
        fk = self.faker("en_US", index)
        path = urlsplit(src.url).path
        # scraper mirrors copy pages verbatim; some sites serve the same page under a second path
        host = _clean_host(rng, fk) if rng.random() < 0.6 else urlsplit(src.url).hostname
        suffix = rng.choice(("/amp", "?print=1", "/index.html", "?ref=feed"))
        url = f"https://{host}{path.rstrip('/')}{suffix}"
        return _Page(url=url, kind="exact_dup", body=src.body, content_type=src.content_type,
                     payload_type="text/html", language="en", cluster=src.cluster, pii=list(src.pii),
                     expected="keep", article=src.article, charset=src.charset)

    def near_dup(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        first = plan.near_cluster[index]
        fk = self.faker("en_US", index)
        if first == index:
            prose = _Prose(random.Random(_derive(self.seed, "cluster", index)), fk)
            base = prose.paragraphs(8, 9, 5, 7)
            self.clusters[first] = {"prose": prose, "base": base, "title": prose.title(),
                                    "shingles": [_shingles(_join(base))]}
            paragraphs = base
        else:
            state = self.clusters[first]
            paragraphs = self._edit(state, rng)
            state["shingles"].append(_shingles(_join(paragraphs)))
        state = self.clusters[first]
        return self.english(rng, fk, kind="near_dup", site=_english_site(rng, fk), title=state["title"],
                            paragraphs=paragraphs, cluster=f"cluster-{first:05d}")

    @staticmethod
    def _edit(state: dict, rng: random.Random) -> list[list[str]]:
        """Small edits (words substituted/inserted, a sentence added or dropped) keeping Jaccard >= 0.8."""
        prose: _Prose = state["prose"]
        for attempt in range(20):
            paragraphs = [list(p) for p in state["base"]]
            n_words = max(1, rng.randint(1, 3) - attempt // 5)
            for _ in range(n_words):
                para = rng.choice(paragraphs)
                s = rng.randrange(len(para))
                words = para[s].split(" ")
                w = rng.randrange(1, len(words) - 1)
                if rng.random() < 0.5:
                    words[w] = rng.choice(prose.nouns + prose.adjs)
                else:
                    words.insert(w, rng.choice(("really", "also", "often", "quite", "still", "even")))
                para[s] = " ".join(words)
            if attempt < 15:
                para = rng.choice(paragraphs)
                if rng.random() < 0.5 and len(para) > 3:
                    del para[rng.randrange(len(para))]
                else:
                    para.insert(rng.randint(0, len(para)), prose.sentence())
            sh = _shingles(_join(paragraphs))
            if all(_jaccard(sh, other) >= NEAR_DUP_MIN_JACCARD for other in state["shingles"]):
                return paragraphs
        return paragraphs

    def adult_domain(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        prose = _Prose(rng, fk)
        domains = _adult_domains()
        host = rng.choice(("www.", "")) + rng.choice(domains)
        site = _english_site(rng, fk, host=host)
        return self.english(rng, fk, kind="adult_domain", site=site, title=prose.title(),
                            paragraphs=prose.paragraphs(4, 7))

    def spam(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        kws = rng.sample(_SPAM_KEYWORDS, 3)
        paragraphs = []
        for _ in range(rng.randint(4, 7)):
            sentences = []
            for _ in range(rng.randint(4, 6)):
                a, b = rng.sample(kws, 2)
                sentences.append(f"{a.capitalize()} {b} {a} best price {b} {a} online.")
            paragraphs.append(sentences)
        title = " ".join(k.title() for k in kws) + " Best Price"
        return self.english(rng, fk, kind="spam", site=_english_site(rng, fk), title=title,
                            paragraphs=paragraphs)

    def repeated_lines(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        prose = _Prose(rng, fk)
        lines = [prose.sentence() for _ in range(rng.randint(2, 4))]
        paragraphs = [[lines[i % len(lines)]] for i in range(rng.randint(20, 30))]
        return self.english(rng, fk, kind="repeated_lines", site=_english_site(rng, fk), title=prose.title(),
                            paragraphs=paragraphs)

    def too_short(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        site = _english_site(rng, fk)
        text = rng.choice(("Coming soon.", "Page under construction. Check back later.",
                           "Thanks for visiting!", "Nothing to see here yet.", "Site moved. See you soon."))
        doc = _page_html(site, rng.choice(("Welcome", "Coming soon", site.name)), [text], rng, byline=None,
                         sidebar=[], meta_charset="utf-8", cookie_text=None, chrome=False)
        body, ctype, charset = _encode_page(doc, rng, ())
        return _Page(url=f"https://{site.host}/", kind="too_short", body=body, content_type=ctype,
                     payload_type="text/html", language="en", article=text, charset=charset)

    def foreign(self, index: int, rng: random.Random, plan: _Plan, kind: str) -> _Page:
        lang, locale, tld, legacy = _LANGS[kind]
        fk = self.faker(locale, index)
        en = self.faker("en_US", index)
        nav, rights = _LOCAL_CHROME[lang]
        site = _Site(host=_clean_host(rng, en, (tld,)), name=fk.company(), nav=list(nav), footer=[],
                     company=fk.company(), lang=lang)
        sep = "" if lang in ("zh", "ja") else " "
        paragraphs = [sep.join(fk.sentence(nb_words=rng.randint(8, 14)) for _ in range(rng.randint(3, 6)))
                      for _ in range(rng.randint(4, 7))]
        title = fk.sentence(nb_words=5).rstrip(".。")
        sidebar = [fk.sentence(nb_words=4).rstrip(".。") for _ in range(3)]
        doc = _page_html(site, title, paragraphs, rng, byline=fk.name(), sidebar=sidebar,
                         meta_charset="utf-8", cookie_text=None)
        doc = doc.replace("</footer>", f"<p>{_e(rights)}</p></footer>")
        body, ctype, charset = _encode_page(doc, rng, legacy)
        return _Page(url=f"https://{site.host}/{rng.choice(('artikel', 'article', 'news', 'page'))}/"
                         f"{rng.randint(1000, 99999)}.html",
                     kind=kind, body=body, content_type=ctype, payload_type="text/html", language=lang,
                     article="\n\n".join(paragraphs), charset=charset)

    def non_html(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        host = _clean_host(rng, fk)
        what = rng.choice(("jpeg", "pdf", "css"))
        name = _slug(" ".join(rng.sample(_NOUNS, 3)))
        if what == "jpeg":
            body = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
                    + rng.randbytes(rng.randint(800, 4000)) + b"\xff\xd9")
            return _Page(url=f"https://{host}/images/{name}.jpg", kind="non_html", body=body,
                         content_type="image/jpeg", payload_type="image/jpeg")
        if what == "pdf":
            text = f"BT /F1 12 Tf 72 720 Td ({_Prose(rng, fk).sentence()}) Tj ET"
            body = (f"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                    f"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
                    f"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
                    f"4 0 obj << /Length {len(text)} >> stream\n{text}\nendstream endobj\n"
                    f"trailer << /Root 1 0 R >>\n%%EOF\n").encode("latin-1", "replace")
            return _Page(url=f"https://{host}/files/{name}.pdf", kind="non_html", body=body,
                         content_type="application/pdf", payload_type="application/pdf")
        rules = "\n".join(
            f".{_slug(w)} {{ margin: {rng.randint(0, 24)}px; color: #{rng.randrange(16**6):06x}; }}"
            for w in rng.sample(_NOUNS, rng.randint(5, 20)))
        return _Page(url=f"https://{host}/static/css/{name}.css", kind="non_html", body=rules.encode(),
                     content_type="text/css; charset=utf-8", payload_type="text/css", charset="utf-8")

    def http_error(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        host = _clean_host(rng, fk)
        body = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
                b"<p>The requested URL was not found on this server.</p></body></html>\n")
        return _Page(url=f"https://{host}/{_slug(' '.join(rng.sample(_NOUNS, 2)))}/", kind="http_error",
                     body=body, status="404 Not Found", content_type="text/html; charset=utf-8",
                     payload_type="text/html", charset="utf-8")

    def redirect(self, index: int, rng: random.Random, plan: _Plan) -> _Page:
        fk = self.faker("en_US", index)
        host = _clean_host(rng, fk)
        target = f"https://{host}/{_slug(' '.join(rng.sample(_NOUNS, 3)))}/"
        body = (f'<!DOCTYPE html>\n<html><head><title>301 Moved Permanently</title></head><body>'
                f'<h1>Moved Permanently</h1><p>The document has moved <a href="{target}">here</a>.</p>'
                f"</body></html>\n").encode()
        return _Page(url=target.rstrip("/") + "-old", kind="redirect", body=body,
                     status="301 Moved Permanently", content_type="text/html; charset=iso-8859-1",
                     payload_type="text/html", extra_headers=[("Location", target)], charset="iso-8859-1")

    def page(self, index: int, plan: _Plan) -> _Page:
        rng = random.Random(_derive(self.seed, "page", index))
        kind = plan.kinds[index]
        if kind in _LANGS:
            page = self.foreign(index, rng, plan, kind)
        else:
            page = getattr(self, kind)(index, rng, plan)
        self.pages[index] = page
        return page


# ----------------------------------------------------------------------------------------- real HTML


def _real_sources(folder: Path) -> list[tuple[str, bytes, str | None, str | None]]:
    """(name, html bytes, url, article) per *.html / *.html.gz file; url/article from ground-truth.json."""
    truth: dict = {}
    for candidate in (folder / "ground-truth.json", folder.parent / "ground-truth.json"):
        if candidate.is_file():
            truth = json.loads(candidate.read_text(encoding="utf-8"))
            break
    out = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith((".html.gz", ".htm.gz")):
            data = gzip.decompress(path.read_bytes())
        elif path.name.endswith((".html", ".htm")):
            data = path.read_bytes()
        else:
            continue
        stem = path.name.split(".")[0]
        entry = truth.get(stem) or {}
        out.append((stem, data, entry.get("url"), entry.get("articleBody")))
    return out


_SKIP_BLOCKS = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.S | re.I)
_TEXT_NODE = re.compile(r">([^<>]{40,})<")


def _edit_real_html(data: bytes, rng: random.Random) -> bytes:
    """A near-duplicate: a few words replaced or inserted in visible body text nodes."""
    doc = data.decode("utf-8", "surrogateescape")  # round-trips every byte, whatever the real charset
    body_at = max(doc.lower().find("<body"), 0)
    skip = [m.span() for m in _SKIP_BLOCKS.finditer(doc, body_at)]
    nodes = [m.span(1) for m in _TEXT_NODE.finditer(doc, body_at)
             if len(re.findall(r"\b[A-Za-z]{4,}\b", m.group(1))) >= 6
             and not any(a <= m.start() < b for a, b in skip)]
    chosen = sorted(rng.sample(nodes, min(len(nodes), rng.randint(2, 4))), reverse=True)
    for start, end in chosen:  # right to left, so earlier spans stay valid
        text = doc[start:end]
        words = list(re.finditer(r"\b[A-Za-z]{4,}\b", text))
        w = rng.choice(words)
        adverb = rng.choice(("really", "also", "often"))
        new = rng.choice(_NOUNS) if rng.random() < 0.5 else f"{adverb} {w.group()}"
        doc = doc[:start] + text[:w.start()] + new + text[w.end():] + doc[end:]
    if not chosen:  # no usable text node: append a short paragraph instead
        at = doc.lower().rfind("</body")
        at = len(doc) if at < 0 else at
        doc = doc[:at] + f"<p>Updated on {rng.choice(_MONTHS)} {rng.randint(1, 28)}.</p>" + doc[at:]
    return doc.encode("utf-8", "surrogateescape")


def _sniff_charset(data: bytes) -> str | None:
    m = re.search(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", data[:4096], re.I)
    return m.group(1).decode("ascii").lower() if m else None


def _real_pages(folder: Path, pages: int, seed: int) -> Iterator[_Page]:
    """The real pages and their variants, streamed: a 100,000-page crawl of 140 KB pages held as a list took 14 GB."""
    sources = _real_sources(folder)
    if not sources:
        raise ValueError(f"no *.html or *.html.gz files in {folder}")
    fk = Faker("en_US")
    cycle, produced = 0, 0
    while True:
        for n, (stem, data, url, article) in enumerate(sources):
            rng = random.Random(_derive(seed, "real", cycle, n))
            fk.seed_instance(_derive(seed, "real-faker", cycle, n))
            url = url or f"https://{_clean_host(rng, fk)}/{stem[:16]}.html"
            charset = _sniff_charset(data)
            ctype = f"text/html; charset={charset}" if charset else "text/html"
            cluster = f"real-{n:05d}"
            batch = []
            if cycle == 0:
                batch.append(_Page(url=url, kind="real_html", body=data, content_type=ctype,
                                   payload_type="text/html", cluster=cluster, expected=None, language=None,
                                   article=article, charset=charset))
            for v in range(rng.randint(1, 2)):
                parts = urlsplit(url)
                if rng.random() < 0.5:
                    sep = "&" if parts.query else "?"
                    vurl = f"{url}{sep}utm_source={rng.choice(('feed', 'social', 'mail'))}&v={cycle}{v}"
                else:
                    mirror = _clean_host(rng, fk)
                    vurl = f"https://{mirror}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
                batch.append(_Page(url=vurl, kind="real_html", body=_edit_real_html(data, rng),
                                   content_type=ctype, payload_type="text/html", cluster=cluster,
                                   expected=None, language=None, article=None, charset=charset))
            for page in batch:
                if produced == pages:
                    return
                produced += 1
                yield page
        cycle += 1


def _synthetic_pages(pages: int, seed: int) -> Iterator[_Page]:
    plan = _plan(pages, random.Random(seed))
    gen = _Generator(seed)
    for i in range(pages):
        yield gen.page(i, plan)


# ------------------------------------------------------------------------------------------- public


def write_synthetic_crawl(out_dir: Path, pages: int = 200, seed: int = 0, files: int = 2,
                          from_html: Path | None = None) -> SynthSummary:
    """Write ``out_dir/crawl-NNNNN.warc.gz`` (``files`` of them) and ``out_dir/truth.jsonl``.

    Output is byte-for-byte identical for the same arguments. ``pages`` counts response records (one
    truth line each); page i goes to file ``i % files``. With ``from_html``, the responses are the real
    pages of that folder plus 1-2 edited near-duplicates of each (kind "real_html"), cycling until
    ``pages`` records are written.
    """
    if pages < 0 or files < 1:
        raise ValueError("pages must be >= 0 and files >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = "real" if from_html is not None else "synthetic"
    crawl = _Crawl(out_dir, files, seed, _start_date(seed), mode)
    truth_path = out_dir / "truth.jsonl"
    counts: Counter[str] = Counter()
    try:
        if from_html is not None:
            page_iter: Iterator[_Page] = _real_pages(Path(from_html), pages, seed)
        else:
            page_iter = _synthetic_pages(pages, seed)
        with truth_path.open("w", encoding="utf-8") as truth:
            for i, page in enumerate(page_iter):
                rid, warc_file = crawl.write(i, page, random.Random(_derive(seed, "record", i)))
                counts[page.kind] += 1
                truth.write(json.dumps({
                    "url": page.url, "record_id": rid, "warc_file": warc_file, "kind": page.kind,
                    "language": page.language, "cluster": page.cluster, "pii": page.pii,
                    "expected": page.expected, "article": page.article,
                }, ensure_ascii=False) + "\n")
    finally:
        crawl.close()
    return SynthSummary(warc_files=list(crawl.paths), truth=truth_path, counts=dict(counts))
