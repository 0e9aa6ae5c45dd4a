from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_pk>/generate/", views.generation_job_start, name="generation_job_start"),
    path("generation-jobs/<int:pk>/", views.generation_job_status, name="generation_job_status"),
]
