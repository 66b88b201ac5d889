"""The labelled product-search set: natural-language queries and the catalogue products relevant to each.

Each query is written the way a sales person or buyer would ask, mostly in other words than the catalogue
uses; its relevant products are decided by a transparent rule (a regular expression over the catalogue
description, minus an exclusion pattern), so the labels can be audited and rebuilt for a new catalogue:

    python -m recommendations.evaluation.search_set  # rewrites data/product_search.json from the CSV

Relevance is binary. NDCG@10 of a search ranks the whole catalogue by cosine(query, description).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "product_search.json"

# (query, relevant if the description matches, unless it matches the exclusion)
QUERIES: list[tuple[str, str, str]] = [
    ("something warm to cuddle in bed on a cold night", r"HOT WATER BOTTLE|HOTTIE", ""),
    ("pocket warmers for freezing winter hands", r"HAND WARMER", ""),
    ("candle holders shaped like hearts", r"HEART.*(T-LIGHT|T LIGHT|TEA LIGHT|CANDLE)|(T-LIGHT|CANDLE).*HEART", ""),
    ("a box for a child's packed school lunch", r"LUNCH BOX|LUNCHBOX", ""),
    ("big reusable shopping bag", r"JUMBO.*BAG|SHOPPER|JUMBO STORAGE BAG", ""),
    ("ornaments to hang on the christmas tree", r"(CHRISTMAS|XMAS).*(DECORATION|BAUBLE|HANGING|ORNAMENT)", ""),
    ("calendar for counting down the days to christmas", r"ADVENT", ""),
    (
        "paper cups and plates for a kids' birthday party",
        r"PAPER (PLATE|CUP)|PARTY (CUP|PLATE)|PAPER CUPS|PAPER PLATES",
        "",
    ),
    ("little paper cases for baking cupcakes", r"CAKE CASES|BAKING CASES|CUPCAKE CASES|FAIRY CAKE CASES", ""),
    ("clock that rings to wake you up", r"ALARM CLOCK", ""),
    ("frame to display family photographs", r"PHOTO FRAME|PICTURE FRAME|PHOTOFRAME|PHOTO CLIP|FRAME", r"FRAME SHELF"),
    ("mat at the front door for wiping feet", r"DOORMAT|DOOR MAT", ""),
    (
        "string of tiny lights to decorate a room",
        r"\bLIGHTS\b|LIGHT CHAIN|LIGHT GARLAND|20LIGHT|LIGHT DECORATION",
        r"T-LIGHT|TEA LIGHT|TLIGHT|CANDLE|HOLDER",
    ),
    ("incense and scented candles for a relaxing smell", r"INCENSE|SCENTED|FRAGRANCE", ""),
    ("sparkly earrings", r"EARRINGS", ""),
    ("a pendant on a chain to wear around the neck", r"NECKLACE|PENDANT", ""),
    ("jewellery to wear on the wrist", r"BRACELET|BANGLE", ""),
    (
        "hair clips and bobbles for little girls",
        r"HAIR (CLIP|SLIDE|BOBBLE|GRIP|BAND|COMB|TIE)|HAIRCLIP|HAIR SLIDES|ALICE BAND|BOBBLES",
        "",
    ),
    ("decorations for an easter egg hunt", r"EASTER", ""),
    ("can for watering plants in the garden", r"WATERING CAN", ""),
    ("cup for a morning coffee", r"\bMUG\b|\bMUGS\b", r"COSY"),
    ("pot for brewing tea", r"TEAPOT|TEA POT", ""),
    ("coloured pencils for kids to draw with", r"PENCILS|COLOURING|CRAYON", ""),
    ("a small book to jot down notes", r"NOTEBOOK|NOTE BOOK|NOTEPAD|JOURNAL|MEMO", ""),
    ("gift wrap paper for presents", r"\bWRAP\b|WRAPPING", r"BUBBLE"),
    (
        "greeting cards for friends",
        r"GREETING CARD|BIRTHDAY CARD|CHRISTMAS CARD|\bCARDS?\b",
        r"CARD HOLDER|CARDHOLDER|TRAVEL CARD|CARD GAME|PLAYING CARDS|GREETING CARD HOLDER|SNAP CARDS",
    ),
    ("ribbon to tie around a gift", r"RIBBON", ""),
    ("cushion covers for the sofa", r"CUSHION", ""),
    ("looking glass to hang in the hallway", r"MIRROR", r"MIRRORED"),
    ("jigsaw puzzles for a rainy afternoon", r"JIGSAW|PUZZLE", ""),
    ("wooden blocks with letters for toddlers", r"BLOCK", r"BLOCK CALENDAR|NOTE BLOCK"),
    ("toy kitchen and bedroom for a dolls house", r"PLAYHOUSE|DOLLHOUSE|DOLLS HOUSE", ""),
    ("basket for a picnic in the park", r"PICNIC", ""),
    ("umbrella for rainy weather", r"UMBRELLA", ""),
    ("apron to keep clothes clean when cooking", r"APRON", ""),
    ("gloves for taking hot dishes out of the oven", r"OVEN GLOVE|OVEN MITT|DOUBLE GLOVE", ""),
    ("cloth for drying the washing up", r"TEA TOWEL|TEATOWEL|DISH CLOTH", ""),
    ("strings of little flags for a garden party", r"BUNTING", ""),
    ("kit for making homemade jam", r"JAM (MAKING|JAR)|JAM JAR|PRESERVE|JAM SET", ""),
    ("spoons and forks", r"CUTLERY|TEASPOON|\bSPOONS?\b|CAKE FORK", r"SHELF|CUPBOARD|GARDEN|CHARMS|LUNCH BOX"),
    ("bowl for serving salad or fruit", r"\bBOWL\b|\bBOWLS\b", ""),
    ("knobs to replace the handles on cupboard drawers", r"KNOB|DRAWER PULL|DRAWER HANDLE", ""),
    ("hooks for hanging coats and keys", r"\bHOOKS?\b|COAT ?RACK|COAT ?HANGER|KEY HOLDER", r"GARDEN FORK|TROWEL"),
    ("ring to keep your keys together", r"KEYRING|KEY RING|KEY-RING|KEY FOB", ""),
    ("things to stick on the fridge door", r"MAGNET", ""),
    ("sticker sheets for children", r"STICKER", ""),
    ("plaque with a funny message to hang on the wall", r"\bSIGN\b|PLAQUE|METAL SIGN", ""),
    (
        "house or feeder for wild birds",
        r"BIRD ?(HOUSE|FEEDER|TABLE)|BIRDHOUSE|DOVECOTE",
        r"DECORATION|JIGSAW|HOT WATER|MARKER",
    ),
    ("lantern to put a candle in", r"LANTERN", ""),
    ("vase for a bunch of flowers", r"VASE", ""),
    ("small purse for coins", r"PURSE|WALLET|COIN", ""),
    ("money box for saving pocket money", r"MONEY BOX|MONEY BANK|PIGGY|SAVINGS", ""),
    ("tins and moulds for baking a cake", r"BAKING (TIN|SET|MOULD)|CAKE TINS?\b|JELLY MOULD", ""),
    ("packs of paper tissues for the handbag", r"TISSUES", ""),
    ("board to write on with chalk", r"CHALK|BLACKBOARD|SLATE", ""),
    ("toy dinosaurs", r"DINOSAUR", ""),
    ("things decorated with skulls and crossbones", r"SKULL", ""),
    ("cover for a passport when travelling", r"PASSPORT|TRAVEL CARD|LUGGAGE TAG|LUGGAGE", ""),
    ("spinning toy for the playground", r"SPINNING TOP|SPIN TOP|YO-YO|YOYO|SKIPPING ROPE", ""),
    ("butterfly ornaments", r"BUTTERFLY", ""),
]


def relevant_codes(descriptions: Mapping[str, str], pattern: str, exclude: str = "") -> list[str]:
    """Return the sorted stock codes whose description matches ``pattern`` and not ``exclude``."""
    match = re.compile(pattern, re.IGNORECASE)
    skip = re.compile(exclude, re.IGNORECASE) if exclude else None
    return sorted(
        code for code, text in descriptions.items() if match.search(text) and not (skip and skip.search(text))
    )


def build(descriptions: Mapping[str, str]) -> dict:
    """Return the labelled set for a catalogue: every query with its rule and relevant stock codes."""
    queries = []
    for query, pattern, exclude in QUERIES:
        codes = relevant_codes(descriptions, pattern, exclude)
        if codes:
            queries.append({"query": query, "pattern": pattern, "exclude": exclude, "relevant": codes})
    return {"catalogue_size": len(descriptions), "queries": queries}


def load(path: Path = DATA_FILE) -> dict:
    return json.loads(Path(path).read_text())


def search_ndcg(
    query_vectors: np.ndarray, product_vectors: np.ndarray, codes: list[str], relevant: list[list[str]], k: int = 10
) -> tuple[float, list[float]]:
    """Return (mean NDCG@k, per query) of ranking all products by cosine to each query (unit vectors)."""
    scores = np.asarray(query_vectors, dtype=np.float64) @ np.asarray(product_vectors, dtype=np.float64).T
    codes_arr = np.asarray(codes)
    values = []
    for row, rel in zip(scores, relevant, strict=True):
        best = codes_arr[np.argsort(-row, kind="stable")[:k]]
        rel_set = set(rel)
        dcg = sum(1.0 / math.log2(rank + 2) for rank, code in enumerate(best) if code in rel_set)
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(rel_set), k)))
        values.append(dcg / ideal if ideal else 0.0)
    return float(np.mean(values)) if values else 0.0, values


if __name__ == "__main__":  # pragma: no cover - maintenance script
    import sys

    from recommendations.evaluation.data import descriptions_from_csv
    from recommendations.evaluation.run import DEFAULT_CSV

    built = build(descriptions_from_csv(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CSV))
    DATA_FILE.parent.mkdir(parents=True, exist_ok=True)
    DATA_FILE.write_text(json.dumps(built, indent=1) + "\n")
    for q in built["queries"]:
        print(f"{len(q['relevant']):4d}  {q['query']}")
    print(len(built["queries"]), "queries")
