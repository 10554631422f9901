"""PII with real Presidio: our recognizers find what Presidio's defaults miss (recall asserted on a seeded labelled
set), the gate finds exactly what they find on whole documents, the phone pre-filter is exact; policies."""

from __future__ import annotations

import gzip
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from corpus.config import PiiConf
from corpus.pii.recognizers import DEFAULT_REGIONS, LANGUAGE_REGIONS, regions_for
from corpus.pii.scrubber import FAKE_EMAIL, FAKE_IPS, PiiScrubber
from corpus.synth.pii_eval import evaluate, generate_mixed_locale_phones, generate_records

ENTITIES = ["EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "PHONE_NUMBER"]
# Targets of issue 17 on our generated set (recall = share of gold values gone from the scrubbed text).
RECALL_TARGETS = {"EMAIL_ADDRESS": 0.99, "CREDIT_CARD": 0.99, "IBAN_CODE": 0.97, "IP_ADDRESS": 0.97, "US_SSN": 0.95,
                  "PHONE_NUMBER": 0.90}


@pytest.fixture(scope="module")
def scrubber():
    return PiiScrubber(PiiConf())


def _web_texts():
    texts = []
    for path in sorted(shared_data("docs").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    return texts


def _pii_records():
    return json.loads(shared_data("pii", "generated_small.json").read_text())


def _planted(texts, seed=0):
    """Real web text with PII values inserted at random word boundaries."""
    rnd = random.Random(seed)
    values = ["jane.doe@mailbox.org", "(212) 555-0143", "+1 415-555-0199", "8.8.4.4", "2001:4860:4860::8888",
              "4111-1111-1111-1111", "5500 0000 0000 0004", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
              "078-05-1120", "536-90-4399", "10.1.2.3", "someone@example.com", "127.0.0.1"]
    out = []
    for text in texts:
        words = text.split(" ")
        for value in rnd.sample(values, 4):
            words.insert(rnd.randrange(len(words) + 1), value)
        out.append(" ".join(words))
    return out


def _aeb_texts():
    truth = json.loads(shared_data("html", "aeb", "ground-truth.json").read_text())
    return [(item.get("articleBody") or "", item.get("url")) for _, item in sorted(truth.items())]


def _multilingual_docs():
    """Real sentences in seven languages (Latin, Cyrillic, CJK), in chunks, some with PII planted in them."""
    rnd = random.Random(3)
    values = ["+7 495 123-45-67", "03-1234-5678", "010-1234-5678", "+86 138 0013 8000", "ivan@yandex.ru",
              "gb82 west 1234 5698 7654 32", "4111 1111 1111 1111", "2001:4860::8888", "8.8.8.8",
              "０３－１２３４－５６７８", "+49 (0)30 1234567", "536-90-4399", "電話 090-1234-5678",
              "тел. 8 (495) 123-45-67"]
    docs = []
    for lang in ("de", "en", "es", "fr", "ja", "ru", "zh"):
        lines = shared_data("multilingual", f"{lang}.txt").read_text().splitlines()
        for i in range(0, len(lines), 40):
            chunk = list("\n".join(lines[i : i + 40]))
            if i % 80 == 0:
                for value in rnd.sample(values, 4):
                    chunk.insert(rnd.randrange(len(chunk) + 1), f" {value} ")
            docs.append(("".join(chunk), lang))
    return docs


def test_gate_finds_exactly_what_our_recognizers_find_on_whole_documents(scrubber):
    """Gated findings == our recognizers on whole documents (Presidio's full path, tokens included), with each
    document's own phone regions and with the default ones: real pages, labelled sets, non-Latin scripts."""
    docs = [(t, "en", None) for t in _web_texts() + _planted(_web_texts())]
    docs += [(t, None, url) for t, url in _aeb_texts()]
    docs += [(r["full_text"], r["language"], r["url"]) for r in generate_records(300, seed=11)]
    docs += [(r["full_text"], r["language"], r["url"]) for r in generate_mixed_locale_phones(200, seed=11)]
    docs += [(r["full_text"], None, None) for r in _pii_records()]
    docs += [(t, lang, None) for t, lang in _multilingual_docs()]
    edge = ["", "   ", "1234", "x@y", "::", "a" * 5000, "12 34 56 78 90 " * 200,
            "Тел. +7 495 123-45-67, почта ivan@yandex.ru", "电话 138 0013 8000 邮箱 li@qq.com",
            "IP 192.168.0.1:8080 and fe80::1%eth0", "tel 030 1234567 ext. 12 / 0171 1234567"]
    # Windows longer than a chunk (4,000 characters): chunks must not cut a token or a digit run.
    rnd = random.Random(4)
    edge += [" ".join(".".join(str(rnd.randint(0, 255)) for _ in range(4)) for _ in range(600)),
             "Phones: " + ", ".join(f"(212) 555-{rnd.randint(1000, 9999)}" for _ in range(300)),
             "tel " + " ".join(str(rnd.randint(0, 99999)) for _ in range(1500))]
    docs += [(t, None, None) for t in edge]
    total = 0
    for text, language, url in docs:
        for regions in {regions_for(language, url), DEFAULT_REGIONS}:
            full = scrubber.find_all(text, regions)
            assert scrubber.find(text, regions) == full, (regions, text[:120])
            total += len(full)
    assert total > 1000  # the comparison covers many real findings


def test_phone_prefilter_is_exact():
    """Skipping phonenumbers candidates with too few digits for a region (and, for context matches, without a
    context word near) never changes the matcher's matches."""
    import phonenumbers

    from corpus.pii.recognizers import PHONE_CONTEXT, _PlausibleMatcher, _plus_min, min_digits

    texts = [t for t in _web_texts()] + [t for t, _ in _aeb_texts()][:60] + [t for t, _ in _multilingual_docs()][::3]
    texts += [r["full_text"] for r in generate_records(200, seed=12)]
    # Local numbers that a region's prefix transform lengthens (Antigua "268", Guernsey "1481", San Marino…).
    texts += ["call 4601234 or 256789, tel. 2123456 or 106609 or 91621234, 0549 886377, 011 15 2345-6789"] * 5
    regions = sorted({r for rs in LANGUAGE_REGIONS.values() for r in rs} | set(DEFAULT_REGIONS)
                     | {"AG", "GG", "SM", "MG", "NF", "CC", "JP"})
    compared = 0
    for i, text in enumerate(texts):
        for region in regions[i % 5 :: 5]:  # every region, on a fifth of the texts each
            for leniency in (0, 1, 2):
                plain = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency)]
                possible = leniency == 0
                fast = [(m.start, m.end) for m in _PlausibleMatcher(
                    text, region, leniency, min_digits(region, possible), _plus_min(possible))]
                if possible:  # our context matches need 7+ digits; the bound then covers exactly those
                    plain = [(s, e) for s, e in plain if sum(c.isdigit() for c in text[s:e]) >= 7]
                    fast = [(s, e) for s, e in fast if sum(c.isdigit() for c in text[s:e]) >= 7]
                    with_context = [(m.start, m.end) for m in _PlausibleMatcher(
                        text, region, leniency, min_digits(region, True), _plus_min(True), need_context=True)]
                    near = [(s, e) for s, e in plain if PHONE_CONTEXT.search(text, max(0, s - 48), e + 48)]
                    assert set(near) <= set(with_context), (region, text[:100])
                assert fast == plain, (region, leniency, text[:100])
                compared += len(plain)
    assert compared > 500


def test_replacement_policy_fixed(scrubber):
    text = "Mail bob@corp.io or test@example.com, hosts 10.0.0.1, 127.0.0.1 and 8.8.8.8; card 4111-1111-1111-1111."
    new, replaced = scrubber.scrub(text)
    assert "bob@corp.io" not in new and FAKE_EMAIL in new
    assert "test@example.com" in new and "10.0.0.1" in new and "127.0.0.1" in new  # kept by policy
    assert "8.8.8.8" not in new and any(ip in new for ip in FAKE_IPS)
    assert "4111-1111-1111-1111" not in new
    assert {f.entity_type for f, _ in replaced} == {"EMAIL_ADDRESS", "IP_ADDRESS", "CREDIT_CARD"}
    assert scrubber.scrub(text) == (new, replaced)  # deterministic


def test_tag_and_hash_policies():
    text = "write to bob@corp.io"
    assert PiiScrubber(PiiConf(replacement="tag")).scrub(text)[0] == "write to <EMAIL_ADDRESS>"
    hashed = PiiScrubber(PiiConf(replacement="hash", keep_private_ips=False)).scrub(text + " from 10.0.0.1")[0]
    assert hashed.startswith("write to <EMAIL_ADDRESS:") and "<IP_ADDRESS:" in hashed


def test_precision_recall_on_presidio_research_data(scrubber):
    entities = ["EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN"]
    scores = evaluate(scrubber, _pii_records(), entities)
    assert scores["CREDIT_CARD"]["recall"] >= 0.99 and scores["EMAIL_ADDRESS"]["recall"] == 1.0
    assert scores["PHONE_NUMBER"]["recall"] >= 0.9  # Presidio's defaults: 0.5
    assert all(s["precision"] is None or s["precision"] >= 0.9 for s in scores.values()), scores
    assert sum(s["tp"] for s in scores.values()) >= 20


@pytest.fixture(scope="module")
def generated():
    return generate_records(1200, seed=0)


def test_generated_set_is_deterministic(generated):
    assert generate_records(50, seed=0) == generated[:50]
    assert generate_records(30, seed=5) == generate_records(30, seed=5)
    assert generate_records(30, seed=5) != generate_records(30, seed=6)
    kinds = {s["entity_type"] for r in generated for s in r["spans"]}
    assert kinds == set(ENTITIES) and len({r["locale"] for r in generated}) >= 10


def test_recall_and_precision_targets_on_generated_set(scrubber, generated):
    """Issue 17's targets on our seeded labelled set, and never below Presidio's defaults on any type."""
    ours = evaluate(scrubber, generated, ENTITIES)
    presidio = evaluate(PiiScrubber(PiiConf(recognizers="presidio")), generated, ENTITIES)
    for entity, target in RECALL_TARGETS.items():
        assert ours[entity]["gold"] >= 150, ours[entity]
        assert ours[entity]["recall"] >= target, (entity, ours[entity])
        assert ours[entity]["precision"] >= 0.95, (entity, ours[entity])
        assert ours[entity]["recall"] >= presidio[entity]["recall"], (entity, ours[entity], presidio[entity])
    # Where Presidio's defaults lose most: cards in groupings, IBANs in lower case or before a word, phones.
    for entity in ("CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER"):
        assert ours[entity]["recall"] > presidio[entity]["recall"] + 0.05, (entity, ours[entity], presidio[entity])


def test_phones_of_any_region_next_to_a_phone_word():
    """Issue 25: a number of a region that neither the document's language nor its domain points to is found
    when a phone word in one of the seven languages stands next to it (recall >= 0.95 on the mixed-locale set);
    a phone word does not make a date, a year range or an order number before a CJK full stop a phone."""
    scrubber = PiiScrubber(PiiConf())
    records = generate_mixed_locale_phones(600, seed=3)
    assert len({r["language"] for r in records}) == 7 and len({r["region"] for r in records}) >= 30
    result = evaluate(scrubber, records, ["PHONE_NUMBER"])["PHONE_NUMBER"]
    assert result["recall"] >= 0.95 and result["precision"] >= 0.99, result
    # The case the regional rules miss: a Seoul number on an English .com page.
    text = "Our Seoul office: phone 02-751-1500, open weekdays."
    assert "02-751-1500" not in scrubber.scrub(text, "en", "https://example-news.com/a")[0]
    for text in ["Tel. 17.05.2023 geschlossen", "phone lines 2004 - 2014 were busy",
                 "订单号48213377已发货。联系电话：无", "Call +999 1234567"]:
        assert scrubber.scrub(text, None, None)[1] == [], text


def test_iban_forms_presidio_loses():
    """The IBAN loss of issue 17: lower case (the gate was case-sensitive while Presidio is not) and IBANs whose
    length is a multiple of four followed by a word (Presidio's greedy groups swallow the word)."""
    ours, presidio = PiiScrubber(PiiConf()), PiiScrubber(PiiConf(recognizers="presidio"))
    for value in ["gb82 west 1234 5698 7654 32", "de89370400440532013000", "BE68539007547034",
                  "NL91 ABNA 0417 1643 00", "fr14 2004 1010 0505 0001 3m02 606"]:
        text = f"Please send the money to account {value} before Friday."
        assert value not in ours.scrub(text)[0], value
    assert "BE68539007547034" in presidio.scrub("Pay to BE68539007547034 before Friday.")[0]
    for bad in ["GB83 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 0", "XX89370400440532013000"]:
        assert ours.scrub(f"account {bad} ok")[0] == f"account {bad} ok"  # checksum, length, country


def test_cards_ips_and_context():
    ours = PiiScrubber(PiiConf())
    for value in ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111.1111.1111.1111", "3782 822463 10005",
                  "5555555555554444", "4012 8888 8888 1881", "2223 0031 2200 3222"]:
        assert value not in ours.scrub(f"paid with {value} today")[0], value
    for not_card in ["4111 1111 1111 1112", "1234 5678 9012 3456", "978-3-16-148410-0"]:
        assert not any(f.entity_type == "CREDIT_CARD" for f in ours.find(f"number {not_card} here")), not_card
    for value in ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.4.4", "64:ff9b::808:808", "2606:4700:4700::1111"]:
        assert value not in ours.scrub(f"from {value} at night")[0], value
    assert not any(f.entity_type == "IP_ADDRESS" for f in ours.find("Appelez le +33.6.12.30.38.70 demain"))
    # Context words: a bare 9-digit number is an SSN only next to an SSN word; a merely possible phone number
    # counts only next to a phone word.
    assert {f.entity_type for f in ours.find("SSN: 536904399")} >= {"US_SSN"}
    assert not any(f.entity_type == "US_SSN" for f in ours.find("order 536904399 shipped"))
    assert not ours.find("Hardcover, $53.00 (ISBN 0375403744).", ("US", "GB", "AU", "IN"))  # a real false positive
    assert ours.find("Please call me at (96) 627-277 tonight")
    assert not ours.find("The box weighs (96) 627-277 units")


def test_regions_from_language_and_tld():
    assert regions_for("de", "https://shop.example.at/x") == ("AT", "CH", "DE")
    assert regions_for("en", "http://www.bbc.co.uk/news") == tuple(sorted(set(LANGUAGE_REGIONS["en"]) | {"GB"}))
    assert regions_for(None, "https://example.nz") == ("NZ",)
    assert regions_for(None, None) == DEFAULT_REGIONS == regions_for("xx", "https://example.com")
    ours = PiiScrubber(PiiConf())
    text = "Rufen Sie an: 030 12345678 oder schreiben Sie."
    assert "030 12345678" not in ours.scrub(text, "de", "https://example.de")[0]


def test_fineweb_policy_preset():
    """FineWeb's own policy: e-mails (all of them) and public IPs only, deterministic replacements."""
    conf = PiiConf(policy="fineweb")
    assert conf.effective().entities == ["EMAIL_ADDRESS", "IP_ADDRESS"]
    fineweb = PiiScrubber(conf)
    text = ("Mail bob@corp.io or test@example.com, hosts 10.0.0.1 and 8.8.8.8 and 2001:4860::8888; "
            "call +1 415-555-0199, card 4111-1111-1111-1111, IBAN DE89370400440532013000.")
    new, replaced = fineweb.scrub(text)
    assert "bob@corp.io" not in new and "test@example.com" not in new and "8.8.8.8" not in new
    assert "10.0.0.1" in new and "+1 415-555-0199" in new and "4111-1111-1111-1111" in new
    assert "DE89370400440532013000" in new
    assert {f.entity_type for f, _ in replaced} == {"EMAIL_ADDRESS", "IP_ADDRESS"}
    assert fineweb.scrub(text) == (new, replaced) and PiiScrubber(conf).scrub(text) == (new, replaced)
    corpus_new, _ = PiiScrubber(PiiConf()).scrub(text)
    assert "test@example.com" in corpus_new and "4111-1111-1111-1111" not in corpus_new


def test_bad_input_long_digits_and_scripts(scrubber):
    # Number tables are refused up front (dropped and counted by the job), the rest is scrubbed in bounded work.
    for text in ["9" * 200_000, "1 2 3 4 5 6 7 8 9 0 " * 20_000, "1.1.1.1 " * 20_000]:
        assert scrubber.too_dense(text)
    for text in ["字" * 300_000, "@" * 50_000, "a@" * 20_000, "x@y." * 10_000, "Привет мир " * 20_000]:
        assert not scrubber.too_dense(text)
        new, _ = scrubber.scrub(text)
        assert len(new) > 0


def test_pii_job_on_spark(spark, tmp_path):
    from corpus.steps.pii import run_pii

    texts = _planted(_web_texts()[:10], seed=1)
    rows = [{"id": f"d{i}", "text": t, "url": ""} for i, t in enumerate(texts)]
    rows.append({"id": "table", "text": "1 2 3 4 5 6 7 8 9 0 " * 20_000, "url": ""})
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "part-0.parquet")
    stats = run_pii(spark, str(tmp_path / "in"), str(tmp_path / "pii"), PiiConf(), partitions=2)
    out = pq.read_table(tmp_path / "pii" / "docs").to_pylist()
    assert len(out) == 10 and all(r["pii_count"] >= 1 for r in out)
    joined = "\n".join(r["text"] for r in out)
    for value in ["jane.doe@mailbox.org", "4111-1111-1111-1111", "8.8.4.4"]:
        assert value not in joined
    assert stats["replaced_spans"] == sum(r["pii_count"] for r in out)
    assert set(stats["per_entity"]) <= set(PiiConf().entities)
    assert stats["documents_dropped_too_dense"] == 1
    assert json.loads((tmp_path / "stats" / "pii.json").read_text())["documents"] == 10


def test_planted_pii_recall_and_precision_per_type(scrubber, tmp_path):
    from corpus.synth.crawl import write_synthetic_crawl

    write_synthetic_crawl(tmp_path / "crawl", pages=600, seed=9, files=1)
    truth = [json.loads(line) for line in (tmp_path / "crawl" / "truth.jsonl").read_text().splitlines()]
    pages = [t for t in truth if t["kind"] == "good_en" and t["article"]]
    found_by_type: dict[str, list[int]] = {}
    false_pos: dict[str, int] = {}
    for page in pages:
        text = page["article"]
        findings = scrubber.policy(text, scrubber.find(text))
        values = {(p["type"], p["value"]) for p in page["pii"]}
        for entity, value in values:
            hit = any(f.entity_type == entity and value in text[f.start : f.end] for f in findings)
            found_by_type.setdefault(entity, [0, 0])[0] += hit
            found_by_type[entity][1] += 1
        for f in findings:
            if not any(f.entity_type == e and v in text[f.start : f.end] for e, v in values):
                false_pos[f.entity_type] = false_pos.get(f.entity_type, 0) + 1
    assert set(found_by_type) == set(PiiConf().entities)
    for entity, (hits, total) in found_by_type.items():
        assert total >= 5 and hits / total >= 0.99, (entity, hits, total)
        assert hits / (hits + false_pos.get(entity, 0)) >= 0.98, (entity, hits, false_pos)
