// Keyboard shortcuts on the blind judging page: 1/a, 2/b, 3/t, 4/x press the matching verdict button.
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
})();
