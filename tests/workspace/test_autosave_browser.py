"""The overall critique's autosave in Chromium: an ended session, two tabs, a refused save, Back after submit."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation

from .conftest import open_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-9"


def _draft(annotator, project, make_generation, text="The output under review."):
    generation = make_generation(project, text)
    services.assignment_next(project=project, annotator=annotator)
    return Annotation.objects.get(generation=generation, annotator=annotator)


def _log_out_in_another_tab(page):
    other = page.context.new_page()
    other.goto(reverse("project_list"))
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url(lambda url: "/accounts/" in url or url.endswith("/"))
    other.close()


def _local_copy(page, annotation):
    return page.evaluate(
        "(key) => JSON.parse(localStorage.getItem(key) || 'null')", f"t2g-draft:{annotation.pk}"
    )


def test_session_ended_asks_to_log_in_in_place_then_saves_and_submits(
    page, login_browser, annotator, project, make_generation
):
    annotation = _draft(annotator, project, make_generation)
    make_generation(project, "A second output, to land on after submitting.")
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    _log_out_in_another_tab(page)

    page.fill("#overall-critique", "Typed after the session ended.")
    page.wait_for_selector("#login-dialog[open]")
    # The status line stays, says what happened, and the form is still the workspace's form.
    assert "Session ended" in page.inner_text("#save-status")
    assert page.locator("#overall-form input[name='password']").count() == 0
    assert _local_copy(page, annotation)["overall_critique"] == "Typed after the session ended."
    annotation.refresh_from_db()
    assert annotation.overall_critique == ""

    # A wrong password keeps the dialog open with a reason; the right one saves what was typed.
    page.fill("#relogin-password", "not-the-password")
    page.click("#relogin-button")
    page.wait_for_selector("#relogin-error:not([hidden])")
    assert page.locator("#login-dialog").get_attribute("open") is not None
    page.fill("#relogin-password", PASSWORD)
    page.click("#relogin-button")
    page.wait_for_function("document.getElementById('save-status').textContent.startsWith('Saved at')")
    annotation.refresh_from_db()
    assert annotation.overall_critique == "Typed after the session ended."
    assert _local_copy(page, annotation) is None  # confirmed, so no longer kept

    # Submitting after logging in again works (a fresh CSRF token; no 405).
    page.click("#submit-button")
    page.wait_for_url(lambda url: not url.endswith(reverse("annotate", args=[annotation.pk])))
    annotation.refresh_from_db()
    assert annotation.status == "submitted"
    assert annotation.overall_critique == "Typed after the session ended."
    # The one expected failure is the 401 the save met; nothing else went wrong in the page.
    assert [error for error in page.errors if "status of 401" not in error] == [], page.errors


def test_plain_submit_after_the_session_ended_comes_back_to_the_annotation_not_405(
    page, live_server, login_browser, annotator, project, make_generation
):
    annotation = _draft(annotator, project, make_generation)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    _log_out_in_another_tab(page)
    # The page does not know yet: the native form POST meets the login page.
    page.evaluate("document.getElementById('overall-critique').value = 'Typed, then submitted at once.'")
    page.evaluate(
        "localStorage.setItem('t2g-draft:' + document.getElementById('workspace').dataset.annotationId,"
        " JSON.stringify({overall_critique: 'Typed, then submitted at once.', rating: '', version: '0'}))"
    )
    page.click("#submit-button")
    page.wait_for_url(lambda url: "/accounts/login/" in url)
    page.fill('input[name="username"]', annotator.username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('main button[type="submit"]')
    page.wait_for_url(f"{live_server.url}{reverse('annotate', args=[annotation.pk])}")
    page.wait_for_selector('#workspace[data-ready="1"]')
    # Back on the draft, with what was typed restored from the browser and saved.
    assert page.input_value("#overall-critique") == "Typed, then submitted at once."
    page.wait_for_function("document.getElementById('save-status').textContent.startsWith('Saved at')")
    annotation.refresh_from_db()
    assert (annotation.status, annotation.overall_critique) == ("draft", "Typed, then submitted at once.")


def test_two_tabs_conflict_shows_both_texts_and_the_choice_is_saved(
    page, login_browser, annotator, project, make_generation
):
    annotation = _draft(annotator, project, make_generation)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    other = page.context.new_page()
    open_workspace(other, reverse("annotate", args=[annotation.pk]))

    with page.expect_response(lambda response: response.url.endswith("/save/")) as first:
        page.fill("#overall-critique", "Written in tab A.")
    assert first.value.status == 200
    # Tab B still holds version 0 and types something else: refused, both texts shown.
    with other.expect_response(lambda response: response.url.endswith("/save/")) as second:
        other.fill("#overall-critique", "Written in tab B.")
    assert second.value.status == 409
    other.wait_for_selector("#conflict-dialog[open]")
    assert other.inner_text("#conflict-mine") == "Written in tab B."
    assert other.inner_text("#conflict-theirs") == "Written in tab A."
    annotation.refresh_from_db()
    assert annotation.overall_critique == "Written in tab A."  # not overwritten

    with other.expect_response(lambda response: response.url.endswith("/save/")) as third:
        other.click("#conflict-keep-mine")
    assert third.value.status == 200
    annotation.refresh_from_db()
    assert annotation.overall_critique == "Written in tab B."

    # Tab A now holds the stale version: it may take the other text instead of its own.
    with page.expect_response(lambda response: response.url.endswith("/save/")) as fourth:
        page.fill("#overall-critique", "Tab A again.")
    assert fourth.value.status == 409
    page.wait_for_selector("#conflict-dialog[open]")
    page.click("#conflict-take-theirs")
    assert page.input_value("#overall-critique") == "Written in tab B."
    annotation.refresh_from_db()
    assert annotation.overall_critique == "Written in tab B."
    other.close()


def test_too_long_critique_is_capped_counted_and_a_refusal_keeps_the_text(
    page, login_browser, annotator, project, make_generation
):
    annotation = _draft(annotator, project, make_generation)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    limit = services.MAX_OVERALL_CRITIQUE_CHARS
    assert page.get_attribute("#overall-critique", "maxlength") == str(limit)
    page.fill("#overall-critique", "abc")
    assert page.inner_text("#critique-count").startswith(f"3 / {limit}")

    # Pasting past the limit is cut at the limit by the browser.
    page.focus("#overall-critique")
    page.evaluate("document.getElementById('overall-critique').select()")
    with page.expect_response(lambda response: response.url.endswith("/save/") and response.status == 200):
        page.keyboard.insert_text("x" * (limit + 5000))
    assert len(page.input_value("#overall-critique")) == limit

    # A page whose cap was removed (or an old page) sends too much: the refusal shows, the text stays.
    page.evaluate("document.getElementById('overall-critique').removeAttribute('maxlength')")
    with page.expect_response(lambda response: response.url.endswith("/save/") and response.status == 422):
        page.fill("#overall-critique", "y" * (limit + 10))
    page.wait_for_function("document.getElementById('save-status').textContent.startsWith('Not saved')")
    assert f"the limit is {limit}" in page.inner_text("#save-status")
    assert _local_copy(page, annotation)["overall_critique"] == "y" * (limit + 10)
    annotation.refresh_from_db()
    assert len(annotation.overall_critique) == limit  # the last accepted save

    # Reloading brings back what this browser kept (the server still refuses it: the status says so).
    page.reload()
    page.wait_for_selector('#workspace[data-ready="1"]')
    assert page.input_value("#overall-critique") == "y" * (limit + 10)
    page.wait_for_function("document.getElementById('save-status').textContent.startsWith('Not saved')")


def test_back_after_submit_shows_the_read_only_page(page, login_browser, annotator, project, make_generation):
    annotation = _draft(annotator, project, make_generation)
    make_generation(project, "A second output.")
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    page.fill("#overall-critique", "Done with it.")
    page.click("#submit-button")
    page.wait_for_url(lambda url: not url.endswith(reverse("annotate", args=[annotation.pk])))
    page.wait_for_selector('#workspace[data-ready="1"]')
    page.go_back()
    page.wait_for_selector('#workspace[data-ready="1"]')
    assert page.url.endswith(reverse("annotate", args=[annotation.pk]))
    assert page.get_attribute("#workspace", "data-status") == "submitted"
    assert page.locator("#overall-critique").count() == 0
    assert "Done with it." in page.inner_text(".overall-readonly")
