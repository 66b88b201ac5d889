"""The words and patterns of the claim checks (``claims``), English and Japanese: data, kept apart from the logic."""

import re

EN_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
NUMBER_WORDS = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip
AMOUNTS = {**NUMBER_WORDS, "a": 1, "an": 1, "a couple of": 2, "a few": 3}

EN_NEW = re.compile(
    r"\b(?:for the first time|first[- ]time|(?:has|have)\s*(?:n[o’']t| not| never)\s+(?:yet\s+)?(?:bought|ordered|"
    r"tried|purchased|stocked)|never\s+(?:bought|ordered|tried|purchased|stocked)|not\s+(?:yet\s+)?(?:bought|"
    r"ordered|tried|stocked)|new to (?:them|this (?:customer|account|shop))|yet to (?:buy|order|try))\b",
    re.IGNORECASE,
)
EN_AGAIN = re.compile(
    r"\b(?:again|re-?orders?|re-?ordered|re-?ordering|re-?stocks?|re-?stocked|repeat(?:ed|s)?|repeatedly|"
    r"keeps?\s+(?:buying|ordering|coming back for)|comes? back for|came back for|once more|time and again)\b",
    re.IGNORECASE,
)
EN_FREQUENT = re.compile(
    r"\b(?:frequent(?:ly)?|regular(?:ly)?|often|usual(?:ly)?|habitual(?:ly)?|routinely|favou?rites?|staples?|"
    r"many times|every (?:order|time|month|week)|all the time|constantly|consistently|loyal)\b",
    re.IGNORECASE,
)
EN_COUNT = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+(?:separate\s+|different\s+)?"
    r"(?:times|orders)\b|\b(once|twice)\b(?!\s+more)",
    re.IGNORECASE,
)
EN_BOUGHT = re.compile(
    r"\b(?:bought|buys|purchased|purchases|ordered|stocks|stocked|picked up|chose)\b",
    re.IGNORECASE,
)
EN_OTHERS = re.compile(
    r"\b(?:customers|shops|accounts|buyers|retailers|stores|others|other (?:customers|shops|accounts)|"
    r"similar (?:customers|shops|accounts)|people|anyone)\b(?:\s+\w+){0,3}\s+(?:who|that)\b|"
    r"\b(?:customers|shops|accounts|buyers|retailers|stores)\s+(?:buying|ordering)\b|\balso\s+(?:buy|bought|"
    r"order|ordered|take|took)\b",
    re.IGNORECASE,
)
EN_RECENT = re.compile(r"\b(?:recent(?:ly)?|lately|just (?:bought|ordered)|the other day|this week)\b", re.I)
EN_UNIT_DAYS = {"day": 1, "days": 1, "week": 7, "weeks": 7, "fortnight": 14, "fortnights": 14, "month": 30.4,
                 "months": 30.4, "year": 365, "years": 365}  # fmt: skip
EN_INTERVAL = re.compile(
    r"\b(\d+(?:\.\d+)?|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a couple of|a few|"
    r"several)\s+(days?|weeks?|fortnights?|months?|years?)\b",
    re.IGNORECASE,
)
EN_RELATIVE = re.compile(r"\b(?:last|past|previous)\s+(week|fortnight|month|year)\b|\byesterday\b", re.I)
# How far back "last week", "yesterday", 先月 reach (days).
RELATIVE_DAYS = {"yesterday": 2, "week": 14, "fortnight": 21, "month": 62, "昨日": 2, "先週": 14, "先月": 62}
MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december",
]  # fmt: skip
EN_MONTH = re.compile(r"\b(" + "|".join(m.capitalize() for m in MONTHS) + r")\b")
YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(?!\d)")

# Behaviour concepts as facts: (rule key, pattern). The key is matched against concept names held/similar.
EN_CONCEPTS = (
    ("bulk", r"bulk|large quantities|in volume|big orders|large orders|wholesale quantities"),
    ("seasonal", r"seasonal(?:ly)?|season(?:al)? buyer|buys? (?:mostly )?(?:before|for) christmas"),
    ("price", r"price[- ]sensitive|price[- ]conscious|budget|bargains?|cheap(?:er|est)?|low[- ]priced|discounts?"),
    (
        "lapsed",
        r"lapsed|inactive|dormant|stopped (?:buying|ordering)|(?:no|not) (?:ordered|bought|an order|order)\s+"
        r"(?:in|for|since)|has(?:n[’']t| not) ordered (?:in|for|since)|churn(?:ed|ing)?",
    ),
    ("frequent", r"(?:frequent|regular|loyal|repeat)\s+(?:customer|client|account|buyer|shopper)s?"),
)
EN_CONCEPTS = tuple((key, re.compile(rf"\b(?:{body})\b", re.IGNORECASE)) for key, body in EN_CONCEPTS)
CONCEPT_KEYS = {
    "bulk": ("bulk",),
    "seasonal": ("seasonal",),
    "price": ("price", "budget", "bargain"),
    "lapsed": ("lapsed", "inactive", "dormant"),
    "frequent": ("frequent", "regular", "loyal"),
}
EN_SIMILARITY = re.compile(r"\b(?:resembl\w*|similar|like (?:the|a|an)|profile|looks? like|close to)\b", re.I)

# Attribute words (material, use, occasion, quality) and the product-text forms that support each.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    # materials
    "wood": ("wood", "wooden"), "wooden": ("wood", "wooden"), "metal": ("metal", "tin", "zinc", "iron", "steel"),
    "metallic": ("metal", "metallic"), "glass": ("glass",), "ceramic": ("ceramic", "pottery", "porcelain"),
    "porcelain": ("porcelain", "china"), "cotton": ("cotton",), "linen": ("linen",), "silk": ("silk",),
    "wool": ("wool", "woollen", "knitted"), "woollen": ("wool", "woollen"), "felt": ("felt",),
    "leather": ("leather",), "paper": ("paper",), "cardboard": ("cardboard", "card"), "plastic": ("plastic",),
    "enamel": ("enamel",), "tin": ("tin",), "zinc": ("zinc",), "iron": ("iron",), "steel": ("steel",),
    "silver": ("silver",), "gold": ("gold",), "brass": ("brass",), "copper": ("copper",), "bamboo": ("bamboo",),
    "wicker": ("wicker",), "rattan": ("rattan",), "velvet": ("velvet",), "lace": ("lace",), "crystal": ("crystal",),
    "stone": ("stone",), "resin": ("resin",), "acrylic": ("acrylic",), "jute": ("jute",), "hessian": ("hessian",),
    # uses and occasions
    "garden": ("garden",), "kitchen": ("kitchen",), "bathroom": ("bathroom",), "bedroom": ("bedroom",),
    "office": ("office",), "school": ("school",), "party": ("party",), "parties": ("party",),
    "wedding": ("wedding",), "birthday": ("birthday",), "christmas": ("christmas", "xmas"), "easter": ("easter",),
    "valentine": ("valentine",), "halloween": ("halloween",), "baby": ("baby",), "picnic": ("picnic",),
    "baking": ("baking", "cake"), "storage": ("storage", "box", "tin", "jar"), "outdoor": ("outdoor", "garden"),
    "furniture": ("furniture", "chair", "table", "cabinet"), "children": ("children", "childrens", "kids"),
    "kids": ("kids", "children", "childrens"),
    # qualities
    "durable": (), "durability": (), "sturdy": (), "robust": (), "quality": (), "premium": (), "luxury": (),
    "luxurious": (), "handmade": ("handmade",), "handcrafted": (), "versatile": (), "versatility": (),
    "eco": (), "sustainable": (), "organic": ("organic",), "waterproof": (), "long-lasting": (),
    "best-selling": (), "bestseller": (), "bestselling": (), "praised": (), "award": (), "award-winning": (),
    "popular": ("__popular__",), "trendy": (), "unique": (), "exclusive": (), "authentic": (),
    "vintage": ("vintage", "retro", "antique"), "antique": ("antique",), "practical": (), "functional": (),
    "elegant": (), "stylish": (), "charming": (), "cosy": (), "cozy": (), "festive": ("christmas", "xmas"),
}  # fmt: skip

# Japanese: the same claims. Product names stay in the catalogue's words, so attributes map to English forms.
JA_NEW = re.compile(r"初めて|一度も|未購入|まだ(?:購入|注文|仕入れ)(?:して)?い(?:ない|ません)|新たに試")
JA_AGAIN = re.compile(r"再び|再注文|リピート|また(?:購入|注文)|繰り返し|何度も")
JA_FREQUENT = re.compile(r"よく|頻繁|定期的|いつも|常連|毎回|お気に入り|定番")
JA_COUNT = re.compile(r"(\d+)\s*回")
JA_BOUGHT = re.compile(r"購入し|注文し|仕入れ|買っ|購入済")
JA_OTHERS = re.compile(
    r"(?:顧客|お客様|店舗|取引先|他社|ほか|他)の?(?:うち|中で|も)|購入した(?:顧客|お客様|店舗)|も購入"
)
JA_RECENT = re.compile(r"最近|先日|つい先")
JA_UNIT_DAYS = {"日": 1, "週間": 7, "週": 7, "か月": 30.4, "ヶ月": 30.4, "カ月": 30.4, "ヵ月": 30.4, "年": 365}
JA_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*(日|週間|週|か月|ヶ月|カ月|ヵ月|年)")
JA_RELATIVE = re.compile(r"先週|先月|昨年|去年|昨日")
JA_MONTH = re.compile(r"(?<!\d)(1[0-2]|[1-9])月")
JA_CONCEPTS = (
    ("bulk", re.compile(r"まとめ買い|大量|大口")),
    ("seasonal", re.compile(r"季節|シーズン")),
    ("price", re.compile(r"価格に敏感|安価|安い|お買い得|低価格|値段重視")),
    ("lapsed", re.compile(r"休眠|離反|注文が(?:ない|途絶)|注文していない")),
    ("frequent", re.compile(r"常連|優良顧客|リピーター")),
)
JA_SIMILARITY = re.compile(r"似て|類似|近い|プロフィール|傾向")
JA_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "木製": ("wood", "wooden"), "金属": ("metal", "tin", "zinc", "iron", "steel"), "ガラス": ("glass",),
    "陶器": ("ceramic", "pottery"), "磁器": ("porcelain", "china"), "綿": ("cotton",), "コットン": ("cotton",),
    "リネン": ("linen",), "シルク": ("silk",), "ウール": ("wool",), "革": ("leather",), "レザー": ("leather",),
    "紙製": ("paper",), "プラスチック": ("plastic",), "竹": ("bamboo",), "ベルベット": ("velvet",),
    "庭": ("garden",), "ガーデン": ("garden",), "キッチン": ("kitchen",), "台所": ("kitchen",),
    "浴室": ("bathroom",), "オフィス": ("office",), "学校": ("school",), "パーティー": ("party",),
    "結婚式": ("wedding",), "誕生日": ("birthday",), "クリスマス": ("christmas", "xmas"), "イースター": ("easter",),
    "バレンタイン": ("valentine",), "ハロウィン": ("halloween",), "ベビー": ("baby",), "赤ちゃん": ("baby",),
    "子供": ("children", "childrens", "kids"), "ピクニック": ("picnic",), "収納": ("storage", "box", "jar"),
    "家具": ("furniture",), "耐久": (), "丈夫": (), "高品質": (), "高級": (), "手作り": ("handmade",),
    "ハンドメイド": ("handmade",), "多用途": (), "万能": (), "人気": ("__popular__",), "エコ": (), "おしゃれ": (),
    "上品": (), "ヴィンテージ": ("vintage", "retro"), "アンティーク": ("antique",),
}  # fmt: skip

JA_SENTENCE = re.compile(r"[^。！？!?]+[。！？!?]?")
JOINER = re.compile(r"[\s\d\-'’,&+/]*")
JA_PARTICLE = re.compile(r"[はがを、。]")
HAS_JA = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
