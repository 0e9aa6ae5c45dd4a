from django.urls import path

from . import review_views, views

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

urlpatterns += [
    path("projects/<int:pk>/review/", review_views.review_queue, name="review_queue"),
    path("projects/<int:pk>/review/next/", review_views.review_next, name="review_next"),
    path("projects/<int:pk>/agreement/", review_views.project_agreement, name="project_agreement"),
    path("review/outputs/<int:pk>/", review_views.review_output, name="review_output"),
    path("review/outputs/<int:pk>/gold/", review_views.review_gold, name="review_gold"),
    path("review/annotations/<int:pk>/", review_views.review_verdict, name="review_verdict"),
    path("my/reviews/", review_views.my_reviews, name="my_reviews"),
]
