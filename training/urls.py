from django.urls import path

from .views import critic, downloads, feedback, rounds

urlpatterns = [
    path("training/", rounds.training_home, name="training_home"),
    path("training/rounds/", rounds.round_launch, name="round_launch"),
    path("training/rounds/<int:pk>/", rounds.round_detail, name="round_detail"),
    path("training/rounds/<int:pk>/<str:action>/", rounds.round_action, name="round_action"),
    path("training/versions/<int:pk>/activate/", rounds.version_activate, name="version_activate"),
    path("training/versions/<int:pk>/", downloads.version_detail, name="version_detail"),
    path(
        "training/versions/<int:pk>/download/<str:kind>/", downloads.version_download, name="version_download"
    ),
    path("training/downloads/<int:pk>/", downloads.download_status, name="download_status"),
    path("training/downloads/<int:pk>/file/", downloads.download_file, name="download_file"),
    path("training/compare/", rounds.version_compare, name="version_compare"),
    path("training/compare/generate/", rounds.version_compare_generate, name="version_compare_generate"),
    path("projects/<int:project_pk>/generate/", rounds.generation_job_start, name="generation_job_start"),
    path("generation-jobs/<int:pk>/", rounds.generation_job_status, name="generation_job_status"),
    path("generation-jobs/<int:pk>/cancel/", rounds.generation_job_cancel, name="generation_job_cancel"),
    path("annotations/<int:pk>/suggest/", feedback.annotation_suggest, name="annotation_suggest"),
    path("annotations/<int:pk>/heatmap/", feedback.annotation_heatmap, name="annotation_heatmap"),
    path("suggestions/<int:pk>/", feedback.alignment_status, name="alignment_status"),
    path("projects/<int:project_pk>/critic/", critic.critic_home, name="critic_home"),
    path("projects/<int:project_pk>/critic/train/", critic.critic_train, name="critic_train"),
    path(
        "projects/<int:project_pk>/critic/deactivate/",
        critic.critic_deactivate,
        name="critic_deactivate",
    ),
    path("projects/<int:project_pk>/critic/settings/", critic.critic_settings, name="critic_settings"),
    path("projects/<int:project_pk>/on-policy/", critic.on_policy_launch, name="on_policy_launch"),
    path("critics/<int:pk>/activate/", critic.critic_activate, name="critic_activate"),
    path("critic-jobs/<int:pk>/", critic.critic_job_status, name="critic_job_status"),
    path("critic-jobs/<int:pk>/cancel/", critic.critic_job_cancel, name="critic_job_cancel"),
    path(
        "critic-predictions/<int:pk>/cancel/",
        critic.critic_prediction_cancel,
        name="critic_prediction_cancel",
    ),
    path(
        "annotations/<int:pk>/critic-suggestions/",
        critic.annotation_critic_suggestions,
        name="annotation_critic_suggestions",
    ),
    path(
        "suggestions/<int:pk>/<int:index>/<str:decision>/",
        feedback.alignment_decide,
        name="alignment_decide",
    ),
]
