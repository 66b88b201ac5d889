"""core.pii: the issue #14 goal on the varied corpus, and the forms behind it (English and Japanese)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from core.pii import find_pii, redact, scrub

ROOT = Path(__file__).resolve().parents[2]


def _measure_module():
    spec = importlib.util.spec_from_file_location("measure_pii", ROOT / "scripts" / "measure_pii.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_recall_and_false_positives_meet_the_goal(settings):
    """Recall >= 0.95 on >= 200 varied texts; <= 2% flagged among 200 real descriptions and 200 real reasons."""
    measure = _measure_module()
    if not Path(settings.ELM_DATASET_PATH).exists():
        pytest.skip("the real catalogue descriptions come from the dataset")
    # Given the varied corpus (English and Japanese) and the two real sets
    # When the detectors run over them
    result = measure.measure(Path(settings.ELM_DATASET_PATH))
    print(measure.report(result))  # the table, with -s
    # Then the corpus is large and varied enough, and the goal is met
    assert result.recall["all"][1] >= 200
    assert {g.split("/")[1] for g in result.recall if "/" in g} == {"en", "ja"}
    assert result.rate("all") >= measure.MIN_RECALL
    assert result.false_positives["real reasons (200)"][1] == 200
    assert result.rate("catalogue descriptions (sample of 200)") <= measure.MAX_FP_RATE
    assert result.rate("real reasons (200)") <= measure.MAX_FP_RATE


@pytest.mark.parametrize(
    ("text", "code", "found"),
    [
        # the misses: lower-case names, names in upper case without a title, obfuscated e-mails
        ("gift wrap for giulia rossi please", "pii:person", "giulia rossi"),
        ("PERSONALISED MUG FOR LARS NIELSEN", "pii:person", "LARS NIELSEN"),
        ("contact john at example dot com", "pii:email", "john at example dot com"),
        ("email aoife.byrne [at] corkcrafts [dot] ie", "pii:email", "aoife.byrne [at] corkcrafts [dot] ie"),
        ("reply to m.khan @ gmail . com", "pii:email", "m.khan @ gmail . com"),
        # Japanese names, phone numbers and addresses; full-width characters
        ("田中様へのお届け分", "pii:person", "田中"),
        ("担当：鈴木美咲", "pii:person", "鈴木美咲"),
        ("ジョン・スミス様 ご依頼品", "pii:person", "ジョン・スミス"),
        ("Tanaka-san asked for two more boxes", "pii:person", "Tanaka-san"),
        ("電話番号は03-1234-5678です", "pii:phone", "03-1234-5678"),
        ("ＴＥＬ ０３－６２１２－３４５６", "pii:phone", "０３－６２１２－３４５６"),
        ("連絡先はsarah@gmail.comまで", "pii:email", "sarah@gmail.com"),
        ("お届け先：東京都千代田区丸の内1-1-1", "pii:address", "東京都千代田区丸の内1-1-1"),
        ("〒150-0041 東京都渋谷区神南1丁目2番3号", "pii:address", "〒150-0041 東京都渋谷区神南1丁目2番3号"),
        ("221b baker street", "pii:address", "221b baker street"),
        ("PO Box 4521", "pii:address", "PO Box 4521"),
    ],
)
def test_forms_typed_into_free_text_are_found(text, code, found):
    """Find each form with its exact span (offsets into the original text, full-width included)."""
    flags = find_pii(text)
    assert [(f.code, f.text) for f in flags] == [(code, found)]
    assert text[flags[0].start : flags[0].end] == found


@pytest.mark.parametrize(
    "text",
    [
        "available at amazon.co.uk now",
        "meet at 10.30 tomorrow",
        "お客様各位",
        "皆様へのお知らせ",
        "東京都の店舗で3個",
        "3 items on the road",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "ROSE MORRIS BOXED CANDLES",
        "it will sell well in may",
        "SET OF 12 PENCILS 2010",
    ],
)
def test_look_alikes_are_not_personal_data(text):
    """Leave words, products and Japanese set phrases alone."""
    assert find_pii(text) == []


def test_redact_returns_the_scrubbed_text_and_the_kinds():
    """Replace each finding with its placeholder and say which kinds were found."""
    text, kinds = redact("call 07700 900123 or mail sarah mitchell at example dot com")
    assert text == "call <PHONE> or mail <EMAIL>"
    assert kinds == ("pii:email", "pii:phone")
    assert scrub("nothing here") == "nothing here"
