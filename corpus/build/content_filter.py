"""Build stage `content_filter`: adult, violent and hateful text, by word lists and learned toxicity classifiers.

Checks, in order, each a drop reason (docs/content-filter.md):
- `illegal_url`: the page's host, or a domain above it, is on the illegal-URL list (category `illegal_url`);
  adult domains are the URL filter's job already (datatrove's UT1 lists, corpus.build.url_filter);
- `badwords`: C4's LDNOOBW rule for the document's language (datatrove C4BadWordsFilter semantics);
- `lexicon_<group>`: at least `lexicon_min_hits` distinct terms of an enabled lexicon group (porn, weapons...);
- `toxic_score` (level: document): the language's classifier scores the document >= threshold;
- `toxic_share` (level: sentence, as dolma's taggers and mixer do): sentences scoring >= threshold are removed
  from the text and counted; the document is dropped when they are more than `max_toxic_share` of its characters.

It filters harm, not opinions: the political lexicon groups exist but no default enables them. Lists and models
are local files named in the config; nothing downloads at run time. Documents in a language without a model are
not scored (null columns); languages without lists pass the list checks.
"""

from __future__ import annotations

import os
import re

import pyarrow as pa

from corpus.build.content_lists import (
    C4BadWords,
    ContentFilterError,
    Lexicons,
    UrlList,
    read_wordlists,
)
from corpus.build.stage import Doc, Drop, Stage
from corpus.config import ContentFilterConf, PipelineConf

# A sentence ends at . ! ? (… ) before whitespace, after 。！？ (Chinese and Japanese put no space after them),
# and at line breaks. The separators are kept, so removing sentences leaves the rest of the text as it was.
_SENTENCE_END = re.compile(r"((?<=[.!?…])[ \t]+|(?<=[。！？])|\n+)")


def split_sentences(text: str) -> list[tuple[str, str]]:
    """(sentence, separator after it) pairs whose concatenation is `text`."""
    parts = _SENTENCE_END.split(text)
    parts.append("")
    return [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]


def load_models(models: dict[str, str]) -> dict:
    """{language: corpus.classify Classifier}; a missing or corrupt file is a ContentFilterError naming it."""
    if not models:
        return {}
    from corpus.classify.fasttext_model import ClassifierError, load_classifier

    out = {}
    for lang, path in sorted(models.items()):
        try:
            out[lang] = load_classifier(path)
        except ClassifierError as e:
            raise ContentFilterError(f"quality.content_filter.models.{lang}: {e} (train one with `corpus "
                                     "classifier train`, docs/content-filter.md)") from None
    return out


def check_content_filter(conf: ContentFilterConf | None, local: bool = True) -> None:
    """Driver-side check before any task starts: the settings are consistent and (in local mode, where the
    driver's disk is the executors') the list and model files exist."""
    if conf is None:
        return
    wants_lists = conf.badwords or bool(conf.categories)
    if not wants_lists and not conf.models:
        raise ContentFilterError("quality.content_filter: nothing to filter: set wordlists (with badwords or "
                                 "categories) or models")
    if wants_lists and not conf.wordlists:
        raise ContentFilterError("quality.content_filter.wordlists: required by badwords/categories (a local "
                                 "JSONL(.gz) of {term, list, category, lang}); set badwords: false and "
                                 "categories: [] to use the classifiers alone")
    if local:
        if wants_lists and not os.path.isfile(conf.wordlists):
            read_wordlists(conf.wordlists)  # raises with the message
        for lang, path in sorted(conf.models.items()):
            if not path.startswith(("s3://", "http://", "https://")) and not os.path.isfile(path):
                raise ContentFilterError(f"quality.content_filter.models.{lang}: model file not found: {path} "
                                         "(train one with `corpus classifier train`, docs/content-filter.md)")


class ContentFilter:
    """The lists and models of one config, applied to a text; the stage below adds the bookkeeping."""

    def __init__(self, conf: ContentFilterConf):
        check_content_filter(conf, local=False)
        self.conf = conf
        lists = read_wordlists(conf.wordlists) if conf.wordlists and (conf.badwords or conf.categories) else {}
        obscene = {lang: terms for (group, lang), terms in lists.items() if group == "obscene"}
        self.badwords = C4BadWords(obscene) if conf.badwords else None
        if conf.badwords and not obscene:
            raise ContentFilterError(f"quality.content_filter.wordlists: {conf.wordlists} has no `obscene` "
                                     "(LDNOOBW) terms for badwords; set badwords: false or use a file that has them")
        groups = set(conf.categories)
        self.lexicons = Lexicons(lists, groups)
        urls = [t for (group, _), terms in lists.items() if group == "illegal_url" for t in terms]
        self.urls = UrlList(urls if "illegal_url" in groups else [])
        self.models = load_models(conf.models)

    def check_lists(self, url: str | None, text: str, lang: str | None) -> tuple[str | None, int]:
        """(drop reason or None, distinct list hits)."""
        if self.urls.find(url):
            return "illegal_url", 1
        hits = 0
        if self.badwords is not None:
            found = self.badwords.find(text, lang)
            if found:
                return "badwords", len(found)
        for group, terms in self.lexicons.find(text, lang).items():
            hits += len(terms)
            if len(terms) >= self.conf.lexicon_min_hits:
                return f"lexicon_{group}", hits
        return None, hits

    def score(self, text: str, lang: str | None) -> tuple[str | None, str, dict]:
        """(drop reason or None, text with toxic sentences removed, columns) by the language's classifier."""
        model = self.models.get(lang)
        if model is None:
            return None, text, {"content_score": None, "toxic_sentences": None, "toxic_share": None}
        if self.conf.level == "document":
            score = float(model.score([text])[0])
            cols = {"content_score": score, "toxic_sentences": None, "toxic_share": None}
            return ("toxic_score" if score >= self.conf.threshold else None), text, cols
        pieces = split_sentences(text)
        scored = [i for i, (s, _) in enumerate(pieces) if s.strip()]
        scores = model.score([pieces[i][0] for i in scored]) if scored else []
        toxic = {i for i, s in zip(scored, scores, strict=True) if s >= self.conf.threshold}
        total = sum(len(pieces[i][0]) for i in scored)
        share = sum(len(pieces[i][0]) for i in toxic) / total if total else 0.0
        cols = {"content_score": float(max(scores)) if len(scores) else 0.0, "toxic_sentences": len(toxic),
                "toxic_share": share}
        if share > self.conf.max_toxic_share:
            return "toxic_share", text, cols
        if toxic:
            text = "".join(s + sep for i, (s, sep) in enumerate(pieces) if i not in toxic)
        return None, text, cols


class ContentFilterStage(Stage):
    """Word lists and toxicity classifiers over the final text (after the quality filters)."""

    name = "content_filter"
    section = "quality.content_filter"
    columns = (("content_score", pa.float64()), ("toxic_sentences", pa.int64()), ("toxic_share", pa.float64()),
               ("content_list_hits", pa.int64()))

    def __init__(self, conf: PipelineConf):
        super().__init__(conf)
        self.filter = ContentFilter(conf.quality.content_filter)

    def apply(self, doc: Doc) -> Drop | None:
        reason, hits = self.filter.check_lists(doc.page.url, doc.text, doc.language)
        doc.columns.update(content_score=None, toxic_sentences=None, toxic_share=None, content_list_hits=hits)
        if reason is not None:
            return Drop(reason, {"list_hits": hits})
        reason, doc.text, cols = self.filter.score(doc.text, doc.language)
        doc.columns.update(cols)
        if reason is not None:
            return Drop(reason, {k: v for k, v in cols.items() if v is not None})
        return None
