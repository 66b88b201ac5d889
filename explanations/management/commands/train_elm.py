"""Train the ELM adapter (customer vector -> words) on the real customers, in this process."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Train the ELM adapter on customers' reference profiles and report semantic consistency."

    def add_arguments(self, parser):
        from explanations.ml.elm import PRESETS

        parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="Default: ELM_ADAPTER_PRESET.")

    def handle(self, *args, preset, **options):
        from tqdm import tqdm

        from explanations.services.elm_training import elm_train

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
