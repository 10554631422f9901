"""Labelled PII evaluation: a seeded templated generator (Faker, several locales and formats) and the scores.

Records use presidio-research's format (`full_text`, `spans` with entity_type/entity_value/start_position/
end_position) plus `language` and `url`, so the same scorer reads both ours and generated_small.json.

Scores per entity type (docs/pii.md):
- recall: the share of gold values no longer present in the scrubbed text (what a reader of the corpus sees);
- span precision: predicted spans (after the policy) that overlap a gold span of the same type.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter

import phonenumbers
from faker import Faker

from corpus.pii.scrubber import PiiScrubber

# locale -> (language, country-code TLD or "" for .com, phonenumbers region)
LOCALES = {
    "en_US": ("en", "", "US"), "en_GB": ("en", "co.uk", "GB"), "en_AU": ("en", "com.au", "AU"),
    "en_IN": ("en", "in", "IN"), "de_DE": ("de", "de", "DE"), "de_AT": ("de", "at", "AT"),
    "fr_FR": ("fr", "fr", "FR"), "es_ES": ("es", "es", "ES"), "es_MX": ("es", "mx", "MX"),
    "it_IT": ("it", "it", "IT"), "nl_NL": ("nl", "nl", "NL"), "pt_BR": ("pt", "com.br", "BR"),
}
IBAN_LOCALES = ("en_GB", "de_DE", "de_AT", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "nl_BE", "pl_PL",
                "pt_PT", "fi_FI", "no_NO", "cs_CZ", "de_CH", "en_IE")
CARD_TYPES = ("visa16", "visa13", "visa19", "mastercard", "amex", "discover", "jcb16", "jcb15", "diners", "maestro")

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "EMAIL_ADDRESS": ["Write to {v} if you have questions.", "Contact: {v}", "Send your CV to {v} by Friday.",
                          "my mail is {v} thanks", "Questions? Email {v}."],
        "PHONE_NUMBER": ["Call me at {v} after six.", "Phone: {v}", "For bookings ring the front desk on {v}.",
                         "You can reach our office on {v} on weekdays.", "tel {v}", "Mobile {v} (evenings only)",
                         "Our hotline {v} is open 24/7.", "{v} is the number to reach {name}."],
        "CREDIT_CARD": ["My card number is {v}, expiry 04/27.", "Charge it to {v} please.",
                        "The payment was made with {v}.", "cc: {v}", "{name} paid with card {v} yesterday."],
        "IBAN_CODE": ["Please transfer the fee to {v} before the deadline.", "IBAN: {v}",
                      "Donations go to account {v} at any time.", "my iban is {v} thank you"],
        "IP_ADDRESS": ["The login came from {v} at night.", "Server IP {v} was blocked.",
                       "connect to {v} and retry", "Requests from {v} were rate limited."],
        "US_SSN": ["My social security number is {v}.", "SSN: {v}", "{name}'s SSN {v} was leaked.",
                   "Social Security No. {v}"],
    },
    "de": {
        "EMAIL_ADDRESS": ["Schreiben Sie an {v}, wenn Sie Fragen haben.", "Kontakt: {v}"],
        "PHONE_NUMBER": ["Rufen Sie mich unter {v} an.", "Telefon: {v}", "Tel. {v}",
                         "Unser Büro erreichen Sie unter {v}."],
        "CREDIT_CARD": ["Meine Kartennummer ist {v}.", "Bezahlt wurde mit der Karte {v}."],
        "IBAN_CODE": ["Bitte überweisen Sie den Betrag auf {v} bis Montag.", "IBAN: {v}"],
        "IP_ADDRESS": ["Der Zugriff kam von {v} in der Nacht.", "Server-IP {v} wurde gesperrt."],
    },
    "fr": {
        "EMAIL_ADDRESS": ["Écrivez-nous à {v} pour toute question.", "Contact : {v}"],
        "PHONE_NUMBER": ["Appelez-moi au {v} après 18 heures.", "Tél. : {v}", "Le secrétariat répond au {v}."],
        "CREDIT_CARD": ["Mon numéro de carte est {v}.", "Payé avec la carte {v} hier."],
        "IBAN_CODE": ["Merci de virer le montant sur {v} avant lundi.", "IBAN : {v}"],
        "IP_ADDRESS": ["La connexion venait de {v} pendant la nuit."],
    },
    "es": {
        "EMAIL_ADDRESS": ["Escríbanos a {v} si tiene preguntas.", "Contacto: {v}"],
        "PHONE_NUMBER": ["Llámeme al {v} por la tarde.", "Teléfono: {v}", "La oficina atiende en el {v}."],
        "CREDIT_CARD": ["Mi número de tarjeta es {v}.", "Pagó con la tarjeta {v} ayer."],
        "IBAN_CODE": ["Transfiera el importe a {v} antes del lunes.", "IBAN: {v}"],
        "IP_ADDRESS": ["El acceso vino de {v} durante la noche."],
    },
}
FILLERS = {
    "en": ["The meeting moved to Tuesday.", "Prices start at $1,299.99 for the base model.",
           "Doors open at 9:30 and close at 17:00.", "The report covers 2019 to 2023.", "Order #48213377 shipped.",
           "ISBN 978-3-16-148410-0 is out of print.", "Version 2.4.1 fixes the bug.", "Room 214, floor 3.",
           "The EAN on the box reads 4006381333931.", "Population grew by 3.5% to 1,204,331 in 2021.",
           "Ticket 2023-05-17-0042 was closed.", "Zip code 90210-1234 is in California.",
           "Tracking: 1Z999AA10123456784.", "See page 12-14 (2003)."],
    "de": ["Die Sitzung wurde auf den 17.05.2023 verschoben.", "Preis: 1.299,99 Euro.", "Öffnungszeiten 9:30–17:00.",
           "Bestellnummer 48213377 wurde versandt.", "PLZ 10115 Berlin."],
    "fr": ["La réunion est reportée au 17/05/2023.", "Prix : 1 299,99 euros.", "Ouvert de 9h30 à 17h00.",
           "Commande n° 48213377 expédiée."],
    "es": ["La reunión pasó al 17/05/2023.", "Precio: 1.299,99 euros.", "Abierto de 9:30 a 17:00.",
           "Pedido 48213377 enviado."],
}


def _phone_value(rng: random.Random, fk: Faker, region: str) -> str:
    """Half Faker's own strings (some not valid numbers), half valid numbers of the region in written formats."""
    if rng.random() < 0.5:
        return fk.phone_number()
    ptype = rng.choice((phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE))
    example = phonenumbers.example_number_for_type(region, ptype) or phonenumbers.example_number(region)
    nsn = str(example.national_number)
    for _ in range(50):  # randomize the tail until the number is valid again
        keep = max(2, len(nsn) - 5)
        cand = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
        num = phonenumbers.parse("+" + str(example.country_code) + cand)
        if phonenumbers.is_valid_number(num):
            break
    else:
        num = example
    style = rng.choice(("national", "international", "e164", "dots", "dashes", "ext", "intl_ext"))
    if style == "national":
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    if style == "e164":
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if style == "dots":
        return intl.replace(" ", ".").replace("+", "+", 1).replace("+.", "+")
    if style == "dashes":
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL).replace(" ", "-")
    if style == "ext":
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL) + f" ext. {rng.randint(2, 999)}"
    if style == "intl_ext":
        return intl + f" x{rng.randint(10, 9999)}"
    return intl


def _card_value(rng: random.Random, fk: Faker) -> str:
    digits = fk.credit_card_number(rng.choice(CARD_TYPES))
    style = rng.choice(("plain", "space", "dash", "dot", "plain", "space"))
    if style == "plain":
        return digits
    sep = {"space": " ", "dash": "-", "dot": "."}[style]
    if len(digits) == 15:  # Amex 4-6-5
        groups = [digits[:4], digits[4:10], digits[10:]]
    elif len(digits) == 14:  # Diners 4-6-4
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return sep.join(groups)


def _iban_value(rng: random.Random, seed: int) -> str:
    fk = Faker(rng.choice(IBAN_LOCALES))
    fk.seed_instance(seed)
    iban = fk.iban()
    style = rng.choice(("compact", "spaced", "lower", "lower_spaced", "spaced", "compact"))
    if "spaced" in style:
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban.lower() if "lower" in style else iban


def _ip_value(rng: random.Random, fk: Faker) -> str:
    """Public (global) addresses only: private ones are kept by the policy on purpose (docs/pii.md)."""
    while True:
        style = rng.choice(("v4", "v4", "v4_port", "v6_full", "v6_compressed", "v6_mapped", "v6_embedded",
                            "v6_bracket_port", "v6_upper"))
        if style.startswith("v4"):
            v4 = fk.ipv4_public()
            return v4 + (f":{rng.randint(1, 65535)}" if style == "v4_port" else "")
        if style in ("v6_mapped", "v6_embedded"):
            v4 = fk.ipv4_public()
            value = f"::ffff:{v4}" if style == "v6_mapped" else f"64:ff9b::{v4}"
            if ipaddress.ip_address(value).is_global or style == "v6_mapped":
                return value
            continue
        groups = [rng.randint(0, 0xFFFF) for _ in range(8)]
        groups[0] = rng.choice((0x2001, 0x2400, 0x2600, 0x2a00, 0x2a02, 0x2c0f)) + rng.randint(0, 0xF)
        if style in ("v6_compressed", "v6_bracket_port"):
            i = rng.randint(2, 5)
            for j in range(i, min(8, i + rng.randint(2, 4))):
                groups[j] = 0
        address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
        if not address.is_global:
            continue
        if style == "v6_full":
            return address.exploded
        if style == "v6_upper":
            return address.compressed.upper()
        if style == "v6_bracket_port":
            return f"[{address.compressed}]:{rng.randint(1, 65535)}"
        return address.compressed


def _ssn_value(rng: random.Random, fk: Faker) -> str:
    ssn = fk.ssn()
    style = rng.choice(("dash", "dash", "space", "dot", "plain"))
    sep = {"dash": "-", "space": " ", "dot": ".", "plain": ""}[style]
    return ssn.replace("-", sep)


def _email_value(rng: random.Random, fk: Faker) -> str:
    user = fk.user_name()
    style = rng.choice(("free", "company", "dotted", "plus", "upper", "sub"))
    if style == "free":
        return f"{user}@{fk.free_email_domain()}"
    if style == "dotted":
        return f"{fk.first_name().lower()}.{fk.last_name().lower()}@{fk.domain_name()}".replace(" ", "")
    if style == "plus":
        return f"{user}+{rng.choice(('news', 'shop', 'x1'))}@{fk.free_email_domain()}"
    if style == "upper":
        return f"{user}@{fk.domain_name()}".upper()
    if style == "sub":
        return f"{user}@mail.{fk.domain_name()}"
    return fk.company_email()


def _value(kind: str, rng: random.Random, fk: Faker, region: str, seed: int) -> str:
    if kind == "EMAIL_ADDRESS":
        return _email_value(rng, fk)
    if kind == "PHONE_NUMBER":
        return _phone_value(rng, fk, region)
    if kind == "CREDIT_CARD":
        return _card_value(rng, fk)
    if kind == "IBAN_CODE":
        return _iban_value(rng, seed)
    if kind == "IP_ADDRESS":
        return _ip_value(rng, fk)
    if kind == "US_SSN":
        us = Faker("en_US")
        us.seed_instance(seed)
        return _ssn_value(rng, us)
    raise ValueError(kind)


def generate_records(n: int, seed: int = 0) -> list[dict]:
    """`n` labelled documents of 1-3 PII sentences among filler sentences; identical for the same seed."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        locale = rng.choice(sorted(LOCALES))
        language, tld, region = LOCALES[locale]
        fk = Faker(locale)
        fk.seed_instance(seed * 1_000_003 + i)
        templates = TEMPLATES[language if language in TEMPLATES else "en"]
        kinds = rng.sample(sorted(templates), rng.randint(1, min(3, len(templates))))
        lang = language if language in TEMPLATES else "en"
        pieces: list[tuple[str, str | None, str]] = []  # (text before value, kind, value) or filler
        for kind in kinds:
            template = rng.choice(templates[kind])
            value = _value(kind, rng, fk, region, seed * 7919 + i)
            pieces.append((template.replace("{name}", fk.first_name()), kind, value))
        for _ in range(rng.randint(1, 3)):
            pieces.insert(rng.randrange(len(pieces) + 1), (rng.choice(FILLERS[lang]), None, ""))
        text, spans = "", []
        for template, kind, value in pieces:
            text += " " if text else ""
            if kind is None:
                text += template
                continue
            before, after = template.split("{v}")
            start = len(text) + len(before)
            text += before + value + after
            spans.append({"entity_type": kind, "entity_value": value, "start_position": start,
                          "end_position": start + len(value)})
        host = fk.domain_word() + "." + (tld or "com")
        records.append({"full_text": text, "spans": spans, "language": language, "url": f"https://{host}/p/{i}",
                        "locale": locale})
    return records


def evaluate(scrubber: PiiScrubber, records: list[dict], entities: list[str]) -> dict[str, dict]:
    """Per entity: recall (gold values gone from the scrubbed text), span precision (after the policy), and the
    raw counts. A prediction is correct when it overlaps a gold span of the same type."""
    gone, total, tp, fp = Counter(), Counter(), Counter(), Counter()
    for rec in records:
        text = rec["full_text"]
        gold = [(s["start_position"], s["end_position"], s["entity_type"], s["entity_value"]) for s in rec["spans"]
                if s["entity_type"] in entities]
        new_text, replaced = scrubber.scrub(text, rec.get("language"), rec.get("url"))
        for _, _, kind, value in gold:
            total[kind] += 1
            gone[kind] += value not in new_text
        for f, _ in replaced:
            if f.entity_type not in entities:
                continue
            if any(k == f.entity_type and f.start < e and s < f.end for s, e, k, _ in gold):
                tp[f.entity_type] += 1
            else:
                fp[f.entity_type] += 1
    out = {}
    for entity in entities:
        predicted = tp[entity] + fp[entity]
        out[entity] = {"gold": total[entity], "gone": gone[entity], "tp": tp[entity], "fp": fp[entity],
                       "recall": round(gone[entity] / total[entity], 4) if total[entity] else None,
                       "precision": round(tp[entity] / predicted, 4) if predicted else None}
    return out


def false_positives(scrubber: PiiScrubber, records: list[dict], entities: list[str]) -> list[dict]:
    """Predicted spans that overlap no gold span of their type, with some context (for reading by hand)."""
    out = []
    for rec in records:
        text = rec["full_text"]
        gold = [(s["start_position"], s["end_position"], s["entity_type"]) for s in rec["spans"]]
        _, replaced = scrubber.scrub(text, rec.get("language"), rec.get("url"))
        for f, value in replaced:
            if f.entity_type in entities and not any(k == f.entity_type and f.start < e and s < f.end
                                                     for s, e, k in gold):
                out.append({"type": f.entity_type, "value": value, "context": text[max(0, f.start - 40) : f.end + 40]})
    return out


# Phone sentences in the seven languages of the multilingual build, for the mixed-locale set.
PHONE_TEMPLATES: dict[str, list[str]] = {
    "en": TEMPLATES["en"]["PHONE_NUMBER"],
    "de": TEMPLATES["de"]["PHONE_NUMBER"] + ["Handy: {v}", "Fax {v}"],
    "fr": TEMPLATES["fr"]["PHONE_NUMBER"] + ["Portable : {v}", "Téléphone : {v}"],
    "es": TEMPLATES["es"]["PHONE_NUMBER"] + ["Móvil: {v}", "WhatsApp {v}"],
    "ru": ["Телефон: {v}", "Звоните по номеру {v} в рабочее время.", "тел. {v}", "Моб. {v}", "Факс {v}"],
    "zh": ["联系电话：{v}", "请拨打{v}咨询。", "手机 {v}", "電話：{v}", "传真：{v}", "客服热线 {v}"],
    "ja": ["電話番号：{v}", "お問い合わせは{v}まで電話でどうぞ。", "TEL {v}", "携帯 {v}", "ＴＥＬ：{v}"],
}
PHONE_FILLERS: dict[str, list[str]] = {
    **FILLERS,
    "ru": ["Заседание перенесли на 17.05.2023.", "Цена 1 299,99 рубля.", "Заказ 48213377 отправлен.",
           "Открыто с 9:30 до 17:00."],
    "zh": ["会议改到2023年5月17日。", "价格为1299.99元。", "订单号48213377已发货。", "营业时间9:30至17:00。"],
    "ja": ["会議は2023年5月17日に変更されました。", "価格は1,299円です。", "注文番号48213377を発送しました。",
           "営業時間は9:30〜17:00です。"],
}
# Regions whose numbers the mixed-locale set writes: every continent, many outside any language's regions.
WORLD_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "AR", "JP", "CN", "TW", "HK", "KR", "RU",
                 "UA", "IN", "AU", "SG", "ZA", "NG", "EG", "TR", "SA", "AE", "IL", "PL", "SE", "CH", "CL", "CO",
                 "VN", "TH", "ID", "PH", "MY", "KE", "MA", "PK")
WORLD_TLDS = ("com", "net", "org", "io", "co.uk", "de", "fr", "jp", "cn", "ru", "es", "com.br", "in")


def generate_mixed_locale_phones(n: int, seed: int = 0) -> list[dict]:
    """`n` documents, each one phone sentence in one of seven languages among fillers, with a number of a region
    drawn independently of the language and of the site's domain (the case regional rules miss)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        lang = rng.choice(sorted(PHONE_TEMPLATES))
        region = rng.choice(WORLD_REGIONS)
        value = _world_phone(rng, region)
        template = rng.choice(PHONE_TEMPLATES[lang])
        pieces = [rng.choice(PHONE_FILLERS[lang]) for _ in range(rng.randint(1, 3))]
        at = rng.randrange(len(pieces) + 1)
        sep = "" if lang in ("zh", "ja") else " "
        before_text = sep.join(pieces[:at])
        before, after = template.split("{v}")
        head = before_text + (sep if before_text else "") + before
        text = head + value + after + (sep if pieces[at:] else "") + sep.join(pieces[at:])
        records.append({"full_text": text, "language": lang, "region": region,
                        "url": f"https://site{i}.{rng.choice(WORLD_TLDS)}/contact",
                        "spans": [{"entity_type": "PHONE_NUMBER", "entity_value": value, "start_position": len(head),
                                   "end_position": len(head) + len(value)}]})
    return records


def _world_phone(rng: random.Random, region: str) -> str:
    """A valid number of `region` in one of the ways people write them: national, international, "00" prefix,
    E.164, dotted, dashed, or with an extension."""
    ptype = rng.choice((phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE))
    example = phonenumbers.example_number_for_type(region, ptype) or phonenumbers.example_number(region)
    nsn = str(example.national_number)
    num = example
    for _ in range(50):
        keep = max(2, len(nsn) - 4)
        cand = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
        parsed = phonenumbers.parse("+" + str(example.country_code) + cand)
        if phonenumbers.is_valid_number(parsed):
            num = parsed
            break
    fmt = phonenumbers.PhoneNumberFormat
    intl = phonenumbers.format_number(num, fmt.INTERNATIONAL)
    style = rng.choice(("national", "international", "double_zero", "e164", "dots", "dashes", "ext"))
    if style == "national":
        return phonenumbers.format_number(num, fmt.NATIONAL)
    if style == "double_zero":
        return "00" + intl[1:]
    if style == "e164":
        return phonenumbers.format_number(num, fmt.E164)
    if style == "dots":
        return intl.replace(" ", ".").replace("+.", "+")
    if style == "dashes":
        return intl.replace(" ", "-").replace("+-", "+")
    if style == "ext":
        return phonenumbers.format_number(num, fmt.NATIONAL) + f" x{rng.randint(10, 999)}"
    return intl
