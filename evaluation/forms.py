"""The campaign form: the admin's choices, checked again by ``services.campaign_create``."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from annotations import roles
from annotations.models import Project

from .models import EvaluationCampaign
from .services import MAX_PER_PAIR, MAX_PROMPTS


def _version_model():
    return EvaluationCampaign._meta.get_field("versions").related_model


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    project = forms.ModelChoiceField(queryset=Project.objects.filter(is_archived=False))
    versions = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, help_text="Two or more."
    )
    prompt_source = forms.ChoiceField(
        choices=[
            ("held_out", "The project's held-out prompts (never trained on)"),
            ("all", "Any prompts of the project"),
        ],
        initial="held_out",
    )
    prompt_count = forms.IntegerField(min_value=1, max_value=MAX_PROMPTS, initial=20, label="Prompts")
    judgements_per_pair = forms.IntegerField(min_value=1, max_value=MAX_PER_PAIR, initial=1)
    judges = forms.ModelMultipleChoiceField(
        queryset=None, required=False, help_text="Leave empty to let every annotator judge."
    )
    temperature = forms.FloatField(min_value=0.01, max_value=2.0, initial=0.6)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=2048, initial=160)
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["versions"].queryset = _version_model().objects.order_by("-created_at", "-id")
        user_model = get_user_model()
        self.fields["judges"].queryset = (
            user_model.objects.filter(groups__name__in=[roles.ANNOTATOR, roles.ADMIN])
            .distinct()
            .order_by("username")
        )

    def sampling_params(self) -> dict:
        return {key: self.cleaned_data[key] for key in ("temperature", "max_new_tokens")}
