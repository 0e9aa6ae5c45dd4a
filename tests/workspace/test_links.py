"""No dead ends: project pages link outputs to their annotations, the heatmap links back to its annotation."""

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_annotations(project, make_generation, annotator, annotator2):
    generation = make_generation(project, "The bridge opened in 1932 after four years.")
    result = []
    for user in (annotator, annotator2):
        services.assignment_next(project=project, annotator=user)
        annotation = Annotation.objects.get(generation=generation, annotator=user)
        services.span_create(
            annotation=annotation, start=4, end=10, label="poor", critique=f"Wrong <b>{user}</b>", user=user
        )
        services.annotation_submit(annotation=annotation, overall_critique="ok", user=user)
        result.append(annotation)
    return result


def test_project_page_links_each_viewer_to_the_annotations_they_may_open(
    login, annotator, researcher, project, two_annotations
):
    mine, theirs = two_annotations
    page = login(annotator).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert reverse("annotate", args=[mine.pk]) in page
    assert reverse("annotate", args=[theirs.pk]) not in page
    page = login(researcher).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert reverse("annotate", args=[mine.pk]) in page and reverse("annotate", args=[theirs.pk]) in page
    assert reverse("annotation_heatmap", args=[theirs.pk]) in page


def test_heatmap_links_back_and_lists_span_critiques_escaped(login, annotator, two_annotations):
    mine, _ = two_annotations
    page = login(annotator).get(reverse("annotation_heatmap", args=[mine.pk])).content.decode()
    assert f'href="{reverse("annotate", args=[mine.pk])}"' in page
    assert 'id="span-critiques"' in page and "Wrong &lt;b&gt;ann1&lt;/b&gt;" in page


def test_annotators_see_lines_or_nothing_never_raw_offsets(login, annotator, two_annotations):
    mine, _ = two_annotations
    page = login(annotator).get(reverse("annotate", args=[mine.pk])).content.decode()
    assert "[4, 10)" not in page
