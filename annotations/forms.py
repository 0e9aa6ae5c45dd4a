"""Forms for the annotation workspace. They only parse what the browser sends; the services decide what is
valid (offsets, labels, weights, ratings), so the REST API and the views refuse the same things."""

from __future__ import annotations

from typing import Any

from django import forms

from . import safejson
from .services import UNSET


class SpanForm(forms.Form):
    """One span, offsets in code points (``static/js/annotate.js`` converts the browser's UTF-16)."""

    start = forms.IntegerField()
    end = forms.IntegerField()
    # Never strip: a selection may begin or end with spaces, tabs or line breaks, and the copy must match.
    text = forms.CharField(required=False, strip=False, empty_value=None)
    label = forms.CharField(max_length=64)
    weight = forms.FloatField(required=False)
    critique = forms.CharField(required=False, strip=False)


class SpanEditForm(forms.Form):
    """A change to an existing span: only the fields sent are changed."""

    label = forms.CharField(max_length=64, required=False)
    weight = forms.FloatField(required=False)
    critique = forms.CharField(required=False, strip=False)

    def changes(self, data) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.fields if name in data}


class OverallForm(forms.Form):
    """The overall critique, the rating, the running time spent and, optionally, every span as JSON."""

    overall_critique = forms.CharField(required=False, strip=False)
    rating = forms.CharField(required=False)
    time_spent = forms.CharField(required=False)
    spans = forms.CharField(required=False, strip=False, help_text="A JSON list replacing all spans.")
    version = forms.IntegerField(required=False, min_value=0, help_text="The version this text was based on.")

    def clean_spans(self) -> Any:
        raw = self.cleaned_data.get("spans")
        if not raw:
            return None
        try:
            value = safejson.loads(raw, max_depth=4, name="spans")
        except safejson.UnsafeJSON as exc:
            raise forms.ValidationError(str(exc)) from None
        except ValueError as exc:
            raise forms.ValidationError(f"spans is not valid JSON: {exc}") from None
        if not isinstance(value, list):
            raise forms.ValidationError("spans must be a JSON list of span objects.")
        return value

    def service_kwargs(self, data) -> dict[str, Any]:
        """Keyword arguments for the save and submit services; a field the request left out stays as is."""
        kwargs = {
            name: self.cleaned_data[name] if name in data else UNSET
            for name in ("overall_critique", "rating", "time_spent")
        }
        if self.cleaned_data.get("version") is not None:
            kwargs["expected_version"] = self.cleaned_data["version"]
        if "spans" in data and self.cleaned_data.get("spans") is not None:
            kwargs["spans"] = self.cleaned_data["spans"]
        return kwargs


class SkipForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea,
        error_messages={
            "required": "Say why you are skipping this output.",
            "max_length": "Keep the reason to %(limit_value)d characters (it has %(show_value)d).",
        },
    )


class ReviewForm(forms.Form):
    """A verdict on one annotation; ``clear`` withdraws it."""

    verdict = forms.ChoiceField(choices=[("accepted", "Accept"), ("rejected", "Reject"), ("clear", "Clear")])
    comment = forms.CharField(required=False, max_length=5_000, strip=False)


class GoldForm(forms.Form):
    """The gold annotation as the review page's editor sends it: the complete span list as JSON."""

    spans = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    overall_critique = forms.CharField(
        required=False, max_length=20_000, strip=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    rating = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, choices=[("", "—")] + [(n, str(n)) for n in range(1, 6)]
    )
    copy_from = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean_spans(self) -> list:
        raw = self.cleaned_data.get("spans") or "[]"
        if len(raw) > 2_000_000:
            raise forms.ValidationError("The span list is too long.")
        try:
            spans = safejson.loads(raw, max_depth=4, name="spans")
        except ValueError as exc:
            raise forms.ValidationError(str(exc) or "The spans must be a JSON list.") from None
        if not isinstance(spans, list):
            raise forms.ValidationError("The spans must be a JSON list.")
        return spans


class IngestKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which application will send outputs with it.")


class WebhookForm(forms.Form):
    url = forms.CharField(max_length=500, label="URL", help_text="https://… (public addresses only)")
    events = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, choices=())
    description = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        from .webhooks import WEBHOOK_EVENTS

        super().__init__(*args, **kwargs)
        self.fields["events"].choices = [(name, f"{name}: {label}") for name, label in WEBHOOK_EVENTS.items()]


class MachineCriticForm(forms.Form):
    """A project's machine critic: its registry name, its settings as a JSON object, on or off. The
    service checks the name against the deployment's critics; the worker, the settings against the critic."""

    name = forms.ChoiceField(label="Critic", choices=())
    critic_settings = forms.CharField(
        label="Settings (JSON)",
        required=False,
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='For example {"mark_good": false} for unit-tests; an unknown key fails the run and names the '
        "keys the critic knows.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        super().__init__(*args, **kwargs)
        self.fields["name"].choices = [(name, name) for name in settings.T2G_MACHINE_CRITICS]

    def clean_critic_settings(self) -> dict:
        value = self.cleaned_data["critic_settings"] or "{}"
        try:
            parsed = safejson.loads(value, max_depth=8, name="the settings")
        except ValueError as exc:
            raise forms.ValidationError(f"Settings must be a JSON object: {exc}") from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Settings must be a JSON object (names to values).")
        return parsed
