/* Text2Grad Studio: the annotation workspace starts here. Its parts are in static/js/annotate/ (shared.js
 * lists them); the page loads them before this file. */
(function () {
  "use strict";

  const A = window.T2GAnnotate;
  if (!A) return;
  A.loadSpans();
  A.render();
  A.workspace.dataset.ready = "1";
})();
