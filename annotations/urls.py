from django.urls import path

from .views import integrations, machine, review, workspace

urlpatterns = [
    path("projects/", workspace.project_list, name="project_list"),
    path("projects/<int:pk>/", workspace.project_detail, name="project_detail"),
    path("projects/<int:pk>/next/", workspace.assignment_next, name="assignment_next"),
    path("projects/<int:pk>/progress/", workspace.project_progress, name="project_progress"),
    path("queue/", workspace.queue, name="queue"),
    path("annotations/<int:pk>/", workspace.annotate, name="annotate"),
    path("session/token/", workspace.session_token, name="session_token"),
    path("annotations/<int:pk>/save/", workspace.annotation_save, name="annotation_save"),
    path("annotations/<int:pk>/submit/", workspace.annotation_submit, name="annotation_submit"),
    path("annotations/<int:pk>/skip/", workspace.annotation_skip, name="annotation_skip"),
    path("annotations/<int:pk>/spans/", workspace.span_create, name="span_create"),
    path("spans/<int:pk>/", workspace.span_update, name="span_update"),
    path("spans/<int:pk>/delete/", workspace.span_delete, name="span_delete"),
]

urlpatterns += [
    path("projects/<int:pk>/review/", review.review_queue, name="review_queue"),
    path("projects/<int:pk>/review/next/", review.review_next, name="review_next"),
    path("projects/<int:pk>/agreement/", review.project_agreement, name="project_agreement"),
    path("review/outputs/<int:pk>/", review.review_output, name="review_output"),
    path("review/outputs/<int:pk>/gold/", review.review_gold, name="review_gold"),
    path("review/annotations/<int:pk>/", review.review_verdict, name="review_verdict"),
    path("my/reviews/", review.my_reviews, name="my_reviews"),
]

urlpatterns += [
    path("projects/<int:pk>/integrations/", integrations.project_integrations, name="project_integrations"),
    path("ingest-keys/<int:pk>/revoke/", integrations.ingest_key_revoke, name="ingest_key_revoke"),
    path("webhooks/", integrations.webhook_list, name="webhook_list"),
    path("webhooks/<int:pk>/", integrations.webhook_detail, name="webhook_detail"),
    path("webhooks/<int:pk>/<str:action>/", integrations.webhook_action, name="webhook_action"),
    path("webhook-deliveries/<int:pk>/redeliver/", integrations.webhook_redeliver, name="webhook_redeliver"),
    path("projects/<int:pk>/machine-critics/", machine.machine_critics, name="machine_critics"),
    path(
        "projects/<int:pk>/machine-critics/configure/",
        machine.machine_critic_configure,
        name="machine_critic_configure",
    ),
    path("machine-critics/<int:pk>/run/", machine.machine_critic_run, name="machine_critic_run"),
    path(
        "machine-critics/runs/<int:pk>/cancel/", machine.machine_critic_cancel, name="machine_critic_cancel"
    ),
]
