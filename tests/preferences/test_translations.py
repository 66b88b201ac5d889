"""The Japanese catalogue is complete, compiled, and used by the pages."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from tests.factories import UserFactory

PO = Path(settings.BASE_DIR) / "locale" / "ja" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


def po_entries() -> list[tuple[str, str, bool]]:
    """Return (msgid, msgstr, fuzzy) of every entry but the header (a minimal .po reader)."""
    entries = []
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in block.splitlines())
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[0\])?) "(.*)"$', line)
            if match:
                key = match.group(1)
                fields[key] = match.group(2)
            elif line.startswith('"') and key:
                fields[key] += line[1:-1]
        if fields.get("msgid"):
            entries.append((fields["msgid"], fields.get("msgstr", fields.get("msgstr[0]", "")), fuzzy))
    return entries


def test_every_message_has_a_japanese_translation():
    """No empty or fuzzy entry is left in the catalogue (run makemessages -l ja, then translate)."""
    entries = po_entries()
    assert len(entries) > 500
    assert [m for m, s, fuzzy in entries if not s or fuzzy] == []


def test_the_compiled_catalogue_matches_the_source():
    """The committed .mo holds every translation of the .po (run compilemessages after editing it)."""
    with MO.open("rb") as f:
        catalogue = gettext.GNUTranslations(f)
    stale = [m for m, s, _fuzzy in po_entries() if "\\" not in m and catalogue.gettext(m) != s]
    assert stale == []


@pytest.mark.django_db
def test_pages_render_in_japanese(client):
    """Render the sales pages in Japanese after the switch."""
    client.force_login(UserFactory(username="kenji", groups=["sales"]))
    client.post(reverse("set_language"), {"language": "ja", "next": "/"})
    html = client.get(reverse("customer-list")).content.decode()
    assert "<h1>担当アカウント</h1>" in html
    assert "商品検索" in html
    with translation.override("ja"):
        assert translation.gettext("Won") == "成約"
