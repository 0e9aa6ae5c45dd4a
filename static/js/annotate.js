/* Text2Grad Studio: the annotation workspace.
 *
 * Vanilla JS, no framework. The output is untrusted text: it is read from a JSON script element and put
 * into the page only as DOM text nodes (textContent), never as HTML.
 *
 * Offsets: the server stores spans in Unicode code points (Python's str indexing); the DOM counts UTF-16
 * code units. Code points are counted here by iterating the string with for..of, and every span sent to
 * the server carries the selected text, which the server checks against its own copy of the output.
 */
(function () {
  "use strict";

  const workspace = document.getElementById("workspace");
  if (!workspace) return;

  const readJSON = (id) => {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  };
  const outputText = readJSON("t2g-output") || "";
  const labels = readJSON("t2g-labels") || [];
  const editable = workspace.dataset.editable === "1";
  const outputEl = document.getElementById("output-text");
  const popover = document.getElementById("span-popover");
  const toastEl = document.getElementById("ws-toast");
  const helpDialog = document.getElementById("help-dialog");
  const skipDialog = document.getElementById("skip-dialog");
  const overallForm = document.getElementById("overall-form");
  let csrfToken = (() => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  })();

  // Logging in again in place (draft.js) rotates the token.
  document.addEventListener("t2g:csrf", (event) => (csrfToken = event.detail));

  // --- spans and highlights (drawn by static/js/output-view.js) -------------------------------------
  const view = window.T2GOutputView(outputEl, outputText, readJSON("t2g-tokens") || []);
  let snapToWords = true;
  const selectionOffsets = () => view.selection(snapToWords);

  function render() {
    const all = (pending ? spans.concat([pending]) : spans).concat(proposals);
    view.draw(all, { pending, activeSpanId, colorOf });
    for (const item of document.querySelectorAll(".span-item")) {
      item.classList.toggle("active", Number(item.dataset.spanId) === activeSpanId);
    }
  }

  // --- spans ------------------------------------------------------------------------
  let spans = [];
  let pending = null; // the range being labelled, drawn as a dashed highlight
  let activeSpanId = null;
  const labelByName = new Map(labels.map((label) => [label.name, label]));
  const colorOf = (span) => span.color || (labelByName.get(span.label) || {}).color || "#5b6b8c";

  function loadSpans() {
    spans = readJSON("t2g-spans") || [];
  }

  // Suggested spans ("Suggest spans"): open proposals are drawn dashed until accepted or rejected.
  let proposals = [];
  function loadProposals() {
    proposals = Array.from(document.querySelectorAll("#suggestions .suggestion[data-state='open']")).map((el) => ({
      start: Number(el.dataset.start),
      end: Number(el.dataset.end),
      proposal: true,
      color: Number(el.dataset.polarity) < 0 ? "#c62828" : "#2e7d32",
    }));
  }

  // --- talking to the server -----------------------------------------------------------------------
  async function post(url, values) {
    const body = new URLSearchParams();
    for (const [name, value] of Object.entries(values)) body.append(name, value == null ? "" : String(value));
    const response = await fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "HX-Request": "true" },
    });
    return { ok: response.ok && !response.redirected, status: response.status, text: await response.text(), response };
  }

  function explain(result) {
    if (result.response.redirected || result.status === 401) {
      if (window.t2gDraft) window.t2gDraft.sessionEnded();
      return "Your session has ended: log in again (nothing was changed).";
    }
    if (result.status === 422) return result.text;
    if (result.status === 403) return "You cannot change this annotation.";
    if (result.status === 404) return "This annotation or span no longer exists.";
    return `The server answered ${result.status}; nothing was changed.`;
  }

  /** POST a span change, swap in the new span panel and redraw. Resolves to the new spans, or null. */
  async function spanWrite(url, values) {
    let result;
    try {
      result = await post(url, values);
    } catch (err) {
      showError("The network failed; nothing was saved. " + err.message);
      return null;
    }
    if (!result.ok) {
      showError(explain(result));
      return null;
    }
    htmx.swap("#span-panel", result.text, { swapStyle: "outerHTML" });
    loadSpans();
    render();
    return spans;
  }

  const spanUrl = (template, id) => template.replace(/\/0\/(delete\/)?$/, `/${id}/$1`);
  const urls = {
    create: workspace.dataset.spanCreateUrl,
    update: (id) => spanUrl(workspace.dataset.spanUrl, id),
    remove: (id) => spanUrl(workspace.dataset.spanDeleteUrl, id),
  };

  // --- undo ----------------------------------------------------------------------------------------
  const undoStack = [];
  const spanValues = (span) => ({
    start: span.start,
    end: span.end,
    text: span.text,
    label: span.label,
    weight: span.weight,
    critique: span.critique,
  });

  async function createSpan(values) {
    const before = new Set(spans.map((span) => span.id));
    const after = await spanWrite(urls.create, values);
    if (!after) return null;
    return after.find((span) => !before.has(span.id)) || null;
  }

  async function deleteSpan(id, { recordUndo = true } = {}) {
    const span = spans.find((item) => item.id === id);
    if (!span) return false;
    const ok = await spanWrite(urls.remove(id), {});
    if (ok && recordUndo) undoStack.push({ kind: "recreate", values: spanValues(span), oldId: id });
    return Boolean(ok);
  }

  async function undo() {
    const step = undoStack.pop();
    if (!step) {
      toast("Nothing to undo.");
      return;
    }
    if (step.kind === "remove") {
      if (await deleteSpan(step.id, { recordUndo: false })) toast("Undone: span added.");
    } else if (step.kind === "restore") {
      if (await spanWrite(urls.update(step.id), step.values)) toast("Undone: span edited.");
    } else if (step.kind === "recreate") {
      const created = await createSpan(step.values);
      if (created) {
        // Later undo steps still name the deleted span's id: point them at its re-creation.
        for (const other of undoStack) if (other.id === step.oldId) other.id = created.id;
        toast("Undone: span deleted.");
      }
    }
  }

  // --- the span popover ----------------------------------------------------------------------------
  let popoverState = null; // {mode: "create", start, end, text} | {mode: "edit", id}
  const popoverOpen = () => popover && !popover.hidden;

  function placePopover(rect) {
    popover.hidden = false;
    const width = popover.offsetWidth;
    const left = Math.max(8, Math.min(window.scrollX + rect.left, window.scrollX + window.innerWidth - width - 8));
    popover.style.left = `${left}px`;
    popover.style.top = `${window.scrollY + rect.bottom + 8}px`;
  }

  function excerpt(text) {
    const chars = Array.from(text);
    return chars.length > 80 ? chars.slice(0, 79).join("") + "…" : text;
  }

  function chooseLabel(label) {
    const radio = Array.from(popover.elements.label || []).find((input) => input.value === label.name);
    if (radio) radio.checked = true;
    document.getElementById("popover-critique").focus();
  }

  function openCreate(selection, label) {
    if (!editable || !popover) return;
    popoverState = { mode: "create", ...selection };
    popover.reset();
    document.getElementById("popover-title").textContent = "New span";
    document.getElementById("popover-quote").textContent = excerpt(selection.text);
    document.getElementById("popover-delete").hidden = true;
    hidePopoverError();
    // Drawn as a pending highlight: the native selection is gone once focus moves into the popover.
    const rect = rangeRect();
    pending = { id: null, start: selection.start, end: selection.end, label: label ? label.name : "", color: "#3b5bdb" };
    window.getSelection().removeAllRanges();
    render();
    placePopover(rect || outputEl.getBoundingClientRect());
    if (label) chooseLabel(label);
  }

  function openEdit(id, anchor) {
    const span = spans.find((item) => item.id === id);
    if (!span || !editable || !popover) return;
    popoverState = { mode: "edit", id };
    popover.reset();
    document.getElementById("popover-title").textContent = "Edit span";
    document.getElementById("popover-quote").textContent = excerpt(span.text);
    document.getElementById("popover-delete").hidden = false;
    hidePopoverError();
    const radio = Array.from(popover.elements.label || []).find((input) => input.value === span.label);
    if (radio) radio.checked = true;
    popover.elements.weight.value = span.weight;
    popover.elements.critique.value = span.critique;
    activeSpanId = id;
    pending = null;
    render();
    const mark = outputEl.querySelector(`mark[data-span-ids~="${id}"]`);
    placePopover((anchor || mark || outputEl).getBoundingClientRect());
    popover.elements.critique.focus();
  }

  function closePopover() {
    if (!popover) return;
    popover.hidden = true;
    popoverState = null;
    pending = null;
    render();
  }

  function rangeRect() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0) return null;
    const rect = selection.getRangeAt(0).getBoundingClientRect();
    return rect.width || rect.height ? rect : null;
  }

  function showPopoverError(message) {
    const el = document.getElementById("popover-error");
    el.textContent = message;
    el.hidden = false;
  }
  function hidePopoverError() {
    const el = document.getElementById("popover-error");
    if (el) el.hidden = true;
  }

  async function savePopover() {
    if (!popoverState) return;
    const data = new FormData(popover);
    const label = data.get("label");
    if (!label) {
      showPopoverError("Choose a label (keys 1–9).");
      return;
    }
    const values = { label, weight: data.get("weight") || "1", critique: data.get("critique") || "" };
    const saveButton = document.getElementById("popover-save");
    saveButton.disabled = true;
    try {
      if (popoverState.mode === "create") {
        const { start, end, text } = popoverState;
        const created = await createSpan({ ...values, start, end, text });
        if (!created) return; // the popover stays open with what was typed; the error is shown
        undoStack.push({ kind: "remove", id: created.id });
        closePopover();
        toast(`Added “${created.label}” span.`);
      } else {
        const span = spans.find((item) => item.id === popoverState.id);
        if (!span) return closePopover();
        const before = { label: span.label, weight: span.weight, critique: span.critique };
        if (!(await spanWrite(urls.update(span.id), values))) return;
        undoStack.push({ kind: "restore", id: span.id, values: before });
        closePopover();
        toast("Span updated.");
      }
    } finally {
      saveButton.disabled = false;
    }
  }

  function showError(message) {
    if (popoverOpen()) showPopoverError(message);
    toast(message, true);
  }

  let toastTimer = null;
  function toast(message, isError) {
    if (!toastEl) return;
    toastEl.textContent = message;
    toastEl.classList.toggle("error", Boolean(isError));
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toastEl.hidden = true), isError ? 8000 : 2500);
  }

  // --- the draft: time spent, save now, submit (the autosave itself is static/js/draft.js) -----------
  const timeInput = document.getElementById("time-spent");
  const startedWith = timeInput ? Number(timeInput.value) || 0 : 0;
  let activeSeconds = 0;
  let lastActivity = Date.now();
  for (const type of ["keydown", "mousedown", "mousemove", "scroll", "input"]) {
    document.addEventListener(type, () => (lastActivity = Date.now()), { passive: true });
  }
  if (timeInput) {
    // Count a second only while the page is visible and someone touched it in the last two minutes.
    setInterval(() => {
      if (!document.hidden && Date.now() - lastActivity < 120000) {
        activeSeconds += 1;
        timeInput.value = String(startedWith + activeSeconds);
      }
    }, 1000);
  }

  function saveDraft() {
    if (!overallForm || !editable || !window.t2gDraft) return;
    window.t2gDraft.saveNow().then((saved) => saved && toast("Draft saved."));
  }

  function submitAnnotation() {
    const button = document.getElementById("submit-button");
    if (!overallForm || !button) return;
    overallForm.requestSubmit(button);
  }

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
    showError(xhr.status === 422 ? xhr.responseText : `Not saved: the server answered ${xhr.status}.`);
  });
  document.body.addEventListener("htmx:sendError", () => showError("Not saved: the network failed."));

  // --- mouse ---------------------------------------------------------------------------------------
  if (editable) {
    // On the document: a drag that starts in the output may end over the span list.
    document.addEventListener("mouseup", (event) => {
      if (popover && popover.contains(event.target)) return;
      snapToWords = !event.altKey;
      // After the browser has finished updating the selection.
      setTimeout(() => {
        const selection = selectionOffsets();
        if (selection) openCreate(selection, null);
      }, 0);
    });
  }
  outputEl.addEventListener("click", (event) => {
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed) return;
    const mark = event.target.closest("mark.hl");
    if (!mark || !mark.dataset.spanIds) return;
    const id = Number(mark.dataset.spanIds.split(" ")[0]);
    if (editable) openEdit(id, mark);
    else {
      activeSpanId = id;
      render();
    }
  });

  if (popover) {
    popover.addEventListener("submit", (event) => {
      event.preventDefault();
      savePopover();
    });
    popover.addEventListener("change", (event) => {
      if (event.target.name === "label") document.getElementById("popover-critique").focus();
    });
    document.getElementById("popover-cancel").addEventListener("click", closePopover);
    document.getElementById("popover-delete").addEventListener("click", async () => {
      if (popoverState && popoverState.mode === "edit" && (await deleteSpan(popoverState.id))) {
        closePopover();
        toast("Span deleted. Press U to undo.");
      }
    });
  }

  workspace.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action]");
    if (button) {
      const id = Number(button.dataset.spanId);
      if (button.dataset.action === "edit-span") openEdit(id, button);
      if (button.dataset.action === "delete-span" && (await deleteSpan(id))) toast("Span deleted. Press U to undo.");
      return;
    }
    const item = event.target.closest(".span-item");
    if (item) {
      activeSpanId = Number(item.dataset.spanId);
      render();
      const mark = outputEl.querySelector(`mark[data-span-ids~="${activeSpanId}"]`);
      if (mark) mark.scrollIntoView({ block: "nearest" });
    }
  });

  const skipButton = document.getElementById("skip-button");
  if (skipButton) skipButton.addEventListener("click", openSkip);
  const skipCancel = document.getElementById("skip-cancel");
  if (skipCancel) skipCancel.addEventListener("click", () => skipDialog.close());
  document.getElementById("help-button").addEventListener("click", toggleHelp);

  function openSkip() {
    if (!skipDialog) return;
    closePopover();
    skipDialog.showModal();
    document.getElementById("skip-reason").focus();
  }

  function toggleHelp() {
    if (helpDialog.open) helpDialog.close();
    else helpDialog.showModal();
  }

  // --- keyboard ------------------------------------------------------------------------------------
  const TEXT_FIELDS =
    "textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox]):not([type=button]):not([type=submit])";

  document.addEventListener("keydown", (event) => {
    const inField = Boolean(event.target.closest && event.target.closest(TEXT_FIELDS));
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key;

    if (skipDialog && skipDialog.open) {
      if (ctrl && key === "Enter") {
        event.preventDefault();
        document.getElementById("skip-form").requestSubmit();
      }
      return; // Esc closes the dialog natively
    }
    if (helpDialog.open) {
      if (key === "?") {
        event.preventDefault();
        helpDialog.close();
      }
      return;
    }
    if (key === "Escape") {
      if (popoverOpen()) closePopover();
      else window.getSelection().removeAllRanges();
      return;
    }
    if (ctrl && key === "Enter") {
      event.preventDefault();
      if (popoverOpen()) savePopover();
      else if (editable) submitAnnotation();
      return;
    }
    if (ctrl && (key === "s" || key === "S")) {
      event.preventDefault();
      if (popoverOpen()) savePopover();
      else saveDraft();
      return;
    }
    if (ctrl && (key === "z" || key === "Z") && !inField && editable) {
      event.preventDefault();
      undo();
      return;
    }
    if (inField || ctrl || event.altKey) return;

    if (key === "?") {
      event.preventDefault();
      toggleHelp();
    } else if (/^[1-9]$/.test(key) && editable) {
      const label = labels[Number(key) - 1];
      if (!label) return;
      event.preventDefault();
      if (popoverOpen()) {
        chooseLabel(label);
        return;
      }
      snapToWords = true;
      const selection = selectionOffsets();
      if (selection) openCreate(selection, label);
      else toast("Select some text in the output first.");
    } else if ((key === "u" || key === "U") && editable) {
      event.preventDefault();
      undo();
    } else if ((key === "s" || key === "S") && editable) {
      event.preventDefault();
      openSkip();
    } else if (key === "n" || key === "N") {
      event.preventDefault();
      const nextForm = document.getElementById("next-form");
      if (nextForm) nextForm.requestSubmit();
      else if (editable) toast("Submit (Ctrl + Enter) or skip (S) this output first.");
    }
  });

  // --- start ---------------------------------------------------------------------------------------
  // A suggestion list arrived or changed: redraw its dashed highlights. An accepted suggestion became a
  // span on the server (HX-Trigger: spans-changed): fetch the span panel and redraw.
  document.body.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail && event.detail.target;
    if (target && target.id === "suggestions") {
      loadProposals();
      render();
    }
  });
  document.body.addEventListener("spans-changed", () => {
    htmx.ajax("GET", window.location.pathname, { target: "#span-panel", swap: "outerHTML" }).then(() => {
      loadSpans();
      loadProposals();
      render();
    });
  });

  loadSpans();
  render();
  workspace.dataset.ready = "1";
})();
