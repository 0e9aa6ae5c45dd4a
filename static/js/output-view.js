/* Text2Grad Studio: the output as the annotator sees it, and selections in it as code-point offsets.
 *
 * T2GOutputView(outputEl, outputText, tokens) draws the untrusted output only as DOM text nodes (inside
 * <mark> for spans and <span class="k"> etc. for Pygments' token classes; code outputs get one block per
 * line, numbered by CSS counters), and turns the browser's selection (UTF-16 units) into code points, the
 * unit the server stores. It also lets the keyboard select text in the output (Tab, Shift + arrows).
 * static/js/annotate/spans.js owns the spans and calls draw() and selection().
 */
(function () {
  "use strict";

  // --- selecting from the keyboard ------------------------------------------------------------------
  // The output is focusable (Tab). Arrows move an invisible caret, Shift + arrows select (Ctrl: by word,
  // Up/Down: by line, Home/End: to the line's ends), then 1-9 labels the selection as with the mouse.
  // The review page uses it too, for its gold editor.
  window.T2GKeyboardSelection = function (el) {
    const CARET_KEYS = {
      ArrowRight: ["forward", "character"],
      ArrowLeft: ["backward", "character"],
      ArrowDown: ["forward", "line"],
      ArrowUp: ["backward", "line"],
      End: ["forward", "lineboundary"],
      Home: ["backward", "lineboundary"],
    };
    el.addEventListener("keydown", (event) => {
      const move = CARET_KEYS[event.key];
      if (!move || event.altKey) return;
      const selection = window.getSelection();
      if (!selection.rangeCount || !el.contains(selection.anchorNode)) selection.collapse(el, 0);
      const granularity = (event.ctrlKey || event.metaKey) && move[1] === "character" ? "word" : move[1];
      selection.modify(event.shiftKey ? "extend" : "move", move[0], granularity);
      event.preventDefault();
    });
  };

  window.T2GOutputView = function (outputEl, outputText, tokens) {
    // --- offsets: code points <-> UTF-16 ----------------------------------------------------------
    // cpToUnit[i] is the UTF-16 offset of code point i; built by iterating code points with for..of.
    const cpToUnit = [0];
    for (const ch of outputText) cpToUnit.push(cpToUnit[cpToUnit.length - 1] + ch.length);
    const cpLength = cpToUnit.length - 1;

    /** The code point at a UTF-16 offset; an offset inside a surrogate pair rounds down, or up with roundUp. */
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
    const sliceCp = (start, end) => outputText.slice(cpToUnit[start], cpToUnit[end]);

    // Code outputs: Pygments' token classes ([start, end, class] in code points, from the server) and one
    // block per line, numbered by CSS counters (generated content is not text: offsets stay exact).
    const numbered = outputEl.classList.contains("numbered");
    const lineStarts = [0];
    if (numbered) {
      let at = 0;
      for (const ch of outputText) {
        at += 1;
        if (ch === "\n" && at < cpLength) lineStarts.push(at);
      }
    }

    /** The text of [a, b), wrapped in its token's class when it has one. */
    function textPiece(a, b, tokenClass) {
      const text = document.createTextNode(sliceCp(a, b));
      if (!tokenClass) return text;
      const span = document.createElement("span");
      span.className = tokenClass;
      span.appendChild(text);
      return span;
    }

    /** Whether code point cp starts a line (a line break just before it). */
    const lineBreakBefore = (cp) => cp > 0 && cp <= cpLength && sliceCp(cp - 1, cp) === "\n";

    /** Draw the output as text nodes, with one <mark> per stretch covered by the same set of spans. */
    function draw(all, { pending, activeSpanId, colorOf }) {
      const cuts = new Set([0, cpLength]);
      for (const span of all) {
        cuts.add(Math.max(0, Math.min(span.start, cpLength)));
        cuts.add(Math.max(0, Math.min(span.end, cpLength)));
      }
      for (const [start, end] of tokens) {
        cuts.add(Math.min(start, cpLength));
        cuts.add(Math.min(end, cpLength));
      }
      for (const start of lineStarts) cuts.add(start);
      const points = Array.from(cuts).sort((a, b) => a - b);
      const fragment = document.createDocumentFragment();
      let line = fragment;
      let nextLine = 0; // index into lineStarts
      let token = 0; // index into tokens
      for (let i = 0; i + 1 < points.length; i++) {
        const a = points[i];
        const b = points[i + 1];
        if (numbered && nextLine < lineStarts.length && lineStarts[nextLine] === a) {
          line = document.createElement("span");
          line.className = "line";
          fragment.appendChild(line);
          nextLine += 1;
        }
        while (token < tokens.length && tokens[token][1] <= a) token += 1;
        const tokenClass = token < tokens.length && tokens[token][0] <= a ? tokens[token][2] : "";
        // Innermost (shortest) first: it gives the background; every covering span adds an underline band.
        const covering = all
          .filter((span) => span.start <= a && span.end >= b)
          .sort((x, y) => x.end - x.start - (y.end - y.start));
        if (!covering.length) {
          line.appendChild(textPiece(a, b, tokenClass));
          continue;
        }
        const mark = document.createElement("mark");
        mark.className = "hl";
        if (covering.length > 1) mark.classList.add("hl-overlap");
        if (covering.some((span) => span === pending)) mark.classList.add("hl-pending");
        const proposal = covering.find((span) => span.proposal);
        if (proposal) {
          // One dashed box per line of a proposal, however many tokens it crosses: every piece draws the
          // box's top and bottom, the first piece of a line its left side and the last its right side.
          mark.classList.add("hl-proposal");
          if (a === Math.max(proposal.start, 0) || lineBreakBefore(a)) mark.classList.add("hl-proposal-start");
          if (b === Math.min(proposal.end, cpLength) || lineBreakBefore(b)) mark.classList.add("hl-proposal-end");
        }
        if (activeSpanId !== null && covering.some((span) => span.id === activeSpanId)) {
          mark.classList.add("hl-active");
        }
        mark.dataset.spanIds = covering
          .filter((span) => span !== pending && !span.proposal)
          .map((span) => span.id)
          .join(" ");
        mark.style.setProperty("--c", colorOf(covering[0]));
        mark.style.boxShadow = covering
          .map((span, depth) => `inset 0 -${3 * (depth + 1)}px 0 ${colorOf(span)}`)
          .join(", ");
        mark.title = covering
          .filter((span) => span !== pending && !span.proposal)
          .map((span) => span.label + (span.critique ? ": " + span.critique : ""))
          .join("\n");
        mark.appendChild(textPiece(a, b, tokenClass));
        line.appendChild(mark);
      }
      outputEl.replaceChildren(fragment);
    }

    const wrapToggle = document.getElementById("wrap-toggle");
    if (wrapToggle) {
      wrapToggle.addEventListener("click", () => {
        const wrapped = outputEl.classList.toggle("wrapped");
        wrapToggle.setAttribute("aria-pressed", String(wrapped));
      });
    }

    // --- selection -> code-point offsets -------------------------------------------------------------
    function unitsBefore(node, offset) {
      const range = document.createRange();
      range.setStart(outputEl, 0);
      range.setEnd(node, offset);
      return range.toString().length;
    }

    /** The current selection clamped to the output, as {start, end, text} in code points, or null; with
     * snapToWords a boundary inside a word moves to the word's edge. */
    function selection(snapToWords) {
      const selection = window.getSelection();
      if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
      const range = selection.getRangeAt(0);
      const whole = document.createRange();
      whole.selectNodeContents(outputEl);
      let [startNode, startOffset] = [range.startContainer, range.startOffset];
      let [endNode, endOffset] = [range.endContainer, range.endOffset];
      try {
        if (whole.comparePoint(startNode, startOffset) < 0) [startNode, startOffset] = [outputEl, 0];
        if (whole.comparePoint(endNode, endOffset) > 0) {
          [endNode, endOffset] = [outputEl, outputEl.childNodes.length];
        }
        if (whole.comparePoint(startNode, startOffset) > 0 || whole.comparePoint(endNode, endOffset) < 0) {
          return null;
        }
      } catch (err) {
        return null; // the selection is in another document or shadow tree
      }
      const startUnit = unitsBefore(startNode, startOffset);
      const endUnit = unitsBefore(endNode, endOffset);
      if (endUnit <= startUnit) return null;
      let start = unitToCp(startUnit, false);
      let end = unitToCp(endUnit, true);
      if (snapToWords) {
        // A drag that ends inside a word takes the whole word ("A water ma" -> "A water main"), and no
        // more: the words are the browser's word segmenter's (Intl.Segmenter knows scripts written without
        // spaces, so "天気が良い" in "今日は天気が良いので" stays five characters). Alt keeps the exact selection.
        const words = wordsOf();
        const around = (cp) => words.find(([a, b]) => a < cp && cp < b);
        const first = around(start);
        if (first) start = first[0];
        const last = around(end);
        if (last) end = last[1];
      }
      return { start, end, text: sliceCp(start, end) };
    }

    // The output's words as [start, end) in code points, computed once, on the first snapped selection.
    let words = null;
    function wordsOf() {
      if (words) return words;
      words = [];
      if (typeof Intl !== "undefined" && Intl.Segmenter) {
        const segmenter = new Intl.Segmenter(document.documentElement.lang || undefined, { granularity: "word" });
        for (const part of segmenter.segment(outputText)) {
          if (!part.isWordLike) continue;
          words.push([unitToCp(part.index, false), unitToCp(part.index + part.segment.length, true)]);
        }
        return words;
      }
      // Without a segmenter (old browsers): runs of letters, digits and marks, as before.
      const WORD_CHAR = /[\p{L}\p{N}\p{M}_]/u;
      let cp = 0;
      let runStart = -1;
      for (const ch of outputText) {
        const inWord = WORD_CHAR.test(ch);
        if (inWord && runStart < 0) runStart = cp;
        if (!inWord && runStart >= 0) {
          words.push([runStart, cp]);
          runStart = -1;
        }
        cp += 1;
      }
      if (runStart >= 0) words.push([runStart, cp]);
      return words;
    }

    window.T2GKeyboardSelection(outputEl);

    return { draw, selection, sliceCp };
  };
})();
