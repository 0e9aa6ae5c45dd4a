/* Text2Grad Studio: the annotation workspace, suggestions: open proposals (the active critic's, asked for
 * on load, or "Suggest spans") are drawn dashed until accepted or rejected. An accepted suggestion
 * becomes a span on the server (HX-Trigger: spans-changed): the span panel is fetched again. */
(function () {
  "use strict";

  const A = window.T2GAnnotate;
  if (!A) return;

  A.loadProposals = function loadProposals() {
    A.state.proposals = Array.from(document.querySelectorAll("#suggestions .suggestion[data-state='open']")).map((el) => ({
      start: Number(el.dataset.start),
      end: Number(el.dataset.end),
      proposal: true,
      color: Number(el.dataset.polarity) < 0 ? "#c62828" : "#2e7d32",
    }));
  };

  // A flipped suggestion asks for the span's critique: Enter there accepts it (it must not submit the
  // overall form the suggestions sit in).
  document.body.addEventListener("keydown", (event) => {
    const input = event.target.closest && event.target.closest(".suggestion-critique input");
    if (!input || event.key !== "Enter") return;
    event.preventDefault();
    const accept = input.closest(".suggestion").querySelector(".suggestion-actions .primary");
    if (accept) accept.click();
  });

  // A suggestion list arrived or changed: redraw its dashed highlights.
  document.body.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail && event.detail.target;
    if (target && target.id === "suggestions") {
      A.loadProposals();
      A.render();
    }
  });
  document.body.addEventListener("spans-changed", () => {
    htmx.ajax("GET", window.location.pathname, { target: "#span-panel", swap: "outerHTML" }).then(() => {
      A.loadSpans();
      A.loadProposals();
      A.render();
    });
  });
})();
