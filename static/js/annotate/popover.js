/* Text2Grad Studio: the annotation workspace, the span popover: selecting text in the output (a mouse
 * drag, or the keyboard with Shift + arrows and a label key) opens it to label a new span; a highlight
 * or a span's Edit button opens it to edit one. */
(function () {
  "use strict";

  const A = window.T2GAnnotate;
  if (!A) return;
  const { state, outputEl, editable } = A;
  const popover = document.getElementById("span-popover");

  let popoverState = null; // {mode: "create", start, end, text} | {mode: "edit", id}
  const isOpen = () => Boolean(popover && !popover.hidden);

  function place(rect) {
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

  function rangeRect() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0) return null;
    const rect = selection.getRangeAt(0).getBoundingClientRect();
    return rect.width || rect.height ? rect : null;
  }

  function showError(message) {
    const el = document.getElementById("popover-error");
    el.textContent = message;
    el.hidden = false;
  }
  function hideError() {
    const el = document.getElementById("popover-error");
    if (el) el.hidden = true;
  }

  function openCreate(selection, label) {
    if (!editable || !popover) return;
    popoverState = { mode: "create", ...selection };
    popover.reset();
    document.getElementById("popover-title").textContent = "New span";
    document.getElementById("popover-quote").textContent = excerpt(selection.text);
    document.getElementById("popover-delete").hidden = true;
    hideError();
    // Drawn as a pending highlight: the native selection is gone once focus moves into the popover.
    const rect = rangeRect();
    state.pending = { id: null, start: selection.start, end: selection.end, label: label ? label.name : "", color: "#3b5bdb" };
    window.getSelection().removeAllRanges();
    A.render();
    place(rect || outputEl.getBoundingClientRect());
    if (label) chooseLabel(label);
  }

  function openEdit(id, anchor) {
    const span = state.spans.find((item) => item.id === id);
    if (!span || !editable || !popover) return;
    popoverState = { mode: "edit", id };
    popover.reset();
    document.getElementById("popover-title").textContent = "Edit span";
    document.getElementById("popover-quote").textContent = excerpt(span.text);
    document.getElementById("popover-delete").hidden = false;
    hideError();
    const radio = Array.from(popover.elements.label || []).find((input) => input.value === span.label);
    if (radio) radio.checked = true;
    popover.elements.weight.value = span.weight;
    popover.elements.critique.value = span.critique;
    state.activeSpanId = id;
    state.pending = null;
    A.render();
    const mark = outputEl.querySelector(`mark[data-span-ids~="${id}"]`);
    place((anchor || mark || outputEl).getBoundingClientRect());
    popover.elements.critique.focus();
  }

  function close() {
    if (!popover) return;
    popover.hidden = true;
    popoverState = null;
    state.pending = null;
    A.render();
  }

  async function save() {
    if (!popoverState) return;
    const data = new FormData(popover);
    const label = data.get("label");
    if (!label) {
      showError("Choose a label (keys 1–9).");
      return;
    }
    const values = { label, weight: data.get("weight") || "1", critique: data.get("critique") || "" };
    const saveButton = document.getElementById("popover-save");
    saveButton.disabled = true;
    try {
      if (popoverState.mode === "create") {
        const { start, end, text } = popoverState;
        const created = await A.createSpan({ ...values, start, end, text });
        if (!created) return; // the popover stays open with what was typed; the error is shown
        A.undoStack.push({ kind: "remove", id: created.id });
        close();
        A.toast(`Added “${created.label}” span.`);
      } else {
        const span = state.spans.find((item) => item.id === popoverState.id);
        if (!span) return close();
        const before = { label: span.label, weight: span.weight, critique: span.critique };
        if (!(await A.spanWrite(A.urls.update(span.id), values))) return;
        A.undoStack.push({ kind: "restore", id: span.id, values: before });
        close();
        A.toast("Span updated.");
      }
    } finally {
      saveButton.disabled = false;
    }
  }

  A.popover = { isOpen, openCreate, openEdit, close, save, chooseLabel, showError };

  // --- the mouse: a drag selects, a click on a highlight edits (or, read-only, marks it active) -----
  if (editable) {
    // On the document: a drag that starts in the output may end over the span list.
    document.addEventListener("mouseup", (event) => {
      if (popover && popover.contains(event.target)) return;
      state.snapToWords = !event.altKey;
      // After the browser has finished updating the selection.
      setTimeout(() => {
        const selection = A.selectionOffsets();
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
      state.activeSpanId = id;
      A.render();
    }
  });

  if (popover) {
    popover.addEventListener("submit", (event) => {
      event.preventDefault();
      save();
    });
    popover.addEventListener("change", (event) => {
      if (event.target.name === "label") document.getElementById("popover-critique").focus();
    });
    document.getElementById("popover-cancel").addEventListener("click", close);
    document.getElementById("popover-delete").addEventListener("click", async () => {
      if (popoverState && popoverState.mode === "edit" && (await A.deleteSpan(popoverState.id))) {
        close();
        A.toast("Span deleted. Press U to undo.");
      }
    });
  }
})();
