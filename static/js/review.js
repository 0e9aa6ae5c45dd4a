/* Text2Grad Studio: the review page (every annotator's spans overlaid, verdicts, the gold editor).
 *
 * Vanilla JS. The output, spans and critiques are untrusted: they come from a JSON script element and
 * enter the page only as text nodes (textContent), never as HTML. Offsets are code points (the server's
 * unit); the DOM counts UTF-16 code units, converted here as in annotate.js.
 */
(function () {
  "use strict";

  const root = document.getElementById("review");
  const dataEl = document.getElementById("t2g-review");
  if (!root || !dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const text = data.text || "";
  const labels = data.labels || [];
  const annotators = data.annotators || [];
  const textEl = document.getElementById("rv-text");
  const goldList = document.getElementById("gold-spans");
  const goldForm = document.getElementById("gold-form");
  const goldInput = goldForm ? goldForm.querySelector("input[name='spans']") : null;
  const helpDialog = document.getElementById("rv-help");
  const cards = Array.from(document.querySelectorAll(".rv-annotation"));

  // --- offsets: code points <-> UTF-16 ---------------------------------------------------------------
  const cpToUnit = [0];
  for (const ch of text) cpToUnit.push(cpToUnit[cpToUnit.length - 1] + ch.length);
  const cpLength = cpToUnit.length - 1;
  function unitToCp(unit, roundUp) {
    let lo = 0;
    let hi = cpLength;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cpToUnit[mid] <= unit) lo = mid;
      else hi = mid - 1;
    }
    return roundUp && cpToUnit[lo] < unit ? Math.min(lo + 1, cpLength) : lo;
  }
  const sliceCp = (start, end) => text.slice(cpToUnit[start], cpToUnit[end]);

  // --- state -----------------------------------------------------------------------------------------
  const visible = annotators.map(() => true);
  let goldVisible = true;
  let gold = (data.gold || []).map((span) => ({ ...span }));
  let focused = -1;
  const labelByName = new Map(labels.map((label) => [label.name, label]));
  const polarityOf = (name) => (labelByName.get(name) || { polarity: 0 }).polarity;

  // --- the overlay -------------------------------------------------------------------------------------
  function render() {
    const layers = [];
    annotators.forEach((person, index) => {
      if (!visible[index]) return;
      person.spans.forEach((span) => layers.push({ ...span, who: person.alias }));
    });
    if (goldVisible) gold.forEach((span) => layers.push({ ...span, who: "gold", gold: true }));
    const cuts = new Set([0, cpLength]);
    layers.forEach((span) => {
      cuts.add(span.start);
      cuts.add(span.end);
    });
    const sorted = Array.from(cuts).sort((a, b) => a - b);
    const fragment = document.createDocumentFragment();
    for (let i = 0; i + 1 < sorted.length; i += 1) {
      const start = sorted[i];
      const end = sorted[i + 1];
      const piece = sliceCp(start, end);
      const over = layers.filter((span) => span.start < end && start < span.end);
      if (!over.length) {
        fragment.appendChild(document.createTextNode(piece));
        continue;
      }
      const people = over.filter((span) => !span.gold);
      const poor = people.some((span) => span.polarity < 0);
      const good = people.some((span) => span.polarity > 0);
      const mark = document.createElement("mark");
      const kind = poor && good ? "rv-both" : poor ? "rv-poor" : good ? "rv-good" : people.length ? "rv-neutral" : "";
      if (kind) mark.classList.add(kind);
      const who = new Set(people.map((span) => span.who));
      if (who.size >= 2) mark.classList.add(who.size >= 3 ? "rv-n3" : "rv-n2");
      if (over.some((span) => span.gold)) mark.classList.add("rv-gold");
      mark.title = over.map((span) => `${span.who} ${span.label}${span.critique ? ": " + span.critique : ""}`).join("\n");
      mark.textContent = piece;
      fragment.appendChild(mark);
    }
    textEl.replaceChildren(fragment);
  }

  // --- the gold editor ---------------------------------------------------------------------------------
  function syncGold() {
    if (goldInput) goldInput.value = JSON.stringify(gold);
  }

  function renderGold() {
    if (!goldList) return;
    const items = gold.map((span, index) => {
      const li = document.createElement("li");
      li.dataset.goldIndex = String(index);
      const select = document.createElement("select");
      select.setAttribute("aria-label", "Label");
      labels.forEach((label) => {
        const option = document.createElement("option");
        option.value = label.name;
        option.textContent = label.name;
        option.selected = label.name === span.label;
        select.appendChild(option);
      });
      select.addEventListener("change", () => {
        span.label = select.value;
        span.polarity = polarityOf(select.value);
        syncGold();
        render();
      });
      const quote = document.createElement("span");
      quote.className = "rv-quote";
      quote.textContent = ` “${span.text}” `;
      const critique = document.createElement("input");
      critique.type = "text";
      critique.placeholder = "Critique";
      critique.value = span.critique || "";
      critique.setAttribute("aria-label", "Critique of this gold span");
      critique.addEventListener("input", () => {
        span.critique = critique.value;
        syncGold();
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small-button";
      remove.textContent = "Remove";
      remove.addEventListener("click", () => {
        gold.splice(index, 1);
        refresh();
      });
      li.append(select, quote, remove, critique);
      return li;
    });
    goldList.replaceChildren(...items);
  }

  function refresh() {
    syncGold();
    renderGold();
    render();
  }

  function addGold(span) {
    const exists = gold.some((g) => g.start === span.start && g.end === span.end && g.label === span.label);
    if (exists) return false;
    gold.push({
      start: span.start,
      end: span.end,
      text: sliceCp(span.start, span.end),
      label: span.label,
      polarity: polarityOf(span.label),
      weight: span.weight || 1,
      critique: span.critique || "",
    });
    gold.sort((a, b) => a.start - b.start || a.end - b.end);
    return true;
  }

  function takeAll(index) {
    (annotators[index] || { spans: [] }).spans.forEach(addGold);
    refresh();
  }

  /** The selection inside the output as code-point offsets, or null. */
  function selectionOffsets() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
    const range = selection.getRangeAt(0);
    if (!textEl.contains(range.startContainer) || !textEl.contains(range.endContainer)) return null;
    const before = document.createRange();
    before.setStart(textEl, 0);
    before.setEnd(range.startContainer, range.startOffset);
    const startUnit = before.toString().length;
    const endUnit = startUnit + range.toString().length;
    const start = unitToCp(startUnit, false);
    const end = unitToCp(endUnit, true);
    return start < end ? { start, end } : null;
  }

  // --- annotation cards ----------------------------------------------------------------------------------
  function focusCard(index) {
    if (!cards.length) return;
    focused = (index + cards.length) % cards.length;
    cards.forEach((card, i) => card.classList.toggle("rv-focused", i === focused));
    cards[focused].focus({ preventScroll: false });
  }

  function verdict(value) {
    const card = cards[focused];
    if (!card) return;
    const button = card.querySelector(`[data-verdict-button='${value}']`);
    if (button) button.click();
  }

  // --- wiring ----------------------------------------------------------------------------------------------
  document.querySelectorAll("[data-toggle]").forEach((box) => {
    box.addEventListener("change", () => {
      if (box.dataset.toggle === "gold") goldVisible = box.checked;
      else visible[Number(box.dataset.toggle)] = box.checked;
      render();
    });
  });
  document.querySelectorAll("[data-take]").forEach((button) => {
    button.addEventListener("click", () => {
      const [who, which] = button.dataset.take.split(":").map(Number);
      const span = ((annotators[who] || {}).spans || [])[which];
      if (span && addGold(span)) refresh();
    });
  });
  cards.forEach((card, index) => card.addEventListener("focusin", () => {
    focused = index;
    cards.forEach((c, i) => c.classList.toggle("rv-focused", i === index));
  }));
  if (goldForm) goldForm.addEventListener("submit", syncGold);
  // The keyboard selects text in the output too (Tab to it, Shift + arrows), then 1-9 adds it to the gold.
  if (window.T2GKeyboardSelection) window.T2GKeyboardSelection(textEl);
  const helpButton = document.getElementById("rv-help-button");
  if (helpButton && helpDialog) helpButton.addEventListener("click", () => helpDialog.showModal());

  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      if (goldForm) goldForm.requestSubmit();
      return;
    }
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const digit = /^Digit([1-9])$/.exec(event.code);
    if (digit && event.shiftKey) {
      const box = document.querySelector(`[data-toggle='${Number(digit[1]) - 1}']`);
      if (box) box.click();
      event.preventDefault();
      return;
    }
    if (digit) {
      const label = labels[Number(digit[1]) - 1];
      const range = selectionOffsets();
      if (label && range && addGold({ ...range, label: label.name })) {
        window.getSelection().removeAllRanges();
        refresh();
      }
      event.preventDefault();
      return;
    }
    switch (event.key) {
      case "j":
        focusCard(focused + 1);
        break;
      case "k":
        focusCard(focused - 1);
        break;
      case "a":
        verdict("accepted");
        break;
      case "r":
        verdict("rejected");
        break;
      case "c": {
        const box = cards[focused] && cards[focused].querySelector("textarea");
        if (box) box.focus();
        break;
      }
      case "t":
        if (focused >= 0) takeAll(focused);
        break;
      case "n":
        window.location.href = root.dataset.nextUrl;
        break;
      case "?":
        if (helpDialog) {
          if (helpDialog.open) helpDialog.close();
          else helpDialog.showModal();
        }
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  // Back from a verdict (#annotation-N): keep that card focused so J/K carry on from it.
  const hashed = cards.findIndex((card) => `#${card.id}` === window.location.hash);
  if (hashed >= 0) focusCard(hashed);
  refresh();
  root.dataset.ready = "1";
})();
