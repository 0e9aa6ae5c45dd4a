from django.urls import path

from . import critic_views, download_views, feedback_views, views

urlpatterns = [
    path("training/", views.training_home, name="training_home"),
    path("training/rounds/", views.round_launch, name="round_launch"),
    path("training/rounds/<int:pk>/", views.round_detail, name="round_detail"),
    path("training/rounds/<int:pk>/<str:action>/", views.round_action, name="round_action"),
    path("training/versions/<int:pk>/activate/", views.version_activate, name="version_activate"),
    path("training/versions/<int:pk>/", download_views.version_detail, name="version_detail"),
    path(
        "training/versions/<int:pk>/download/<str:kind>/",
        download_views.version_download,
        name="version_download",
    ),
    path("training/downloads/<int:pk>/", download_views.download_status, name="download_status"),
    path("training/downloads/<int:pk>/file/", download_views.download_file, name="download_file"),
    path("training/compare/", views.version_compare, name="version_compare"),
    path("training/compare/generate/", views.version_compare_generate, name="version_compare_generate"),
    path("projects/<int:project_pk>/generate/", views.generation_job_start, name="generation_job_start"),
    path("generation-jobs/<int:pk>/", views.generation_job_status, name="generation_job_status"),
    path("generation-jobs/<int:pk>/cancel/", views.generation_job_cancel, name="generation_job_cancel"),
    path("annotations/<int:pk>/suggest/", feedback_views.annotation_suggest, name="annotation_suggest"),
    path("annotations/<int:pk>/heatmap/", feedback_views.annotation_heatmap, name="annotation_heatmap"),
    path("suggestions/<int:pk>/", feedback_views.alignment_status, name="alignment_status"),
    path("projects/<int:project_pk>/critic/", critic_views.critic_home, name="critic_home"),
    path("projects/<int:project_pk>/critic/train/", critic_views.critic_train, name="critic_train"),
    path(
        "projects/<int:project_pk>/critic/deactivate/",
        critic_views.critic_deactivate,
        name="critic_deactivate",
    ),
    path("projects/<int:project_pk>/critic/settings/", critic_views.critic_settings, name="critic_settings"),
    path("projects/<int:project_pk>/on-policy/", critic_views.on_policy_launch, name="on_policy_launch"),
    path("critics/<int:pk>/activate/", critic_views.critic_activate, name="critic_activate"),
    path("critic-jobs/<int:pk>/", critic_views.critic_job_status, name="critic_job_status"),
    path("critic-jobs/<int:pk>/cancel/", critic_views.critic_job_cancel, name="critic_job_cancel"),
    path(
        "annotations/<int:pk>/critic-suggestions/",
        critic_views.annotation_critic_suggestions,
        name="annotation_critic_suggestions",
    ),
    path(
        "suggestions/<int:pk>/<int:index>/<str:decision>/",
        feedback_views.alignment_decide,
        name="alignment_decide",
    ),
]
