"""The round launch form: data selection and the hyperparameters people change most, with defaults."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from annotations.exports import pseudonym
from annotations.models import Project
from text2grad.config import TrainingConfig

from .models import ModelVersion, TrainingRound
from .services import ORIGIN_CHOICES, REVIEW_CHOICES

_DEFAULTS = TrainingConfig()
# (field, label, min, max): the knobs worth a form field; the rest keep their config defaults.
FLOAT_KNOBS = [
    ("learning_rate", "Learning rate", 1e-7, 1.0),
    ("kl_coef", "Initial KL coefficient β", 0.0, 10.0),
    ("lam", "GAE λ", 0.0, 1.0),
    ("gamma", "Discount γ", 0.0, 1.0),
    ("clip_eps", "Clip ε", 0.01, 1.0),
]
INT_KNOBS = [
    ("steps", "PPO updates", 1, 10_000),
    ("batch_size", "Samples per update", 1, 4096),
    ("minibatch_size", "Minibatch size", 1, 512),
    ("micro_batch_size", "Rows per forward/backward", 1, 512),
    ("ppo_epochs", "Epochs per update", 1, 64),
    ("seed", "Seed", 0, 2**31 - 1),
]


# The browser's date-and-time picker sends "2026-12-01T20:30"; typed ISO dates still parse.
_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


def _datetime_field(label: str, help_text: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        help_text=help_text,
        input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


def _origin_field() -> forms.ChoiceField:
    """Which annotations train, by who wrote them: the same choice for rounds and critics."""
    return forms.ChoiceField(
        label="Data by origin",
        choices=list(ORIGIN_CHOICES.items()),
        initial="people",
        required=False,
        help_text="Machine critics' annotations are drafts: train on them only once a reviewer accepted "
        "them, unless you choose all.",
    )


PROMOTE_HELP = (
    "Make the new version active when done, if a judged evaluation campaign shows it significantly better "
    "than the active version (the gate of a manual promotion); otherwise it is saved, not promoted"
)


class _AnnotatorChoiceField(forms.ModelMultipleChoiceField):
    """Annotators by pseudonym: the launch form never shows usernames."""

    def label_from_instance(self, obj) -> str:
        return pseudonym(obj.pk)


class RoundLaunchForm(forms.Form):
    # On-policy rounds have their own form on the project's critic page (they need an active critic).
    mode = forms.ChoiceField(
        label="Reward mode",
        choices=[c for c in TrainingRound.Mode.choices if c[0] != TrainingRound.Mode.ON_POLICY],
        initial=TrainingRound.Mode.TOKEN,
    )
    project = forms.ModelChoiceField(queryset=Project.objects.filter(is_archived=False), required=False,
                                     empty_label="All projects")  # fmt: skip
    since = _datetime_field("Submitted from", "Annotations submitted at or after (optional)")
    until = _datetime_field("Submitted until", "Annotations submitted at or before (optional)")
    model_version = forms.ModelChoiceField(label="Outputs of version", queryset=ModelVersion.objects.all(),
                                           required=False, empty_label="Any version")  # fmt: skip
    review = forms.ChoiceField(
        label="Data by review status",
        choices=list(REVIEW_CHOICES.items()),
        initial="submitted",
        required=False,  # left out: every submitted annotation, as before reviews existed
        help_text="Gold only trains on exactly the adjudicated spans (the gold annotation's rewards).",
    )
    origin = _origin_field()
    min_agreement = forms.FloatField(
        label="Minimum agreement (α)",
        required=False,
        min_value=-1.0,
        max_value=1.0,
        help_text="Only outputs whose annotators agree at least this much (leaves out unmeasured outputs).",
    )
    include_undefined_agreement = forms.BooleanField(
        label="Keep outputs whose agreement is undefined",
        required=False,
        help_text="With a minimum agreement: outputs whose annotators gave every character the same label "
        "(say, nobody drew a span) have no α; left out unless ticked.",
    )
    exclude_annotators = _AnnotatorChoiceField(
        queryset=get_user_model().objects.none(), required=False, label="Annotators to leave out"
    )
    adaptive_kl = forms.BooleanField(label="Adaptive KL controller", required=False, initial=_DEFAULTS.adaptive_kl,
                                     help_text="Adjust β during the round towards the target KL")  # fmt: skip
    auto_promote = forms.BooleanField(required=False, help_text=PROMOTE_HELP)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["exclude_annotators"].queryset = (
            get_user_model().objects.filter(annotations__is_gold=False).distinct().order_by("pk")
        )
        for name, label, low, high in FLOAT_KNOBS:
            self.fields[name] = forms.FloatField(label=label, min_value=low, max_value=high, required=False,
                                                 initial=getattr(_DEFAULTS, name))  # fmt: skip
        for name, label, low, high in INT_KNOBS:
            self.fields[name] = forms.IntegerField(label=label, min_value=low, max_value=high, required=False,
                                                   initial=getattr(_DEFAULTS, name))  # fmt: skip

    def selection(self) -> dict:
        data = self.cleaned_data
        return {
            "project_id": data["project"].pk if data["project"] else None,
            "since": data["since"].isoformat() if data["since"] else None,
            "until": data["until"].isoformat() if data["until"] else None,
            "model_version_id": data["model_version"].pk if data["model_version"] else None,
            "review": data["review"] or "submitted",
            "origin": data["origin"] or "people",
            "min_agreement": data["min_agreement"],
            "undefined_agreement": "include" if data["include_undefined_agreement"] else "exclude",
            "exclude_annotators": sorted(user.pk for user in data["exclude_annotators"]),
        }

    def config(self) -> dict:
        """The hyperparameters given; a knob left empty takes TrainingConfig's default."""
        names = [name for name, *_ in FLOAT_KNOBS + INT_KNOBS] + ["adaptive_kl"]
        return {name: self.cleaned_data[name] for name in names if self.cleaned_data[name] is not None}


class CriticTrainForm(forms.Form):
    """Train a critic on the project's submitted annotations."""

    epochs = forms.IntegerField(min_value=1, max_value=100, initial=3)
    learning_rate = forms.FloatField(min_value=1e-6, max_value=1.0, initial=1e-3)
    held_out_fraction = forms.FloatField(min_value=0.0, max_value=0.9, initial=0.2,
                                         help_text="Share of outputs kept out of training, for metrics, by "
                                                   "prompt; a continued critic keeps its parent's held out")  # fmt: skip
    review = forms.ChoiceField(
        label="Data",
        choices=list(REVIEW_CHOICES.items()),
        initial="submitted",
        required=False,
        help_text="As for rounds; rejected annotations are never used and an output's gold replaces its annotators'.",
    )
    origin = _origin_field()
    min_agreement = forms.FloatField(
        label="Minimum agreement (α)", required=False, min_value=-1.0, max_value=1.0,
        help_text="Only outputs whose annotators agree at least this much (gold outputs are kept).",
    )  # fmt: skip
    continue_from_active = forms.BooleanField(
        required=False, help_text="Start from the active critic's adapter"
    )
    auto_activate = forms.BooleanField(required=False, help_text="Activate the new critic when done")

    def config(self) -> dict:
        return {k: self.cleaned_data[k] for k in ("epochs", "learning_rate", "held_out_fraction")}

    def selection(self) -> dict:
        return {
            "review": self.cleaned_data["review"] or "submitted",
            "origin": self.cleaned_data["origin"] or "people",
            "min_agreement": self.cleaned_data["min_agreement"],
        }


class OnPolicyRoundForm(forms.Form):
    """An on-policy round: fresh samples of the active model, scored by the project's active critic."""

    steps = forms.IntegerField(label="PPO updates", min_value=1, max_value=1000, initial=8)
    batch_size = forms.IntegerField(label="Samples per update", min_value=1, max_value=256, initial=8)
    learning_rate = forms.FloatField(min_value=1e-7, max_value=1.0, initial=5e-4)
    audit_share = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.25,
                                   help_text="Share of samples sent to the annotation queue for audit")  # fmt: skip
    max_new_tokens = forms.IntegerField(min_value=1, max_value=1024, initial=64)
    temperature = forms.FloatField(min_value=0.05, max_value=2.0, initial=0.8)
    auto_promote = forms.BooleanField(required=False, help_text=PROMOTE_HELP)

    def config(self) -> dict:
        data = self.cleaned_data
        return {"steps": data["steps"], "batch_size": data["batch_size"], "learning_rate": data["learning_rate"],
                "minibatch_size": min(4, data["batch_size"])}  # fmt: skip


class ApiKeyForm(forms.Form):
    """A new key for the OpenAI-compatible endpoint: what it is for, its projects, its rate limit."""

    name = forms.CharField(max_length=100, help_text="What the key is for (an application, a notebook).")
    projects = forms.ModelMultipleChoiceField(
        queryset=Project.objects.filter(is_archived=False).order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="The key may use these projects' versions and their alias of the active version.",
    )
    rate_limit_per_minute = forms.IntegerField(
        min_value=1, max_value=10_000, label="Requests a minute", required=False
    )


class PlaygroundForm(forms.Form):
    """One prompt to one version, or two side by side, with the same seed."""

    version_a = forms.ModelChoiceField(queryset=ModelVersion.objects.order_by("-created_at"), label="Version")
    version_b = forms.ModelChoiceField(
        queryset=ModelVersion.objects.order_by("-created_at"), required=False, label="Side by side with"
    )
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=8_000)
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=0)
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, initial=0.6)
    max_tokens = forms.IntegerField(min_value=1, max_value=512, initial=128, label="Max new tokens")


class PlaygroundSendForm(forms.Form):
    """An answer of the playground, to a project's annotation queue."""

    project = forms.ModelChoiceField(queryset=Project.objects.filter(is_archived=False).order_by("name"))
    version = forms.ModelChoiceField(queryset=ModelVersion.objects.all(), widget=forms.HiddenInput)
    prompt = forms.CharField(widget=forms.HiddenInput, max_length=8_000)
    # The answer exactly as the model gave it: a leading space is a token of its own (stripping it would
    # queue an output the model never wrote, and its critiques would align to other tokens).
    text = forms.CharField(widget=forms.HiddenInput, strip=False)
    seed = forms.IntegerField(widget=forms.HiddenInput)
    temperature = forms.FloatField(widget=forms.HiddenInput)
