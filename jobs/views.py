"""The jobs page: what ran, what runs, with progress and errors; admins start, retry and refresh from here."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from core.audit import audit_record
from core.permissions import ADMIN, MANAGER, role_required, user_has_role
from jobs import pipeline, registry, selectors, services
from jobs.models import Job, JobShard

JOBS_PER_PAGE = 25
SHARDS_SHOWN = 200


@dataclass(frozen=True)
class Startable:
    """A button on the jobs page: the kind it starts and the kinds chained after it."""

    key: str
    kind: str
    then: tuple[str, ...]
    description: str
    label: str = ""  # the kind's own label when empty


# The buttons: single steps of jobs.pipeline, except "embed", which starts its EMBED selection.
STARTABLE = (
    Startable("import", "import", (), gettext_lazy("Import the configured Online Retail file (new lines only).")),
    Startable(
        "embed",
        pipeline.EMBED[0],
        pipeline.EMBED[1:],
        gettext_lazy("Embed changed products, then recompute changed customer vectors."),
        gettext_lazy("Embed products and customers"),
    ),
    Startable("recommend", "recommend", (), gettext_lazy("Make a new recommendation batch and swap it in.")),
    Startable("explain", "explain", (), gettext_lazy("Explain the active recommendations that have no explanation.")),
    Startable("train_concepts", "train_concepts", (), gettext_lazy("Train the concept vectors (CAVs).")),
    Startable("calibrate", "calibrate", (), gettext_lazy("Fit the confidence calibration on a temporal holdout.")),
    Startable("train_elm", "train_elm", (), gettext_lazy("Train the ELM adapter that puts vectors into words.")),
    Startable(
        "replay",
        "replay",
        (),
        gettext_lazy("Replay the recommender at 1 Sep 2011 and score it on what customers bought afterwards."),
    ),
    Startable("evaluate", "evaluate", (), gettext_lazy("Run the offline evaluation against the baselines.")),
)


def startable_jobs() -> list[Startable]:
    """Return the buttons whose kinds are registered (``evaluate`` only once its app registers it)."""
    kinds = registry.all_kinds()
    return [s for s in STARTABLE if s.kind in kinds and all(k in kinds for k in s.then)]


def _labels() -> dict[str, str]:
    """Return each kind's label in the active language (labels are lazy translations)."""
    return {name: str(kind.label) for name, kind in registry.all_kinds().items()}


def _schedule_text(task) -> str:
    """Return a daily crontab in words ("every day at 02:30 (Europe/London)"), else its crontab line."""
    cron = getattr(task, "crontab", None)
    if cron is None:
        return str(getattr(task, "interval", "") or "")
    daily = (cron.day_of_week, cron.day_of_month, cron.month_of_year) == ("*", "*", "*")
    if daily and cron.minute.isdigit() and cron.hour.isdigit():
        return _("every day at %(time)s (%(zone)s)") % {
            "time": f"{int(cron.hour):02d}:{int(cron.minute):02d}",
            "zone": cron.timezone,
        }
    return f"{cron.minute} {cron.hour} {cron.day_of_month} {cron.month_of_year} {cron.day_of_week} ({cron.timezone})"


def _has_running(jobs: list[Job]) -> bool:
    return any(j.is_active for j in jobs)


@role_required(MANAGER)
def job_list(request: HttpRequest) -> HttpResponse:
    """List jobs newest first with their progress; refreshes itself while any job is running."""
    status = request.GET.get("status") or ""
    kind = request.GET.get("kind") or ""
    qs = selectors.job_queryset(kind=kind or None, status=status or None)
    page = Paginator(qs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    jobs = list(page.object_list)
    labels = _labels()
    return render(
        request,
        "jobs/job_list.html",
        {
            "page": page,
            "jobs": jobs,
            "labels": labels,
            "kinds": sorted(labels.items(), key=lambda kv: kv[1]),
            "statuses": Job.Status.choices,
            "current_kind": kind,
            "current_status": status,
            "can_start": user_has_role(request.user, ADMIN),
            "startable": startable_jobs(),
            "refresh": _has_running(jobs) or selectors.jobs_active_exist(),
            "nightly": selectors.nightly_schedule(),
            "nightly_when": _schedule_text(selectors.nightly_schedule()),
        },
    )


@role_required(MANAGER)
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """Show one job: parameters, result, error, its chain and its shards (failed ones first)."""
    job = get_object_or_404(Job.objects.select_related("created_by", "parent"), pk=job_id)
    shards = list(
        job.shards.order_by(
            # Failed shards first: they are what an admin opens this page for.
            "status",
            "index",
        )
        .exclude(status=JobShard.Status.DONE)
        .only("job_id", "index", "size", "status", "attempts", "error", "finished_at")[:SHARDS_SHOWN]
    )
    counts = selectors.shard_counts(job)
    return render(
        request,
        "jobs/job_detail.html",
        {
            "job": job,
            "label": _labels().get(job.kind, job.kind),
            "labels": _labels(),
            "children": list(job.children.order_by("created_at")),
            "shards": shards,
            "shards_limited": len(shards) >= SHARDS_SHOWN,
            # Statuses in the reader's language: the counts are keyed by the stored values.
            "shard_counts": {JobShard.Status(status).label: n for status, n in counts.items()},
            "can_start": user_has_role(request.user, ADMIN),
            "refresh": job.is_active,
        },
    )


@require_POST
@role_required(ADMIN)
def job_start(request: HttpRequest) -> HttpResponse:
    """Start the job of the button pressed (admins only); an unknown button is a 404."""
    key = request.POST.get("kind", "")
    chosen = next((s for s in startable_jobs() if s.key == key), None)
    if chosen is None:
        raise Http404
    params = {"force": True} if request.POST.get("force") else {}
    with transaction.atomic():
        job = services.job_create(kind=chosen.kind, params=params, then=chosen.then, created_by=request.user)
        audit_record(
            actor=request.user,
            action="job.start",
            object_type="job",
            object_ref=job.pk,
            detail={"kind": chosen.kind, "then": list(chosen.then), "params": params},
        )
    messages.success(request, _("Started %(label)s (job #%(id)s).") % {"label": _labels()[job.kind], "id": job.pk})
    return redirect("job-detail", job_id=job.pk)


@dataclass(frozen=True)
class _Action:
    """A button on a failed or interrupted job: which states allow it, the service, the messages."""

    sources: tuple[str, ...]
    service: object
    refused: str
    done: str


ACTIONS = {
    "retry": _Action(
        (Job.Status.FAILED,),
        services.job_retry,
        gettext_lazy("Only a failed job can be retried."),
        gettext_lazy("Retrying job #%(id)s."),
    ),
    "resume": _Action(
        (Job.Status.INTERRUPTED,),
        services.job_resume,
        gettext_lazy("Only an interrupted job can be resumed."),
        gettext_lazy("Resuming job #%(id)s: its unfinished shards are queued again."),
    ),
    "restart": _Action(
        (Job.Status.FAILED, Job.Status.INTERRUPTED),
        services.job_restart,
        gettext_lazy("Only a failed or interrupted job can be run again from the start."),
        gettext_lazy("Running job #%(id)s again from the start."),
    ),
}


def _act(request: HttpRequest, job_id: int, name: str) -> HttpResponse:
    action = ACTIONS[name]
    job = get_object_or_404(Job, pk=job_id)
    if job.status not in action.sources:
        messages.warning(request, action.refused)
        return redirect("job-detail", job_id=job.pk)
    with transaction.atomic():
        action.service(job_id=job.pk)
        audit_record(actor=request.user, action=f"job.{name}", object_type="job", object_ref=job.pk, detail={})
    messages.success(request, action.done % {"id": job.pk})
    return redirect("job-detail", job_id=job.pk)


@require_POST
@role_required(ADMIN)
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """Re-queue the unfinished shards of a failed job (admins only)."""
    return _act(request, job_id, "retry")


@require_POST
@role_required(ADMIN)
def job_resume(request: HttpRequest, job_id: int) -> HttpResponse:
    """Go on with an interrupted job where it stopped (admins only)."""
    return _act(request, job_id, "resume")


@require_POST
@role_required(ADMIN)
def job_restart(request: HttpRequest, job_id: int) -> HttpResponse:
    """Run a failed or interrupted job again from its plan, redoing every shard (admins only)."""
    return _act(request, job_id, "restart")


@require_POST
@role_required(ADMIN)
def nightly_start(request: HttpRequest) -> HttpResponse:
    """Start the nightly refresh chain now, unless one is already running (admins only)."""
    with transaction.atomic():
        job = services.nightly_refresh_start(created_by=request.user)
        if job is not None:
            audit_record(
                actor=request.user, action="job.start", object_type="job", object_ref=job.pk, detail={"nightly": True}
            )
    if job is None:
        messages.warning(request, _("A refresh is already running; nothing was started."))
        return redirect("job-list")
    messages.success(request, _("Started the nightly refresh now (job #%(id)s).") % {"id": job.pk})
    return redirect("job-detail", job_id=job.pk)
