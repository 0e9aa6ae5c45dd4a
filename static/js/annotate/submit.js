/* Text2Grad Studio: the annotation workspace, the draft as a whole: time spent, save now, skip and
 * submit, and what the server says when an htmx request fails (the autosave itself is
 * static/js/draft.js). */
(function () {
  "use strict";

  const A = window.T2GAnnotate;
  if (!A) return;
  const { editable } = A;
  const overallForm = document.getElementById("overall-form");
  const skipDialog = document.getElementById("skip-dialog");

  // --- time spent: a second counts only while the page is visible and touched in the last two minutes
  const timeInput = document.getElementById("time-spent");
  const startedWith = timeInput ? Number(timeInput.value) || 0 : 0;
  let activeSeconds = 0;
  let lastActivity = Date.now();
  for (const type of ["keydown", "mousedown", "mousemove", "scroll", "input"]) {
    document.addEventListener(type, () => (lastActivity = Date.now()), { passive: true });
  }
  if (timeInput) {
    setInterval(() => {
      if (!document.hidden && Date.now() - lastActivity < 120000) {
        activeSeconds += 1;
        timeInput.value = String(startedWith + activeSeconds);
      }
    }, 1000);
  }

  A.saveDraft = function saveDraft() {
    if (!overallForm || !editable || !window.t2gDraft) return;
    window.t2gDraft.saveNow().then((saved) => saved && A.toast("Draft saved."));
  };

  A.submitAnnotation = function submitAnnotation() {
    const button = document.getElementById("submit-button");
    if (!overallForm || !button) return;
    overallForm.requestSubmit(button);
  };

  // Once the page is leaving with the submit, no autosave request races it.
  let leaving = false;
  if (overallForm && editable) {
    overallForm.addEventListener("submit", (event) => {
      if (!event.defaultPrevented) leaving = true;
    });
    document.body.addEventListener("htmx:beforeRequest", (event) => {
      if (leaving) event.preventDefault();
    });
  }
  document.body.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status === 401 && window.t2gDraft) window.t2gDraft.sessionEnded();
    A.showError(xhr.status === 422 ? xhr.responseText : `Not saved: the server answered ${xhr.status}.`);
  });
  document.body.addEventListener("htmx:sendError", () => A.showError("Not saved: the network failed."));

  // --- skip ----------------------------------------------------------------------------------------
  A.skipDialog = skipDialog;
  A.openSkip = function openSkip() {
    if (!skipDialog) return;
    A.popover.close();
    skipDialog.showModal();
    document.getElementById("skip-reason").focus();
  };
  const skipButton = document.getElementById("skip-button");
  if (skipButton) skipButton.addEventListener("click", A.openSkip);
  const skipCancel = document.getElementById("skip-cancel");
  if (skipCancel) skipCancel.addEventListener("click", () => skipDialog.close());
})();
