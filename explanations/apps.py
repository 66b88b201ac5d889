from django.apps import AppConfig


class ExplanationsConfig(AppConfig):
    name = "explanations"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from explanations.models import PolicyTerm
        from explanations.selectors import policy_terms_invalidate

        # A changed term list must flag the next text checked in this process.
        post_save.connect(policy_terms_invalidate, sender=PolicyTerm, dispatch_uid="policy_terms_invalidate_save")
        post_delete.connect(policy_terms_invalidate, sender=PolicyTerm, dispatch_uid="policy_terms_invalidate_delete")
