from django.urls import path

from . import views

urlpatterns = [
    path("evaluation/", views.campaign_list, name="campaign_list"),
    path("evaluation/new/", views.campaign_create, name="campaign_create"),
    path("evaluation/<int:pk>/", views.campaign_detail, name="campaign_detail"),
    path("evaluation/<int:pk>/prompts/<int:prompt_pk>/", views.campaign_prompt, name="campaign_prompt"),
    path("evaluation/<int:pk>/preferences.jsonl", views.campaign_preferences, name="campaign_preferences"),
    path("evaluation/<int:pk>/judge/", views.judge, name="campaign_judge"),
    path("evaluation/judgements/<int:pk>/", views.judgement_submit, name="judgement_submit"),
    path("evaluation/<int:pk>/<str:action>/", views.campaign_action, name="campaign_action"),
]
