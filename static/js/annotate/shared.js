/* Text2Grad Studio: the annotation workspace, what all its parts share (static/js/annotate/*.js, loaded
 * in order by templates/annotations/annotate.html; static/js/annotate.js starts the page).
 *
 *   shared.js       page data, the span state, talking to the server, the toast
 *   spans.js        highlights, the span list, span writes and undo
 *   suggestions.js  the critic's and Suggest spans' proposals, drawn dashed
 *   popover.js      selecting text and the popover that labels or edits a span
 *   submit.js       time spent, save now, skip, submit, and the server's errors
 *   keys.js         keyboard shortcuts and the help dialog
 *
 * Vanilla JS, no framework. The output is untrusted text: it is read from a JSON script element and put
 * into the page only as DOM text nodes (textContent), never as HTML.
 *
 * Offsets: the server stores spans in Unicode code points (Python's str indexing); the DOM counts UTF-16
 * code units. static/js/output-view.js converts; every span sent to the server carries the selected text,
 * which the server checks against its own copy of the output.
 */
(function () {
  "use strict";

  const workspace = document.getElementById("workspace");
  if (!workspace) return;

  const readJSON = (id) => {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  };

  const A = (window.T2GAnnotate = {
    workspace,
    readJSON,
    outputText: readJSON("t2g-output") || "",
    labels: readJSON("t2g-labels") || [],
    editable: workspace.dataset.editable === "1",
    outputEl: document.getElementById("output-text"),
    state: {
      spans: [], // the saved spans, as the server last sent them
      pending: null, // the range being labelled, drawn as a dashed highlight
      activeSpanId: null,
      proposals: [], // open suggestions, drawn dashed
      snapToWords: true, // a drag snaps to whole words unless Alt is held
    },
  });

  // --- talking to the server -----------------------------------------------------------------------
  let csrfToken = (() => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  })();
  // Logging in again in place (draft.js) rotates the token.
  document.addEventListener("t2g:csrf", (event) => (csrfToken = event.detail));

  A.post = async function post(url, values) {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(values)) body.append(name, value == null ? "" : String(value));
    const response = await fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "HX-Request": "true" },
    });
    return { ok: response.ok && !response.redirected, status: response.status, text: await response.text(), response };
  };

  A.explain = function explain(result) {
    if (result.response.redirected || result.status === 401) {
      if (window.t2gDraft) window.t2gDraft.sessionEnded();
      return "Your session has ended: log in again (nothing was changed).";
    }
    if (result.status === 422) return result.text;
    if (result.status === 403) return "You cannot change this annotation.";
    if (result.status === 404) return "This annotation or span no longer exists.";
    return `The server answered ${result.status}; nothing was changed.`;
  };

  // --- the toast, and errors (shown in the popover too while it is open) ---------------------------
  const toastEl = document.getElementById("ws-toast");
  let toastTimer = null;
  A.toast = function toast(message, isError) {
    if (!toastEl) return;
    toastEl.textContent = message;
    toastEl.classList.toggle("error", Boolean(isError));
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toastEl.hidden = true), isError ? 8000 : 2500);
  };

  A.showError = function showError(message) {
    if (A.popover && A.popover.isOpen()) A.popover.showError(message);
    A.toast(message, true);
  };
})();
