"""Write tests/data/pii_varied_corpus.jsonl: PII typed into free text, in English and Japanese.

The import-time PII goal (issue #14) is measured on this corpus: at least 200 texts with one PII span
each, in the forms a careless data owner types into a product description or a note: names in lower
case, in upper case without a title, Japanese names (kanji with or without an honorific, katakana,
romaji), obfuscated e-mails ("john at example dot com"), Japanese and European phone numbers (also in
full-width digits), Japanese and European street addresses, cards and IBANs.

Each line: {"id", "type", "lang", "form", "text", "spans": [[start, end]], "split"}. The gold span is
where the template's value went. Two template/value pools were written before the detectors were
changed: ``dev`` (tuned on) and ``holdout`` (read once, after tuning; docs/checks.md reports both).

    .venv/bin/python scripts/make_pii_corpus.py          # rewrites the file (seeded, deterministic)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii_varied_corpus.jsonl"
SEED = 14

# --------------------------------------------------------------------------- values (dev / holdout)

EN_PEOPLE = {
    "dev": [("Sarah", "Mitchell"), ("Aoife", "Byrne"), ("Mohammed", "Khan"), ("Giulia", "Rossi"),
            ("Lars", "Nielsen"), ("Priya", "Patel"), ("Thomas", "Müller"), ("Olivia", "Brennan"),
            ("Daniel", "Kowalski"), ("Emma", "Johansson"), ("Lucas", "Moreau"), ("Hannah", "Fischer")],
    "holdout": [("Siobhan", "Gallagher"), ("James", "Thornton"), ("Sofia", "García"), ("Pieter", "de Vries"),
                ("Grace", "Okonkwo"), ("Henrik", "Larsen"), ("Charlotte", "Dubois"), ("Marek", "Nowak")],
}  # fmt: skip
JP_PEOPLE = {  # (surname, given name) in kanji, katakana reading of a western name, romaji
    "dev": [("佐藤", "健太"), ("鈴木", "美咲"), ("高橋", "大輔"), ("田中", "陽子"), ("渡辺", "翔太"),
            ("山本", "由美"), ("中村", "誠"), ("小林", "直樹"), ("加藤", "恵"), ("吉田", "拓也")],
    "holdout": [("伊藤", "花子"), ("山田", "太郎"), ("松本", "彩"), ("井上", "亮"), ("木村", "真由美"),
                ("斎藤", "浩二")],
}  # fmt: skip
KATAKANA = {
    "dev": ["ジョン・スミス", "サラ・ミッチェル", "マイケル・ブラウン", "エマ・ワトソン", "デビッド・ジョーンズ"],
    "holdout": ["メアリー・テイラー", "ジェームズ・ウィルソン", "アンナ・シュミット"],
}
ROMAJI = {
    "dev": [("Takashi", "Yamamoto"), ("Yuki", "Tanaka"), ("Hiroshi", "Sato"), ("Kenji", "Watanabe")],
    "holdout": [("Akiko", "Suzuki"), ("Daisuke", "Kobayashi")],
}
EMAIL_USERS = {"dev": ["sarah.mitchell", "aoife.byrne", "m.khan", "orders", "lars_n", "priya.p2"],
               "holdout": ["s.gallagher", "james", "info", "henrik.larsen"]}  # fmt: skip
EMAIL_DOMAINS = {"dev": [("harrowgifts", "co.uk"), ("example", "com"), ("gmail", "com"), ("boutique-lyon", "fr"),
                         ("kyoto-zakka", "co.jp"), ("corkcrafts", "ie")],
                 "holdout": [("outlook", "com"), ("giftshop", "de"), ("yahoo", "co.jp"), ("web", "de")]}  # fmt: skip
EN_PHONES = {"dev": ["07700 900123", "+44 20 7946 0958", "020 7946 0018", "+353 1 555 0142", "+33 1 42 68 53 00",
                     "(0161) 496 0123", "+1 212-555-0147", "+49 30 901820"],
             "holdout": ["01632 960 001", "+31 20 555 0199", "+34 912 345 678", "0113 496 0000"]}  # fmt: skip
JP_PHONES = {"dev": ["03-1234-5678", "090-1234-5678", "06-6123-4567", "0120-123-456", "+81 3-5555-0123",
                     "080 9876 5432", "045-123-4567", "(03) 3456-7890", "０３－６２１２－３４５６", "070-1111-2222"],
             "holdout": ["052-123-4567", "+81 90-8765-4321", "092-711-0000", "０９０－５５５５－１２３４"]}  # fmt: skip
CARDS = {"dev": ["4111 1111 1111 1111", "5500-0000-0000-0004", "4012888888881881", "3782 822463 10005",
                 "6011 1111 1111 1117"],
         "holdout": ["5105 1051 0510 5100", "4222 2222 2222 2", "2223 0031 2200 3222"]}  # fmt: skip
IBANS = {"dev": ["GB29 NWBK 6016 1331 9268 19", "DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606",
                 "IE29AIBK93115212345678", "NL91ABNA0417164300"],
         "holdout": ["ES91 2100 0418 4502 0005 1332", "IT60X0542811101000000123456", "BE68539007547034"]}  # fmt: skip
EN_ADDRESSES = {"dev": ["12 Baker Street, London NW1 6XE", "Flat 3, 45 High St, Leeds", "7 rue de Rivoli, 75001 Paris",
                        "Hauptstraße 5, 10115 Berlin", "Keizersgracht 123, Amsterdam", "Calle Mayor 12, Madrid",
                        "221b baker street", "18 mill lane, york", "14 CHURCH ROAD", "SW1A 1AA", "PO Box 4521",
                        "Via Roma 10, Milano"],
                "holdout": ["3 Victoria Road, Bristol BS1 4QA", "9 avenue Foch, Lyon", "Storgatan 14, Stockholm",
                            "56 queens drive", "Dorfstraße 12", "M1 1AE"]}  # fmt: skip
JP_ADDRESSES = {
    "dev": [
        "東京都千代田区丸の内1-1-1",
        "〒150-0041 東京都渋谷区神南1丁目2番3号",
        "大阪府大阪市北区梅田3-1-1",
        "京都市中京区烏丸通三条上る場之町599",
        "神奈川県横浜市西区みなとみらい2-3-1",
        "北海道札幌市中央区北1条西2丁目",
        "〒460-0008 名古屋市中区栄3-5-12",
        "福岡市博多区博多駅前2-1-1",
        "渋谷区道玄坂2-24-1",
        "兵庫県神戸市中央区三宮町1丁目",
    ],
    "holdout": [
        "東京都新宿区西新宿2-8-1",
        "〒530-0001 大阪市北区梅田1丁目",
        "宮城県仙台市青葉区中央1-1-1",
        "広島市中区基町6-78",
    ],
}

# --------------------------------------------------------------------------- templates: (type, lang, form, text)

TEMPLATES = {
    "dev": [
        ("person", "en", "title case", "Please ask {first} {last} before changing the order."),
        ("person", "en", "lower case", "gift wrap for {first_l} {last_l} please"),
        ("person", "en", "lower case", "note: {first_l} {last_l} wants the blue ones"),
        ("person", "en", "upper case, no title", "PERSONALISED MUG FOR {FIRST} {LAST}"),
        ("person", "en", "upper case, no title", "HOLD FOR {FIRST} {LAST} - PAID"),
        ("person", "en", "title", "Set aside for Mrs {last} until Friday."),
        ("person", "en", "title, lower case", "reserved for mr {last_l}"),
        ("person", "en", "cue, lower case", "dear {first_l}, here are the tins"),
        ("person", "ja", "kanji + honorific", "{jlast}様へのお届け分"),
        ("person", "ja", "kanji full name", "担当：{jlast}{jfirst}"),
        ("person", "ja", "kanji full name, space", "発送先 {jlast} {jfirst} 様"),
        ("person", "ja", "kanji + san", "{jlast}さんの注文分です"),
        ("person", "ja", "katakana + honorific", "{kata}様 ご依頼品"),
        ("person", "ja", "romaji, surname first", "For {JLAST_R} {JFIRST_R} (Osaka shop)"),
        ("person", "ja", "romaji + san", "{jlast_r}-san asked for two more boxes"),
        ("email", "en", "plain", "send invoice to {email}"),
        ("email", "en", "obfuscated: at/dot", "contact {user} at {domain} dot {tld_dots}"),
        ("email", "en", "obfuscated: [at] [dot]", "email {user} [at] {domain} [dot] {tld_dots}"),
        ("email", "en", "obfuscated: (at)", "orders via {user}(at){domain}.{tld}"),
        ("email", "en", "obfuscated: spaced @", "reply to {user} @ {domain} . {tld}"),
        ("email", "ja", "plain in Japanese", "連絡先は{email}までお願いします"),
        ("email", "ja", "full-width @", "メール：{user}＠{domain}.{tld}"),
        ("phone", "en", "national / international", "call {en_phone} if late"),
        ("phone", "en", "upper case note", "RING {en_phone} BEFORE DELIVERY"),
        ("phone", "ja", "Japanese number in Japanese", "電話番号は{jp_phone}です"),
        ("phone", "ja", "TEL label", "TEL {jp_phone} 担当まで"),
        ("card", "en", "card number", "paid with card {card}"),
        ("iban", "en", "IBAN", "refund to IBAN {iban}"),
        ("address", "en", "street address", "deliver to {en_address}"),
        ("address", "ja", "Japanese address", "お届け先：{jp_address}"),
        ("address", "ja", "Japanese address in a sentence", "{jp_address}の店舗に納品"),
    ],
    "holdout": [
        ("person", "en", "title case", "Thanks to {first} {last} for the feedback on the lanterns."),
        ("person", "en", "lower case", "for {first_l} {last_l} - do not mix sizes"),
        ("person", "en", "upper case, no title", "{FIRST} {LAST} CHRISTMAS ORDER"),
        ("person", "en", "title", "Dr {first} {last} asked about the tins"),
        ("person", "ja", "kanji + honorific", "{jlast}{jfirst}様より追加注文"),
        ("person", "ja", "kanji + shi", "{jlast}氏の確認済み"),
        ("person", "ja", "katakana + san", "{kata}さんへ"),
        ("person", "ja", "romaji", "{JFIRST_R} {JLAST_R} TOKYO ORDER"),
        ("email", "en", "obfuscated: AT/DOT", "{user} AT {domain} DOT {tld_dots}"),
        ("email", "en", "obfuscated: {at}", "write to {user}{{at}}{domain}{{dot}}{tld}"),
        ("email", "ja", "plain in Japanese", "担当者メール{email}宛"),
        ("phone", "en", "number", "mobile {en_phone}"),
        ("phone", "ja", "Japanese number", "お問い合わせ {jp_phone}"),
        ("card", "en", "card number", "CARD {card} EXP 09/27"),
        ("iban", "en", "IBAN", "bank details: {iban}"),
        ("address", "en", "street address", "ship to {en_address} asap"),
        ("address", "ja", "Japanese address", "住所 {jp_address}"),
    ],
}
# How many texts each template yields per split.
PER_TEMPLATE = {"dev": 6, "holdout": 5}


def _values(rng: random.Random, split: str) -> dict[str, str]:
    first, last = rng.choice(EN_PEOPLE[split])
    jlast, jfirst = rng.choice(JP_PEOPLE[split])
    jfirst_r, jlast_r = rng.choice(ROMAJI[split])
    user = rng.choice(EMAIL_USERS[split])
    domain, tld = rng.choice(EMAIL_DOMAINS[split])
    return {
        "first": first, "last": last, "first_l": first.lower(), "last_l": last.lower(),
        "FIRST": first.upper(), "LAST": last.upper(),
        "jlast": jlast, "jfirst": jfirst, "kata": rng.choice(KATAKANA[split]),
        "jlast_r": jlast_r, "JLAST_R": jlast_r.upper(), "JFIRST_R": jfirst_r.upper(),
        "email": f"{user}@{domain}.{tld}", "user": user, "domain": domain, "tld": tld,
        "tld_dots": tld.replace(".", " dot "),
        "en_phone": rng.choice(EN_PHONES[split]), "jp_phone": rng.choice(JP_PHONES[split]),
        "card": rng.choice(CARDS[split]), "iban": rng.choice(IBANS[split]),
        "en_address": rng.choice(EN_ADDRESSES[split]), "jp_address": rng.choice(JP_ADDRESSES[split]),
    }  # fmt: skip


def _render(template: str, values: dict[str, str]) -> tuple[str, list[int]]:
    """Fill the template; return the text and the span from the first to the last placeholder's value.

    A template's placeholders are one PII value ("{first} {last}", "{user} at {domain} dot {tld}"), so the
    gold span runs from the start of the first to the end of the last; the words around them are context.
    """
    text, start, end, pos = "", None, None, 0
    while pos < len(template):
        if template.startswith("{{", pos):  # a literal brace: "{{at}}" is the text "{at}"
            close = template.index("}}", pos)
            text += "{" + template[pos + 2 : close] + "}"
            pos = close + 2
            continue
        if template[pos] == "{":
            close = template.index("}", pos)
            value = values[template[pos + 1 : close]]
            start = len(text) if start is None else start
            text += value
            end = len(text)
            pos = close + 1
            continue
        text += template[pos]
        pos += 1
    return text, [start, end]


def build() -> list[dict]:
    rng = random.Random(SEED)
    cases, seen = [], set()
    for split, templates in TEMPLATES.items():
        for t_index, (kind, lang, form, template) in enumerate(templates):
            made, tries = 0, 0
            while made < PER_TEMPLATE[split] and tries < 50:
                tries += 1
                text, span = _render(template, _values(rng, split))
                if text in seen:
                    continue
                seen.add(text)
                made += 1
                cases.append(
                    {"id": f"{split}-{t_index:02d}-{made}", "type": kind, "lang": lang, "form": form,
                     "text": text, "spans": [span], "split": split}
                )  # fmt: skip
    return cases


def main() -> None:
    cases = build()
    OUT.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    by_split = {s: sum(c["split"] == s for c in cases) for s in TEMPLATES}
    print(f"wrote {len(cases)} texts to {OUT} ({by_split})")


if __name__ == "__main__":
    main()
