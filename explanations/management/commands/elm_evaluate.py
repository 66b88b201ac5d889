"""Measure an ELM adapter version on held-out customers and products (does it read the vector?)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Evaluate an ELM adapter on held-out customers and products: retrieval among 10 and 100, SC against "
        "the shuffled reference and the best generic text, swap test, product words outside the history; "
        "writes docs/results/elm_<version>.json and the tables in docs/elm.md."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--adapter", default=None, help="Adapter version (a folder under ELM_ADAPTER_DIR); default: CURRENT."
        )
        parser.add_argument(
            "--method",
            action="append",
            dest="methods",
            default=None,
            help="Decoding method, repeatable: greedy (default), guided-N, guided-N-contrast-C; none only "
            "refreshes the context numbers and the tables.",
        )
        parser.add_argument("--customers", type=int, default=64)
        parser.add_argument("--products", type=int, default=64)
        parser.add_argument("--swap-customers", type=int, default=32, help="0 skips the grounded swap test.")
        parser.add_argument("--max-new-tokens", type=int, default=48)
        parser.add_argument("--no-write", action="store_true", help="Print only; write no file.")

    def handle(self, *args, adapter, methods, customers, products, swap_customers, max_new_tokens, no_write, **options):
        from explanations.ml.lm import configure_threads
        from explanations.services.elm_evaluation import elm_evaluate

        configure_threads()
        result = elm_evaluate(
            version=adapter,
            methods=tuple(m for m in (methods or ["greedy"]) if m != "none"),
            customers=customers,
            products=products,
            swap_customers=swap_customers,
            max_new_tokens=max_new_tokens,
            write=not no_write,
            log=self.stdout.write,
        )
        for method, summary in result["methods"].items():
            met = sum(summary["goals"].values())
            self.stdout.write(f"{result['version']} {method}: {met}/{len(summary['goals'])} goals met")
