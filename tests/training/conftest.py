import pytest

from tests.conftest import torch_threads


@pytest.fixture
def tiny_settings(settings, tiny_model_dir, tmp_path):
    """Point the model store at the tiny model and a throwaway models folder."""
    settings.T2G_BASE_MODEL = str(tiny_model_dir)
    settings.T2G_MODELS_DIR = tmp_path / "models"
    settings.T2G_MODEL_CACHE_DIR = tmp_path / "models" / "cache"
    settings.T2G_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.T2G_TORCH_THREADS = torch_threads()  # this process's share (tests/conftest.py)
    return settings


@pytest.fixture
def critiqued(db, project, make_generation, annotator, annotator2):
    """Two generations, each critiqued by two annotators: a poor span and a good span per output."""
    return critique_two_outputs(project, make_generation, (annotator, annotator2))


def critique_two_outputs(project, make_generation, annotators) -> list:
    """``critiqued``'s rows, for fixtures of a wider scope than a test's: [(generation, poor, good)]."""
    from django.utils import timezone

    from annotations.models import Annotation, Span

    # The poor span comes first: with γ=1, λ=0.95 a good span followed closely by a longer poor span gets
    # almost no net advantage (the poor rewards flow back into it), which would make "good went up" noise.
    texts = [
        "It was invented in 1999 by aliens. The cat sat on the mat.",
        "Cheese is blue. Water boils at 100 C.",
    ]
    poor_phrases = ["invented in 1999 by aliens", "Cheese is blue"]
    good_phrases = ["The cat sat on the mat", "Water boils at 100 C"]
    result = []
    for text, poor, good in zip(texts, poor_phrases, good_phrases, strict=True):
        generation = make_generation(project, text)
        for user in annotators:
            annotation = Annotation.objects.create(
                generation=generation,
                annotator=user,
                status="submitted",
                submitted_at=timezone.now(),
                rating=2,
            )
            for phrase, label, polarity in ((poor, "poor", -1), (good, "good", 1)):
                start = text.index(phrase)
                Span.objects.create(
                    annotation=annotation, start=start, end=start + len(phrase), text=phrase,
                    label=label, polarity=polarity, critique=f"{label} part",
                )  # fmt: skip
        result.append((generation, poor, good))
    return result


@pytest.fixture
def labelled(project, make_generation, annotator):
    from django.utils import timezone

    from annotations.models import Annotation, Span

    """Eight outputs with a submitted annotation each: the number is a poor span, the name a good one."""
    rows = []
    for n in range(8):
        number = str(1900 + 7 * n)
        text = f"Ann Lee visited the fair in {number} with friends."
        generation = make_generation(
            project, text, prompt_text=f"Summarise item {n}: Ann Lee visited the fair."
        )
        annotation = Annotation.objects.create(
            generation=generation, annotator=annotator, status="submitted", submitted_at=timezone.now()
        )
        start = text.index(number)
        Span.objects.create(annotation=annotation, start=start, end=start + 4, text=number, label="poor",
                            polarity=-1, critique="invented year")  # fmt: skip
        Span.objects.create(annotation=annotation, start=0, end=7, text="Ann Lee", label="good", polarity=1)
        rows.append(generation)
    return rows


@pytest.fixture
def make_finished_round(project):
    """A succeeded round of ``project`` whose new version's parent is the active base, over 12 prompts of
    which every ``held_out_every``-th (from the first) is held out; returns the round."""
    from annotations.models import Prompt
    from training.models import ModelVersion, TrainingRound

    def make(*, held_out_every: int) -> TrainingRound:
        for i in range(12):
            Prompt.objects.create(
                project=project, text=f"Summarize item {i}.", held_out=i % held_out_every == 0
            )
        base = ModelVersion.objects.create(name="v0-base", is_active=True)
        training_round = TrainingRound.objects.create(status=TrainingRound.Status.SUCCEEDED, project=project)
        child = ModelVersion.objects.create(name="v1-round", parent=base, created_by_round=training_round)
        TrainingRound.objects.filter(pk=training_round.pk).update(output_version=child)
        training_round.refresh_from_db()
        return training_round

    return make
