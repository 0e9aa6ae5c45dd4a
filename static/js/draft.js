/* Text2Grad Studio: the overall critique's autosave, which never loses a keystroke.
 *
 * Every change is first written to localStorage (key t2g-draft:<annotation id>) and only removed from
 * there once the server has confirmed a save of exactly that text. A save that fails keeps it:
 *   - 401 / a redirect to the login page (the session ended): a small login form opens in place; after
 *     logging in, the page's CSRF token is refreshed and what was typed is saved;
 *   - 409 (another tab saved a different text since this one was loaded): both texts are shown, the
 *     annotator chooses; nothing is overwritten without that choice;
 *   - 422 (refused, e.g. too long): the reason is shown in the status line;
 *   - the network failed: retried every few seconds.
 * Reopening the page restores a kept draft that the server never confirmed.
 * Exposes window.t2gDraft = {saveNow, sessionEnded, isSessionEnded} for annotate.js.
 */
(function () {
  "use strict";

  const workspace = document.getElementById("workspace");
  if (!workspace) return;
  const annotationId = workspace.dataset.annotationId;
  const storageKey = `t2g-draft:${annotationId}`;
  const storage = (() => {
    try {
      return window.localStorage;
    } catch (err) {
      return null; // storage disabled: the autosave still works, only without the local copy
    }
  })();
  const readLocal = () => {
    try {
      return JSON.parse((storage && storage.getItem(storageKey)) || "null");
    } catch (err) {
      return null;
    }
  };
  const dropLocal = () => storage && storage.removeItem(storageKey);

  // Back (or Forward) to a page kept in the back-forward cache: fetch it again, so a submitted
  // annotation is shown read-only rather than as the editable draft it was.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) window.location.reload();
  });

  const form = document.getElementById("overall-form");
  const editable = workspace.dataset.editable === "1";
  if (!editable || !form) {
    // A submitted annotation of one's own: whatever this browser still kept of its draft is obsolete.
    if (workspace.dataset.status === "submitted") dropLocal();
    return;
  }

  const textarea = document.getElementById("overall-critique");
  const versionInput = document.getElementById("draft-version");
  const counter = document.getElementById("critique-length");
  const loginDialog = document.getElementById("login-dialog");
  const conflictDialog = document.getElementById("conflict-dialog");
  const maxLength = Number(textarea.getAttribute("maxlength")) || Infinity;

  let csrfToken = (() => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  })();
  let dirty = false;
  let saving = false;
  let again = false;
  let sessionEnded = false;
  let timer = null;
  let conflict = null;

  const statusEl = () => document.getElementById("save-status");
  function setStatus(message, kind) {
    const el = statusEl();
    if (!el) return;
    el.textContent = message;
    el.classList.toggle("saved", kind === "saved");
    el.classList.toggle("error", kind === "error");
    el.classList.toggle("pending", kind === "pending");
  }

  const currentRating = () => {
    const checked = form.querySelector('input[name="rating"]:checked');
    return checked ? checked.value : "";
  };
  const values = () => ({
    overall_critique: textarea.value,
    rating: currentRating(),
    time_spent: (document.getElementById("time-spent") || {}).value || "",
    version: versionInput.value,
  });
  const sameText = (a, b) => a.overall_critique === b.overall_critique && String(a.rating) === String(b.rating);

  function keepLocal() {
    if (!storage) return;
    const { overall_critique, rating, version } = values();
    try {
      storage.setItem(storageKey, JSON.stringify({ overall_critique, rating, version, at: Date.now() }));
    } catch (err) {
      /* storage full: the server copy is all there is */
    }
  }

  function updateCounter() {
    const length = textarea.value.length;
    counter.textContent = String(length);
    counter.parentElement.classList.toggle("near-limit", length > maxLength * 0.9);
  }

  function setRating(value) {
    for (const radio of form.querySelectorAll('input[name="rating"]')) {
      radio.checked = radio.value === String(value == null ? "" : value);
    }
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(save, delay);
  }

  function changed() {
    dirty = true;
    keepLocal();
    updateCounter();
    if (!sessionEnded && !conflict) setStatus("Unsaved changes · kept in this browser", "pending");
    schedule(800);
  }

  async function post(url, body) {
    return fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "HX-Request": "true" },
    });
  }

  const loginPath = new URL(workspace.dataset.loginUrl, window.location.href).pathname;
  const isLoginRedirect = (response) =>
    response.redirected && new URL(response.url).pathname.startsWith(loginPath);

  /** Save the overall fields now; what was sent is dropped from the local copy once confirmed.
   * Resolves to true when the server confirmed this save. */
  async function save() {
    clearTimeout(timer);
    if (sessionEnded || conflict) return false;
    if (saving) {
      again = true;
      return false;
    }
    saving = true;
    const sent = values();
    setStatus("Saving…", "pending");
    let response;
    try {
      response = await post(workspace.dataset.saveUrl, new URLSearchParams(sent));
    } catch (err) {
      saving = false;
      setStatus("Not saved: the network failed · kept in this browser, retrying", "error");
      schedule(5000);
      return false;
    }
    saving = false;
    if (response.status === 401 || response.status === 403 || isLoginRedirect(response)) {
      await recoverSession();
      return false;
    }
    if (response.status === 409) {
      showConflict(await response.json());
      return false;
    }
    const text = await response.text();
    if (!response.ok) {
      setStatus(`Not saved: ${response.status === 422 ? text : "the server answered " + response.status} · kept in this browser`, "error");
      return false;
    }
    const fragment = new DOMParser().parseFromString(text, "text/html").getElementById("save-status");
    if (fragment && fragment.dataset.version) versionInput.value = fragment.dataset.version;
    if (sameText(values(), sent)) {
      dirty = false;
      dropLocal();
      const el = statusEl();
      if (el && fragment) {
        el.replaceWith(fragment);
      }
    } else {
      keepLocal(); // typed while saving: keep it under the new version and save again
      again = true;
    }
    if (again) {
      again = false;
      schedule(0);
    }
    return true;
  }

  // --- a session that ended ------------------------------------------------------------------------
  function setToken(token) {
    csrfToken = token;
    document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRFToken": token }));
    for (const input of document.querySelectorAll('input[name="csrfmiddlewaretoken"]')) input.value = token;
    document.dispatchEvent(new CustomEvent("t2g:csrf", { detail: token }));
  }

  /** Still logged in (a stale CSRF token after logging in elsewhere)? Refresh the token; true if so. */
  async function refreshToken() {
    try {
      const response = await fetch(workspace.dataset.sessionUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok || isLoginRedirect(response)) return false;
      setToken((await response.json()).csrf_token);
      return true;
    } catch (err) {
      return false;
    }
  }

  async function recoverSession() {
    if (await refreshToken()) {
      schedule(0);
      return;
    }
    endSession();
  }

  function endSession() {
    sessionEnded = true;
    keepLocal();
    setStatus("Session ended — log in again · what you typed is kept in this browser", "error");
    if (!loginDialog.open) loginDialog.showModal();
    document.getElementById("relogin-password").focus();
  }

  async function relogin(event) {
    event.preventDefault();
    const error = document.getElementById("relogin-error");
    const button = document.getElementById("relogin-button");
    error.hidden = true;
    button.disabled = true;
    try {
      // The login form's own CSRF token: the session (and maybe the token) changed when it ended.
      const page = await fetch(workspace.dataset.loginUrl, { credentials: "same-origin" });
      if (!new URL(page.url).pathname.startsWith(loginPath) && (await refreshToken())) {
        resumed(); // logged in again meanwhile (another tab): nothing to type
        return;
      }
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      const token = doc.querySelector('input[name="csrfmiddlewaretoken"]');
      const body = new URLSearchParams({
        username: document.getElementById("relogin-username").value,
        password: document.getElementById("relogin-password").value,
        csrfmiddlewaretoken: token ? token.value : "",
        next: workspace.dataset.sessionUrl,
      });
      const response = await fetch(workspace.dataset.loginUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
      });
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.startsWith("application/json")) {
        error.textContent = "That username and password did not match. Try again.";
        error.hidden = false;
        return;
      }
      setToken((await response.json()).csrf_token);
      resumed();
    } catch (err) {
      error.textContent = "The network failed: " + err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
      document.getElementById("relogin-password").value = "";
    }
  }

  function resumed() {
    sessionEnded = false;
    loginDialog.close();
    setStatus("Logged in again · saving what you typed", "pending");
    save();
  }

  // --- two tabs ------------------------------------------------------------------------------------
  const ratingText = (value) => (value === null || value === undefined || value === "" ? "none" : String(value));

  function showConflict(theirs) {
    conflict = theirs;
    keepLocal();
    document.getElementById("conflict-mine").textContent = textarea.value;
    document.getElementById("conflict-mine-rating").textContent = ratingText(currentRating());
    document.getElementById("conflict-theirs").textContent = theirs.overall_critique;
    document.getElementById("conflict-theirs-rating").textContent = ratingText(theirs.rating);
    setStatus("Not saved: changed in another tab · choose which text to keep", "error");
    if (!conflictDialog.open) conflictDialog.showModal();
  }

  function resolveConflict(keepMine) {
    const theirs = conflict;
    conflict = null;
    conflictDialog.close();
    versionInput.value = String(theirs.version);
    if (keepMine) {
      keepLocal();
      save();
      return;
    }
    textarea.value = theirs.overall_critique;
    setRating(theirs.rating);
    updateCounter();
    dirty = false;
    dropLocal();
    setStatus("Using the text saved from elsewhere", "saved");
  }

  // --- wiring --------------------------------------------------------------------------------------
  form.addEventListener("input", (event) => {
    if (event.target.name === "overall_critique" || event.target.name === "rating") changed();
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "rating") changed();
  });
  form.addEventListener("submit", (event) => {
    if (sessionEnded) {
      event.preventDefault();
      endSession();
      return;
    }
    if (conflict) {
      event.preventDefault();
      conflictDialog.showModal();
      return;
    }
    clearTimeout(timer);
    dirty = false; // the form carries every field; the local copy stays until the next page confirms it
  });
  document.getElementById("relogin-form").addEventListener("submit", relogin);
  document.getElementById("conflict-keep-mine").addEventListener("click", () => resolveConflict(true));
  document.getElementById("conflict-take-theirs").addEventListener("click", () => resolveConflict(false));
  conflictDialog.addEventListener("cancel", (event) => event.preventDefault()); // a choice is needed
  loginDialog.addEventListener("cancel", (event) => event.preventDefault());
  // Leaving within the autosave delay: send what was typed (the local copy stays either way).
  window.addEventListener("pagehide", () => {
    if (dirty && !sessionEnded) navigator.sendBeacon(workspace.dataset.saveUrl, new FormData(form));
  });

  // A draft this browser kept but the server never confirmed: put it back and save it.
  const kept = readLocal();
  if (kept && typeof kept.overall_critique === "string") {
    if (sameText(kept, values())) {
      dropLocal();
    } else {
      textarea.value = kept.overall_critique;
      setRating(kept.rating);
      versionInput.value = String(kept.version);
      dirty = true;
      setStatus("Restored what you typed here before · saving", "pending");
      schedule(0);
    }
  }
  updateCounter();

  window.t2gDraft = {
    saveNow: save,
    sessionEnded: endSession,
    isSessionEnded: () => sessionEnded,
    token: () => csrfToken,
  };
})();
