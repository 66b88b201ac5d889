"""Background jobs split into bounded shards, so several workers share a batch and progress shows.

Both statuses are state machines (django-fsm): only the transition methods below change them, and
only ``jobs.services`` calls them, inside ``transaction.atomic`` with the row locked. A job left
queued or running by a stopped run moves to ``interrupted``; an admin (or the demo) resumes it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition


class Job(FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        INTERRUPTED = "interrupted", _("Interrupted")

    # Queued or running: a worker has (or will pick up) its planning or shards.
    ACTIVE = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=64, db_index=True)
    status = FSMField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True, protected=True)
    params = models.JSONField(default=dict, blank=True)
    # Kinds to run after this one succeeds, in order (a simple pipeline: embed -> recommend -> explain).
    then = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True)
    shards_total = models.PositiveIntegerField(default=0)
    shards_done = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The last sign of life from a worker: planning, a running shard (every ELM_JOB_HEARTBEAT_SECONDS)
    # or a finished one. A queued or running job without one for ELM_JOB_STALE_AFTER_HOURS is interrupted.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        if self.items_total:
            return min(1.0, self.items_done / self.items_total)
        return self.shards_done / self.shards_total if self.shards_total else 0.0

    # Transitions: the whole table (tests/jobs/test_transitions.py lists it). The bodies keep the
    # timestamps and the error in step with the state; the services save the fields they name.
    @transition(field=status, source=Status.QUEUED, target=Status.RUNNING)
    def start(self) -> None:
        """Planning is done and the shards are queued."""
        self.started_at = timezone.now()

    @transition(field=status, source=Status.RUNNING, target=Status.SUCCEEDED)
    def succeed(self) -> None:
        """Every shard is done and the finalizer ran."""
        self.finished_at = timezone.now()

    @transition(field=status, source=[Status.QUEUED, Status.RUNNING], target=Status.FAILED)
    def fail(self, error: str = "") -> None:
        """Planning, queueing, the finalizer or a shard (after its retries) failed."""
        self.error = error[:8000]
        self.finished_at = timezone.now()

    @transition(field=status, source=[Status.QUEUED, Status.RUNNING], target=Status.INTERRUPTED)
    def interrupt(self, reason: str = "", stopped_at=None) -> None:
        """No worker runs it any more: the run that did was stopped (or lost) before it finished."""
        self.error = reason[:8000]
        self.finished_at = stopped_at or timezone.now()

    @transition(field=status, source=[Status.FAILED, Status.INTERRUPTED], target=Status.RUNNING)
    def resume(self) -> None:
        """Its unfinished shards are queued again; the done ones are kept."""
        self.error = ""
        self.finished_at = None

    @transition(field=status, source=[Status.FAILED, Status.INTERRUPTED], target=Status.QUEUED)
    def requeue(self) -> None:
        """Its planning is queued again (it never planned, or it starts again from the plan)."""
        self.error = ""
        self.finished_at = None


class JobShardQuerySet(models.QuerySet):
    def transition(self, name: str, **fields) -> int:
        """Apply JobShard's transition ``name`` to every shard here that may take it, in one UPDATE.

        Shards move set-wise on purpose: a job has up to thousands of them, and the conditional
        UPDATE is also the compare-and-set that counts a redelivered shard once. The sources and
        the target are read from the transition's own declaration, so the table stays the one
        definition of what may move where. Returns the number of shards moved.
        """
        meta = getattr(JobShard, name)._django_fsm
        sources = list(meta.transitions)
        assert not {"*", "+"} & set(sources), "wildcard sources cannot be applied set-wise"
        (target,) = {t.target for t in meta.transitions.values()}
        return self.filter(status__in=sources).update(status=target, **fields)


class JobShard(FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        INTERRUPTED = "interrupted", _("Interrupted")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    payload = models.JSONField(default=dict)
    size = models.PositiveIntegerField(default=0)
    status = FSMField(max_length=16, choices=Status.choices, default=Status.PENDING, protected=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobShardQuerySet.as_manager()

    class Meta:
        ordering = ["job_id", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="job_shard_unique")]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.index} ({self.status})"

    # Transitions: the whole table. Services apply them set-wise through JobShardQuerySet.transition.
    @transition(field=status, source=Status.PENDING, target=Status.DONE)
    def complete(self) -> None:
        """The shard's work is written."""

    @transition(field=status, source=Status.PENDING, target=Status.FAILED)
    def fail(self) -> None:
        """The shard failed after its last retry."""

    @transition(field=status, source=Status.PENDING, target=Status.INTERRUPTED)
    def interrupt(self) -> None:
        """Its job was interrupted before the shard ran."""

    @transition(field=status, source=[Status.FAILED, Status.INTERRUPTED], target=Status.PENDING)
    def requeue(self) -> None:
        """Queued again by a retry or a resume."""
