// Every page: the few styles that depend on data. A strict Content-Security-Policy forbids style=""
// attributes in the HTML, so templates put the value in a data-* attribute and this script sets it
// through the CSSOM (which the policy allows). It runs on the page and on every htmx swap.
// And every text box that scrolls (a long prompt, an output beside another) joins the Tab order, so the
// keyboard can scroll it too.
(function () {
  "use strict";

  function applyDataStyles(root) {
    root.querySelectorAll("[data-width]").forEach(function (el) {
      var percent = Number(el.dataset.width);
      if (Number.isFinite(percent)) el.style.width = Math.max(0, Math.min(100, percent)) + "%";
    });
    root.querySelectorAll("[data-color]").forEach(function (el) {
      el.style.setProperty("--c", el.dataset.color);
    });
    root.querySelectorAll("[data-bg]").forEach(function (el) {
      el.style.background = el.dataset.bg;
    });
  }

  function focusScrollables(root) {
    root.querySelectorAll("pre").forEach(function (el) {
      var scrolls = el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
      if (scrolls && !el.hasAttribute("tabindex")) el.tabIndex = 0;
    });
  }

  function start(root) {
    applyDataStyles(root);
    focusScrollables(root);
  }

  if (window.htmx) {
    window.htmx.onLoad(function (element) {
      start(element.querySelectorAll ? element : document);
    });
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      start(document);
    });
  }
})();
