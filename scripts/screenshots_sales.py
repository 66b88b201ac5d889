"""Take the sales pages' screenshots (docs/screenshots/) from a running server with real data.

Usage (a server with imported, embedded, explained data and a sales user with a book):

    .venv/bin/python scripts/screenshots_sales.py --base http://127.0.0.1:8000 \
        --user sam --password ... --customer <pseudonym> [--out docs/screenshots]

Needs Chromium (/usr/bin/chromium) and, for the search page, a running worker.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--customer", required=True, help="pseudonym of the customer to show")
    parser.add_argument("--query", default="gifts for a garden centre")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--language", default="en", choices=["en", "ja"])
    args = parser.parse_args()
    suffix = "" if args.language == "en" else f"_{args.language}"
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=args.base)
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.goto("/login/")
        page.fill("input[name=username]", args.user)
        page.fill("input[name=password]", args.password)
        page.press("input[name=password]", "Enter")
        page.wait_for_load_state()
        page.locator("#language-select").select_option(args.language)
        page.locator(".lang-form [type=submit]").click()
        page.wait_for_load_state()
        shots = {
            "accounts": "/customers/",
            "customer": f"/customers/{args.customer}/",
            "search": "/search/?" + urlencode({"q": args.query, "customer": args.customer}),
        }
        for name, url in shots.items():
            page.goto(url)
            page.wait_for_load_state("networkidle")
            path = args.out / f"{name}{suffix}.png"
            page.screenshot(path=str(path))
            print(path)
            if name == "customer":
                # The first recommendation card: reason, evidence, confidence, words, outcome buttons.
                page.locator("#rec-1").scroll_into_view_if_needed()
                page.evaluate("document.querySelector('#rec-1').scrollIntoView({block: 'start'})")
                path = args.out / f"recommendation{suffix}.png"
                page.screenshot(path=str(path))
                print(path)
        browser.close()


if __name__ == "__main__":
    main()
