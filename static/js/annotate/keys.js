/* Text2Grad Studio: the annotation workspace, keyboard shortcuts (the help dialog, "?", lists them). */
(function () {
  "use strict";

  const A = window.T2GAnnotate;
  if (!A) return;
  const { editable, labels, state } = A;
  const helpDialog = document.getElementById("help-dialog");

  function toggleHelp() {
    if (helpDialog.open) helpDialog.close();
    else helpDialog.showModal();
  }
  document.getElementById("help-button").addEventListener("click", toggleHelp);

  const TEXT_FIELDS =
    "textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox]):not([type=button]):not([type=submit])";

  document.addEventListener("keydown", (event) => {
    const inField = Boolean(event.target.closest && event.target.closest(TEXT_FIELDS));
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key;
    const popover = A.popover;

    if (A.skipDialog && A.skipDialog.open) {
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
      if (popover.isOpen()) popover.close();
      else window.getSelection().removeAllRanges();
      return;
    }
    if (ctrl && key === "Enter") {
      event.preventDefault();
      if (popover.isOpen()) popover.save();
      else if (editable) A.submitAnnotation();
      return;
    }
    if (ctrl && (key === "s" || key === "S")) {
      event.preventDefault();
      if (popover.isOpen()) popover.save();
      else A.saveDraft();
      return;
    }
    if (ctrl && (key === "z" || key === "Z") && !inField && editable) {
      event.preventDefault();
      A.undo();
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
      if (popover.isOpen()) {
        popover.chooseLabel(label);
        return;
      }
      state.snapToWords = true;
      const selection = A.selectionOffsets();
      if (selection) popover.openCreate(selection, label);
      else A.toast("Select some text in the output first.");
    } else if ((key === "u" || key === "U") && editable) {
      event.preventDefault();
      A.undo();
    } else if ((key === "s" || key === "S") && editable) {
      event.preventDefault();
      A.openSkip();
    } else if (key === "n" || key === "N") {
      event.preventDefault();
      const nextForm = document.getElementById("next-form");
      if (nextForm) nextForm.requestSubmit();
      else if (editable) A.toast("Submit (Ctrl + Enter) or skip (S) this output first.");
    }
  });
})();
