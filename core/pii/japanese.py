"""Japanese person names and postal addresses.

Names: a common surname in kanji (``data/ja_surnames.txt``, written by hand from the well-known
most frequent surnames) followed by a listed given name (``data/ja_given_names.txt``) or by an
honorific or a job title (様, さん, 氏, 部長 ...); any two to four kanji before an honorific that is not a
word such as お客様 or 皆様; katakana names before an honorific, or a listed katakana first name joined
to a second katakana word by ・ (ジョン・スミス).

Addresses: 〒 postcodes; a prefecture or a city/ward/town name followed by a block number
(1-2-3, 3丁目2番1号, 北1条西2丁目).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from core.pii.names import _words

DATA_DIR = Path(__file__).resolve().parent / "data"

_KANJI = r"\u3005\u4e00-\u9fff"  # 々 and the CJK unified ideographs
_KATAKANA = r"\u30a1-\u30fa\u30fc"  # katakana and the prolonged sound mark
# After a name: honorifics and job titles ("田中部長").
HONORIFICS = (
    "様", "さま", "さん", "氏", "殿", "先生", "くん", "君", "ちゃん",
    "部長", "課長", "社長", "店長", "係長", "主任", "専務", "常務", "代表",
)  # fmt: skip
_HONORIFIC = "|".join(sorted(map(re.escape, HONORIFICS), key=len, reverse=True))
# Kanji before an honorific that are not a name: お客様, 皆様, 各位, 担当者様, 御社 ...
NOT_NAMES = frozenset(
    _words(
        """
        客 お客 皆 皆さ 各 奥 神 王 仏 担当 担当者 ご担当 ご担当者 店長 社長 部長 課長
        先方 相手 貴社 御社 弊社 会員 利用者 購入者 顧客 取引先 代表者 責任者 関係者 業者
        作家 作者 職人 生徒 学生 子供 子ども お子 母 父 友人 同僚 上司 本人 ご本人 店
        お店 当店 営業 事務 受付 会社 各位 お得意 得意先 仕入先 発注者 注文者 依頼者 ご依頼
        ご購入 ご注文
        """
    )
)
# Western first names written in katakana (a second katakana word joined by ・ makes a full name).
KATAKANA_FIRST_NAMES = frozenset(
    _words(
        """
        ジョン メアリー マイケル デビッド デイビッド サラ エマ ジェームズ ジェームス ロバート
        ウィリアム リチャード トーマス ジョージ ポール マーク ピーター アンナ アン マリア
        マリー ソフィア ルーシー エミリー オリビア ハンナ ローラ ジェシカ ダニエル クリス
        クリストファー アンドリュー スティーブン スティーヴン ジャック ハリー チャールズ ヘンリー
        エドワード ルイ ルイス ハンス ラース ジュリア エリザベス キャサリン ヘレン ジェーン
        ケイト ニコラ ニコル
        """
    )
)

_PREFECTURES = (
    "北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|東京都|神奈川県|新潟県|富山県"
    "|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|滋賀県|京都府|大阪府|兵庫県|奈良県|和歌山県|鳥取県|島根県"
    "|岡山県|広島県|山口県|徳島県|香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
_DASH = "-‐−–—ー－"
_BLOCK = (
    rf"\d{{1,4}}(?:\s?丁目\s?\d{{0,4}}(?:\s?番地?\s?\d{{0,4}}(?:\s?号)?)?|\s?番地?(?:\s?\d{{1,4}}\s?号?)?"
    rf"|\s?条(?:[東西南北]\s?\d{{1,3}}\s?丁目)?|[{_DASH}]\d{{1,4}}(?:[{_DASH}]\d{{1,4}})?)"
)
# Place names hold kanji, katakana and hiragana (丸の内), but not the particles that end a phrase (で, に, を ...).
_PLACE = rf"(?:(?![でにをはがとへもや])[{_KANJI}ぁ-ゖ{_KATAKANA}])"
_POSTCODE = rf"〒\s?\d{{3}}[{_DASH}]?\d{{4}}"
# A municipality (市, 区, 町, 村 or 郡 closes a place name), then at most 14 place characters, then the block.
_MUNICIPALITY = rf"{_PLACE}{{1,8}}?[市区町村郡]"
_ADDRESS_RE = re.compile(
    rf"(?:{_POSTCODE}\s*)?"
    rf"(?:(?:{_PREFECTURES})\s?(?:{_MUNICIPALITY}){{0,2}}|(?:{_MUNICIPALITY}){{1,2}})"
    rf"{_PLACE}{{0,14}}?\s?{_BLOCK}"
    # Kyoto writes the street and then a bare number: 京都市中京区烏丸通三条上る場之町599 (two municipalities first).
    rf"|(?:{_POSTCODE}\s*)?(?:{_PREFECTURES})?\s?(?:{_MUNICIPALITY}){{2}}{_PLACE}{{0,14}}?\d{{1,4}}(?!\d)"
)
_POSTCODE_RE = re.compile(_POSTCODE)


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Return the (surnames, given names) in kanji."""

    def read(name: str) -> frozenset[str]:
        lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
        return frozenset(word for line in lines if not line.startswith("#") for word in line.split())

    return read("ja_surnames.txt"), read("ja_given_names.txt")


@cache
def _name_re() -> re.Pattern:
    surnames, given = name_lists()

    def alternatives(words) -> str:
        return "|".join(sorted(map(re.escape, words), key=len, reverse=True))

    return re.compile(
        # a listed surname, optionally a listed given name, then optionally an honorific
        rf"(?<![{_KANJI}])(?P<surname>{alternatives(surnames)})"
        rf"(?:\s?(?P<given>{alternatives(given)})|(?P<given_any>[{_KANJI}]{{1,3}})(?=\s?(?:{_HONORIFIC})))?"
        rf"(?:\s?(?P<honorific>{_HONORIFIC}))?"
        # or two to four kanji (an unlisted name) right before an honorific
        rf"|(?<![{_KANJI}])(?P<unlisted>[{_KANJI}]{{2,4}})(?P<honorific2>{_HONORIFIC})"
        # or a katakana name (with or without ・) before an honorific
        rf"|(?<![{_KATAKANA}])(?P<kana>[{_KATAKANA}]{{2,}}(?:[・･\s][{_KATAKANA}]{{2,}})?)\s?(?P<honorific3>様|さん|さま|氏)"
        # or a listed katakana first name joined by ・ to a second katakana word
        rf"|(?<![{_KATAKANA}])(?P<kana_full>(?:{alternatives(KATAKANA_FIRST_NAMES)})[・･][{_KATAKANA}]{{2,}})"
    )


def find_japanese_names(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of Japanese names (the honorific is not part of the span)."""
    if not re.search(rf"[{_KANJI}{_KATAKANA}]", text):
        return []
    spans = []
    for m in _name_re().finditer(text):
        if m.group("surname"):
            # A lone listed surname is a name only with a given name or an honorific: 中村 is also a place.
            if not (m.group("given") or m.group("honorific")):
                continue
            given = "given" if m.group("given") else "given_any" if m.group("given_any") else "surname"
            end = m.end(given)
            spans.append((m.start(), end))
        elif m.group("unlisted"):
            word = m.group("unlisted")
            if word in NOT_NAMES or word.startswith(("お", "ご")) or any(word.endswith(t) for t in NOT_NAMES):
                continue
            spans.append((m.start("unlisted"), m.end("unlisted")))
        elif m.group("kana"):
            spans.append((m.start("kana"), m.end("kana")))
        else:
            spans.append((m.start("kana_full"), m.end("kana_full")))
    return spans


def find_japanese_addresses(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of Japanese postal addresses and 〒 postcodes."""
    if "〒" not in text and not re.search(rf"[{_KANJI}]", text):
        return []
    spans = [(m.start(), m.end()) for m in _ADDRESS_RE.finditer(text)]
    spans += [
        (m.start(), m.end()) for m in _POSTCODE_RE.finditer(text) if not any(s <= m.start() < e for s, e in spans)
    ]
    return spans
