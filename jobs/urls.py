from django.urls import path

from jobs import views

urlpatterns = [
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/start/", views.job_start, name="job-start"),
    path("jobs/nightly/", views.nightly_start, name="job-nightly"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="job-retry"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job-resume"),
    path("jobs/<int:job_id>/restart/", views.job_restart, name="job-restart"),
]
