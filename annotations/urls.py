from django.urls import path

from . import views

urlpatterns = [
    path("projects/", views.project_list, name="project_list"),
    path("projects/<int:pk>/", views.project_detail, name="project_detail"),
    path("projects/<int:pk>/next/", views.assignment_next, name="assignment_next"),
    path("projects/<int:pk>/progress/", views.project_progress, name="project_progress"),
    path("queue/", views.queue, name="queue"),
    path("annotations/<int:pk>/", views.annotate, name="annotate"),
    path("session/token/", views.session_token, name="session_token"),
    path("annotations/<int:pk>/save/", views.annotation_save, name="annotation_save"),
    path("annotations/<int:pk>/submit/", views.annotation_submit, name="annotation_submit"),
    path("annotations/<int:pk>/skip/", views.annotation_skip, name="annotation_skip"),
    path("annotations/<int:pk>/spans/", views.span_create, name="span_create"),
    path("spans/<int:pk>/", views.span_update, name="span_update"),
    path("spans/<int:pk>/delete/", views.span_delete, name="span_delete"),
]
