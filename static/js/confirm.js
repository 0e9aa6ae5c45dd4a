/* Text2Grad Studio: confirmation before consequential actions (promote, roll back, cancel).
 *
 * A form with data-confirm="question" is submitted only after the person confirms in a native <dialog>
 * (keyboard: Tab between the buttons, Enter chooses, Esc keeps things as they are; the safe choice has
 * focus). data-confirm-button names the confirming button. Works for plain forms and htmx forms alike:
 * the first submit is stopped in the capture phase, before htmx sees it, and replayed once confirmed.
 */
(function () {
  "use strict";

  let dialog = null;
  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "dialog";
    dialog.id = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-message");
    const form = document.createElement("form");
    form.method = "dialog";
    const message = document.createElement("p");
    message.id = "confirm-message";
    const actions = document.createElement("div");
    actions.className = "form-actions";
    const yes = document.createElement("button");
    yes.value = "yes";
    yes.id = "confirm-yes";
    yes.className = "danger";
    const no = document.createElement("button");
    no.value = "no";
    no.id = "confirm-no";
    no.textContent = "Keep as it is";
    actions.append(yes, no);
    form.append(message, actions);
    dialog.append(form);
    document.body.append(dialog);
  }

  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
      if (form.dataset.confirmed === "1") {
        delete form.dataset.confirmed;
        return; // confirmed: let it through (to htmx or the browser)
      }
      event.preventDefault();
      event.stopPropagation();
      if (!dialog) build();
      const submitter = event.submitter;
      document.getElementById("confirm-message").textContent = form.dataset.confirm;
      document.getElementById("confirm-yes").textContent = form.dataset.confirmButton || "Yes, do it";
      dialog.returnValue = "";
      dialog.onclose = () => {
        if (dialog.returnValue !== "yes" || !form.isConnected) return;
        form.dataset.confirmed = "1";
        if (submitter && submitter.form === form) form.requestSubmit(submitter);
        else form.requestSubmit();
      };
      dialog.showModal();
      document.getElementById("confirm-no").focus();
    },
    true,
  );
})();
