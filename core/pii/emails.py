"""E-mail addresses as people type them into free text, obfuscated ones included.

Presidio's e-mail pattern reads ``\\w`` as a word character, so an address written straight after
Japanese text ("連絡先はsarah@gmail.comまで") swallows the kana and fails the domain check; and it does
not read "john at example dot com", "john [at] example [dot] com", "john(at)example.com" or
"john @ example . com". This pattern reads ASCII addresses with any of these separators. The last
label must be a known top-level domain. With a plain " at " and real dots ("john at example.com")
the local part must look like an address (a dot, digit, underscore or plus) or be a listed first
name, so "available at amazon.co.uk" is not an address.
"""

from __future__ import annotations

import re

from core.pii.names import _words, name_lists

# Generic and country top-level domains of the countries this shop's customers and staff write from.
TLDS = frozenset(
    _words(
        """
        com net org info biz io co eu uk ie fr de nl be lu ch at es pt it gr cy mt dk se no fi is pl cz sk
        hu lt lv ee si hr ro bg jp au nz ca us br sg hk il ae sa bh lb za ng in cn kr tw mx ar cl me tv ly
        app dev shop store online email mail
        """
    )
)
_LOCAL = r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9])?"
_BRACKETED = r"\(\s*{w}\s*\)|\[\s*{w}\s*\]|\{{\s*{w}\s*\}}|<\s*{w}\s*>"
_AT = rf"\s*(?:@|{_BRACKETED.format(w='at')})\s*|\s+at\s+"
_DOT = rf"\s*(?:{_BRACKETED.format(w='dot')})\s*|\s+dot\s+|\s?\.\s?"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(
    rf"(?<![A-Za-z0-9._%+-])(?P<local>{_LOCAL})(?P<at>{_AT})(?P<domain>{_LABEL}(?:(?:{_DOT}){_LABEL}){{1,4}})"
    r"(?![A-Za-z0-9@-])",
    re.IGNORECASE,
)
_SPLIT_DOT = re.compile(_DOT, re.IGNORECASE)


def find_emails(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of e-mail addresses, plain or obfuscated."""
    if not re.search(r"@|\bat\b|\(at\)|\[at\]", text, re.IGNORECASE):
        return []
    spans = []
    for m in EMAIL_RE.finditer(text):
        domain_start = m.start("domain")
        # Label ends in the text; a trailing sentence ("...gmail.com. Then") is cut at the last TLD.
        labels, ends, pos = [], [], 0
        for sep in [*_SPLIT_DOT.finditer(m.group("domain")), None]:
            stop = sep.start() if sep else len(m.group("domain"))
            labels.append(m.group("domain")[pos:stop])
            ends.append(domain_start + stop)
            pos = sep.end() if sep else pos
        last = max((i for i in range(1, len(labels)) if labels[i].lower() in TLDS), default=None)
        if last is None:
            continue
        end = ends[last]
        plain_at = m.group("at").strip().lower() == "at"
        spelled_dot = text[domain_start:end] != ".".join(labels[: last + 1])
        local = m.group("local")
        if plain_at and not spelled_dot and not (re.search(r"[._+\d]", local) or local.lower() in name_lists()[0]):
            continue
        spans.append((m.start(), end))
    return spans
