/* Text2Grad Studio: the annotation workspace, spans: the highlights in the output (drawn by
 * static/js/output-view.js), the span list beside it, writing spans to the server, and undo. */
(function () {
  "use strict";

  const A = window.T2GAnnotate;
  if (!A) return;
  const { state, workspace, outputEl } = A;

  A.view = window.T2GOutputView(outputEl, A.outputText, A.readJSON("t2g-tokens") || []);
  A.selectionOffsets = () => A.view.selection(state.snapToWords);

  const labelByName = new Map(A.labels.map((label) => [label.name, label]));
  const colorOf = (span) => span.color || (labelByName.get(span.label) || {}).color || "#5b6b8c";

  /** Draw the highlights again, and mark the active item of the span list. */
  A.render = function render() {
    const { spans, pending, proposals, activeSpanId } = state;
    const all = (pending ? spans.concat([pending]) : spans).concat(proposals);
    A.view.draw(all, { pending, activeSpanId, colorOf });
    for (const item of document.querySelectorAll(".span-item")) {
      const active = Number(item.dataset.spanId) === activeSpanId;
      item.classList.toggle("active", active);
      if (active) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    }
  };

  A.loadSpans = function loadSpans() {
    state.spans = A.readJSON("t2g-spans") || [];
  };

  /** POST a span change, swap in the new span panel and redraw. Resolves to the new spans, or null. */
  async function spanWrite(url, values) {
    let result;
    try {
      result = await A.post(url, values);
    } catch (err) {
      A.showError("The network failed; nothing was saved. " + err.message);
      return null;
    }
    if (!result.ok) {
      A.showError(A.explain(result));
      return null;
    }
    htmx.swap("#span-panel", result.text, { swapStyle: "outerHTML" });
    A.loadSpans();
    A.render();
    return state.spans;
  }
  A.spanWrite = spanWrite;

  const spanUrl = (template, id) => template.replace(/\/0\/(delete\/)?$/, `/${id}/$1`);
  A.urls = {
    create: workspace.dataset.spanCreateUrl,
    update: (id) => spanUrl(workspace.dataset.spanUrl, id),
    remove: (id) => spanUrl(workspace.dataset.spanDeleteUrl, id),
  };

  // --- undo ----------------------------------------------------------------------------------------
  const undoStack = [];
  A.undoStack = undoStack;
  const spanValues = (span) => ({
    start: span.start,
    end: span.end,
    text: span.text,
    label: span.label,
    weight: span.weight,
    critique: span.critique,
  });

  A.createSpan = async function createSpan(values) {
    const before = new Set(state.spans.map((span) => span.id));
    const after = await spanWrite(A.urls.create, values);
    if (!after) return null;
    return after.find((span) => !before.has(span.id)) || null;
  };

  A.deleteSpan = async function deleteSpan(id, { recordUndo = true } = {}) {
    const span = state.spans.find((item) => item.id === id);
    if (!span) return false;
    const ok = await spanWrite(A.urls.remove(id), {});
    if (ok && recordUndo) undoStack.push({ kind: "recreate", values: spanValues(span), oldId: id });
    return Boolean(ok);
  };

  A.undo = async function undo() {
    const step = undoStack.pop();
    if (!step) {
      A.toast("Nothing to undo.");
      return;
    }
    if (step.kind === "remove") {
      if (await A.deleteSpan(step.id, { recordUndo: false })) A.toast("Undone: span added.");
    } else if (step.kind === "restore") {
      if (await spanWrite(A.urls.update(step.id), step.values)) A.toast("Undone: span edited.");
    } else if (step.kind === "recreate") {
      const created = await A.createSpan(step.values);
      if (created) {
        // Later undo steps still name the deleted span's id: point them at its re-creation.
        for (const other of undoStack) if (other.id === step.oldId) other.id = created.id;
        A.toast("Undone: span deleted.");
      }
    }
  };

  // --- the span list: Edit and Delete buttons; an item itself highlights its span in the output, from
  // the mouse or, focused, with Enter or Space -------------------------------------------------------
  function highlight(item) {
    state.activeSpanId = Number(item.dataset.spanId);
    A.render();
    const mark = outputEl.querySelector(`mark[data-span-ids~="${state.activeSpanId}"]`);
    if (mark) mark.scrollIntoView({ block: "nearest" });
  }

  workspace.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action]");
    if (button) {
      const id = Number(button.dataset.spanId);
      if (button.dataset.action === "edit-span") A.popover.openEdit(id, button);
      if (button.dataset.action === "delete-span" && (await A.deleteSpan(id))) A.toast("Span deleted. Press U to undo.");
      return;
    }
    const item = event.target.closest(".span-item");
    if (item) highlight(item);
  });

  workspace.addEventListener("keydown", (event) => {
    const item = event.target.closest && event.target.closest(".span-item");
    // Only the item itself: Enter and Space on its buttons press the buttons.
    if (!item || event.target !== item || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      highlight(item);
    }
  });
})();
