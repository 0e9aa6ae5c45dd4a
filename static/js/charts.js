/* Text2Grad Studio: every chart in the app, drawn with uPlot (static/vendor/uplot, from its npm package).
 *
 * A page puts `<div data-charts="ID">` with one `<figure data-chart-index="N">` per chart beside a JSON
 * script element ID holding the specs (templates/charts/_figures.html; the round page has its own). Three
 * kinds, each with a legend that shows the values under the cursor and labelled axes with ticks:
 *   - "lines" (the default): round metrics by optimizer step (training/charts.py chart_specs);
 *   - "intervals": one point per category with an interval bar and a reference line: Bradley–Terry
 *     scores with bootstrap intervals, win rates (evaluation/chart.py);
 *   - "reliability": a calibration plot, observed share against predicted probability beside the
 *     diagonal (training/charts.py calibration_chart).
 * Labels from the data reach the page only through uPlot, which puts them in as text. No inline script
 * or style attribute: the CSP allows neither. htmx swaps (the round page's live part every 2 s) redraw
 * the charts inside what was swapped.
 */
(function () {
  "use strict";

  const PALETTE = ["#3b5bdb", "#c62828", "#2e7d32", "#b26a00", "#7048e8"];
  const INK = "#475467";
  const GRID = { stroke: "#eef0f3" };
  let plots = []; // {plot, holder}

  const format = (value) => {
    if (value == null || !Number.isFinite(value)) return "—";
    if (value === 0) return "0";
    const size = Math.abs(value);
    return size >= 1000 || size < 0.001 ? value.toExponential(2) : String(Number(value.toPrecision(4)));
  };
  const fixed = (value) => (value == null || !Number.isFinite(value) ? "—" : value.toFixed(2));
  const hidden = () => null; // a series shown in the legend only (its values appear on hover)

  function yAxis(label, values) {
    return { label, stroke: INK, grid: GRID, size: 64, space: 22, values: values || ((u, ticks) => ticks.map(format)) };
  }

  function dashedLine(u, y, color) {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(bbox.left, y);
    ctx.lineTo(bbox.left + bbox.width, y);
    ctx.stroke();
    ctx.restore();
  }

  /** A y range from the data: the shown values plus a margin; one value (or a flat series) gets a margin
   * of its own size, so the first point does not sit on a default 0-100 axis. */
  function dataRange(u, dataMin, dataMax) {
    if (dataMin == null || dataMax == null) return [0, 1];
    const span = dataMax - dataMin;
    const pad = span > 0 ? span * 0.08 : Math.max(Math.abs(dataMax) * 0.1, 0.01);
    return [dataMin - pad, dataMax + pad];
  }

  function lines(spec) {
    if (!spec.steps.length) return null;
    const options = {
      scales: { x: { time: false, range: (u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]) }, y: { range: dataRange } },
      axes: [
        { label: spec.x_label, stroke: INK, grid: GRID, values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : "")) },
        yAxis(spec.y_label),
      ],
      series: [
        { label: "step", value: (u, v) => (v == null ? "—" : String(v)) },
        ...spec.series.map((series, n) => ({
          label: series.label,
          stroke: PALETTE[n % PALETTE.length],
          width: 2,
          spanGaps: false,
          points: { show: spec.steps.length < 40 },
          value: (u, v) => format(v),
        })),
      ],
    };
    return { options, data: [spec.steps, ...spec.series.map((series) => series.values)] };
  }

  /** A category's tick label in the room its tick has: a pair ("a vs b") on two lines, each name cut only
   * where it does not fit (about 7 px a character). */
  function tickName(u, name, count) {
    const room = Math.max(8, Math.floor(u.bbox.width / devicePixelRatio / count / 7));
    const cut = (text) => (text.length > room ? text.slice(0, room - 1) + "…" : text);
    const pair = name.split(" vs ");
    return pair.length === 2 ? `${cut(pair[0])}\nvs ${cut(pair[1])}` : cut(name);
  }

  function intervals(spec) {
    const names = spec.categories;
    if (!names.length) return null;
    const index = names.map((_, i) => i);
    const known = [...spec.lower, ...spec.upper, ...spec.values, spec.reference].filter(Number.isFinite);
    let [low, high] = spec.y_range || [Math.min(...known), Math.max(...known)];
    const pad = (high - low || 1) * 0.08;
    if (!spec.y_range) [low, high] = [low - pad, high + pad];
    const color = PALETTE[0];
    const options = {
      scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: [low, high] }, count: { range: [0, 1] } },
      axes: [
        {
          label: spec.x_label,
          stroke: INK,
          grid: { show: false },
          splits: () => index,
          size: names.some((name) => name.includes(" vs ")) ? 64 : 50,
          values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) && names[t] != null ? tickName(u, names[t], names.length) : "")),
        },
        yAxis(spec.y_label, (u, ticks) => ticks.map(fixed)),
      ],
      series: [
        { label: spec.x_label, value: (u, v) => (v == null || names[v] == null ? "—" : names[v]) },
        { label: spec.series_label, stroke: color, fill: color, paths: hidden, points: { show: true, size: 10, fill: color, stroke: color }, value: (u, v) => fixed(v) },
        {
          label: spec.interval_label,
          stroke: PALETTE[0] + "99",
          paths: hidden,
          points: { show: false },
          value: (u, v, si, i) => (i == null ? "—" : `${fixed(spec.lower[i])} to ${fixed(spec.upper[i])}`),
        },
        { label: spec.count_label, scale: "count", stroke: INK, paths: hidden, points: { show: false }, value: (u, v) => (v == null ? "—" : String(v)) },
      ],
      hooks: {
        draw: [
          (u) => {
            if (Number.isFinite(spec.reference)) dashedLine(u, u.valToPos(spec.reference, "y", true), "#98a2b3");
            const { ctx } = u;
            const cap = 7 * devicePixelRatio;
            ctx.save();
            ctx.strokeStyle = color;
            ctx.lineWidth = 3 * devicePixelRatio;
            ctx.lineCap = "round";
            index.forEach((i) => {
              if (!Number.isFinite(spec.lower[i]) || !Number.isFinite(spec.upper[i])) return;
              const x = u.valToPos(i, "x", true);
              const top = u.valToPos(spec.upper[i], "y", true);
              const bottom = u.valToPos(spec.lower[i], "y", true);
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, bottom);
              ctx.moveTo(x - cap, top);
              ctx.lineTo(x + cap, top);
              ctx.moveTo(x - cap, bottom);
              ctx.lineTo(x + cap, bottom);
              ctx.stroke();
            });
            ctx.restore();
          },
        ],
      },
    };
    return { options, data: [index, spec.values, spec.lower, spec.counts] };
  }

  function reliability(spec) {
    // The diagonal runs from 0 to 1 whatever the bins cover: both ends join the x values.
    const xs = [0, ...spec.predicted, 1];
    const observed = [null, ...spec.observed, null];
    const counts = [null, ...spec.counts, null];
    const options = {
      scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] }, count: { range: [0, 1] } },
      axes: [
        { label: spec.x_label, stroke: INK, grid: GRID, values: (u, ticks) => ticks.map(fixed) },
        yAxis(spec.y_label, (u, ticks) => ticks.map(fixed)),
      ],
      series: [
        { label: spec.x_label, value: (u, v) => fixed(v) },
        { label: spec.series_label, stroke: PALETTE[0], width: 2, spanGaps: true, points: { show: true, size: 8, fill: PALETTE[0] }, value: (u, v) => fixed(v) },
        { label: spec.reference_label, stroke: "#98a2b3", width: 1, dash: [5, 4], points: { show: false }, value: (u, v) => fixed(v) },
        { label: spec.count_label, scale: "count", stroke: INK, paths: hidden, points: { show: false }, value: (u, v) => (v == null ? "—" : String(v)) },
      ],
    };
    return { options, data: [xs, observed, xs.slice(), counts] };
  }

  const KINDS = { lines, intervals, reliability };

  function drawHolder(holder) {
    const dataEl = document.getElementById(holder.dataset.charts);
    if (!dataEl) return;
    const specs = JSON.parse(dataEl.textContent);
    for (const figure of holder.querySelectorAll("[data-chart-index]")) {
      const spec = specs[Number(figure.dataset.chartIndex)];
      const target = figure.querySelector(".chart-plot");
      const kind = spec && KINDS[spec.kind || "lines"];
      if (!kind || !target) continue;
      const built = kind(spec);
      if (!built) continue;
      const width = Math.max(260, target.clientWidth || figure.clientWidth - 24);
      const options = { width, height: 240, cursor: { drag: { x: false, y: false } }, legend: { live: true }, ...built.options };
      const plot = new uPlot(options, built.data, target);
      plots.push({ plot, holder });
      keyboard(plot, target);
    }
  }

  /** The keyboard does what the mouse does: focused, a chart's arrows move the cursor from point to point
   * (the legend shows the values there; Home and End go to the ends, Esc hides it); Enter or Space on a
   * legend entry shows or hides that series, as a click does. */
  function keyboard(u, target) {
    target.tabIndex = 0;
    let index = null;
    const xs = u.data[0];
    target.addEventListener("keydown", (event) => {
      if (event.target !== target || event.ctrlKey || event.metaKey || event.altKey) return;
      const last = xs.length - 1;
      const moves = {
        ArrowRight: () => (index == null ? 0 : Math.min(last, index + 1)),
        ArrowLeft: () => (index == null ? last : Math.max(0, index - 1)),
        Home: () => 0,
        End: () => last,
      };
      if (event.key === "Escape") {
        index = null;
        u.setCursor({ left: -10, top: -10 });
      } else if (moves[event.key]) {
        index = moves[event.key]();
        const y = u.data.slice(1).map((values) => values[index]).find((value) => value != null);
        const top = y == null ? u.bbox.height / devicePixelRatio / 2 : u.valToPos(y, "y");
        u.setCursor({ left: u.valToPos(xs[index], "x"), top });
      } else return;
      event.preventDefault();
    });
    target.querySelectorAll(".u-legend .u-series").forEach((row, i) => {
      if (i === 0) return; // the x value, not a series
      row.tabIndex = 0;
      row.title = "Enter or Space shows or hides this series";
      row.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        u.setSeries(i, { show: !u.series[i].show });
      });
    });
  }

  /** Draw the charts of every holder not drawn yet (on load, and after htmx swapped one in); drop the
   * plots of holders that an htmx swap took out of the page. */
  function refresh() {
    if (typeof uPlot === "undefined") return;
    plots = plots.filter(({ plot, holder }) => holder.isConnected || (plot.destroy(), false));
    const drawn = new Set(plots.map(({ holder }) => holder));
    for (const holder of document.querySelectorAll("[data-charts]")) if (!drawn.has(holder)) drawHolder(holder);
    window.t2gCharts = plots.map(({ plot }) => plot); // for the browser tests and the console
  }

  document.addEventListener("DOMContentLoaded", refresh);
  if (document.readyState !== "loading") refresh();
  document.body.addEventListener("htmx:afterSettle", refresh);
})();
