"""Train the ELM adapter (customer vector -> words) on the real customers, in this process."""

from django.core.management.base import BaseCommand, CommandError


def parse_overrides(items: list[str]) -> dict:
    """``["soft_tokens=8", "lr=0.003", "target_sentences=none"]`` -> typed preset fields."""
    from dataclasses import fields

    from explanations.ml.elm import TrainSettings

    types = {f.name: f.type for f in fields(TrainSettings)}
    out = {}
    for item in items:
        name, _, raw = item.partition("=")
        if name not in types:
            raise CommandError(f"unknown preset field {name!r}; one of {sorted(types)}")
        if raw.lower() == "none":
            out[name] = None
        else:
            out[name] = float(raw) if "float" in str(types[name]) else int(raw)
    return out


class Command(BaseCommand):
    help = "Train the ELM adapter on customers' reference profiles and report semantic consistency."

    def add_arguments(self, parser):
        from explanations.ml.elm import PRESETS

        parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="Default: ELM_ADAPTER_PRESET.")
        parser.add_argument(
            "--set",
            action="append",
            dest="overrides",
            default=[],
            metavar="FIELD=VALUE",
            help="Override a preset field for a measured lever, e.g. --set soft_tokens=8 --set product_share=0.3.",
        )

    def handle(self, *args, preset, overrides, **options):
        from django.conf import settings
        from tqdm import tqdm

        from explanations.ml.elm import with_settings
        from explanations.ml.lm import configure_threads
        from explanations.services.elm_training import elm_train

        configure_threads()
        if overrides:
            preset = with_settings(preset or settings.ELM_ADAPTER_PRESET, **parse_overrides(overrides))

        bar = tqdm(desc="Training ELM adapter", unit="step")

        def progress(info: dict) -> None:
            bar.total = info.get("steps_planned") or bar.total
            bar.n = info.get("step", bar.n)
            bar.set_postfix_str(f"{info.get('task')} loss {info.get('loss', 0):.3f}")

        result = elm_train(preset=preset, progress=progress)
        bar.close()
        sc = result["semantic_consistency"]
        self.stdout.write(f"Adapter {result['version']} saved to {result['path']}")
        self.stdout.write(
            f"Semantic consistency on {sc['customers']} held-out customers: generated {sc['generated']:.3f}, "
            f"reference {sc['reference']:.3f}, shuffled {sc['shuffled']:.3f}"
        )
