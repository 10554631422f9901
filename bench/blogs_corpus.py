"""Convert the whole Blog Authorship Corpus to the JSONL pool `conf/ablate/blogs.yaml` reads.

The corpus (19,320 bloggers, 678,170 posts; Schler et al. 2006) is one XML file per blogger in the blogs/ folder
of muhwagua/color-bert (see ../shared/data/SOURCES.md), named BLOGGER.GENDER.AGE.INDUSTRY.SIGN.xml, posts as
`<date>31,May,2004</date> <post> text </post>`. The files are not well-formed XML (bare `&`, stray bytes) and
mostly Latin-1, so they are read as bytes, decoded as UTF-8 where that works and Latin-1 otherwise, and the
date/post pairs taken with a regular expression. Records have the fields of blogs-sample.jsonl.gz: id
(BLOGGER-N, N the post's position in its file), blogger, gender, age, industry, sign, date, text (stripped).

    git clone https://github.com/muhwagua/color-bert && git -C color-bert checkout 8db0aa36
    .venv/bin/python bench/blogs_corpus.py color-bert/blogs ../shared/data/blogs/blogs-full.jsonl.gz

Files are read in name order, so the output is the same bytes on every run. Prints posts, bloggers, characters.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

POST = re.compile(rb"<date>(.*?)</date>\s*<post>(.*?)</post>", re.S)


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def records(path: Path):
    blogger, gender, age, industry, sign = path.name.removesuffix(".xml").split(".", 4)
    for n, m in enumerate(POST.finditer(path.read_bytes())):
        text = decode(m.group(2)).strip()
        if text:
            yield {"id": f"{blogger}-{n}", "blogger": blogger, "gender": gender, "age": int(age),
                   "industry": industry, "sign": sign, "date": decode(m.group(1)).strip(), "text": text}


def main(src: str, out: str) -> None:
    files = sorted(Path(src).glob("*.xml"))
    if not files:
        sys.exit(f"{src}: no BLOGGER.*.xml files (the blogs/ folder of muhwagua/color-bert)")
    posts = chars = 0
    with gzip.GzipFile(out, "wb", mtime=0) as gz:  # mtime 0: the same bytes on every run
        for f in files:
            for rec in records(f):
                gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
                posts, chars = posts + 1, chars + len(rec["text"])
    print(f"{posts:,} posts from {len(files):,} bloggers, {chars:,} characters → {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: blogs_corpus.py BLOGS_XML_FOLDER OUT.jsonl.gz")
    main(sys.argv[1], sys.argv[2])
