// Keyboard shortcuts on the blind judging page: 1/a, 2/b, 3/t, 4/x press the matching verdict button.
// After a verdict htmx swaps in the next pair: focus moves to it, so Tab carries on from the new pair
// rather than from the top of the page (the button that had focus is gone).
(function () {
  "use strict";
  var KEYS = { "1": "a", a: "a", "2": "b", b: "b", "3": "tie", t: "tie", "4": "both_bad", x: "both_bad" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" || target.isContentEditable)) return;
    var verdict = KEYS[event.key.toLowerCase()];
    if (!verdict) return;
    var form = document.querySelector("[data-judge-form]");
    if (!form) return;
    var button = form.querySelector('button[data-verdict="' + verdict + '"]');
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var task = document.getElementById("judge-task");
    if (task && event.detail && event.detail.target && event.detail.target.id === "judge-task") {
      task.focus({ preventScroll: true });
    }
  });
})();
