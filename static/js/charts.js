/* Text2Grad Studio: round metric charts with uPlot (static/vendor/uplot, from its npm package).
 *
 * The data is a JSON script element beside the charts (training/charts.py: title, axis labels, human
 * series names, one value per optimizer step; null is a gap). Each chart has a legend that shows the
 * value under the cursor, an x axis "optimizer step" and a labelled y axis, both with ticks. The live
 * part of the round page is swapped by htmx every 2 s: the charts are drawn again after every swap.
 */
(function () {
  "use strict";

  const PALETTE = ["#3b5bdb", "#c62828", "#2e7d32", "#b26a00", "#7048e8"];
  let plots = [];

  const format = (value) => {
    if (value == null || !Number.isFinite(value)) return "—";
    if (value === 0) return "0";
    const size = Math.abs(value);
    return size >= 1000 || size < 0.001 ? value.toExponential(2) : String(Number(value.toPrecision(4)));
  };

  function draw(root) {
    for (const plot of plots) plot.destroy();
    plots = [];
    const holder = root.querySelector("[data-charts]");
    if (!holder || typeof uPlot === "undefined") return;
    const dataEl = document.getElementById(holder.dataset.charts);
    if (!dataEl) return;
    const specs = JSON.parse(dataEl.textContent);
    for (const figure of holder.querySelectorAll("[data-chart-index]")) {
      const spec = specs[Number(figure.dataset.chartIndex)];
      const target = figure.querySelector(".chart-plot");
      if (!spec || !target || !spec.steps.length) continue;
      const width = Math.max(260, target.clientWidth || figure.clientWidth - 24);
      const options = {
        width,
        height: 240,
        cursor: { drag: { x: false, y: false } },
        legend: { live: true },
        scales: { x: { time: false } },
        axes: [
          { label: spec.x_label, stroke: "#475467", grid: { stroke: "#eef0f3" }, values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : "")) },
          { label: spec.y_label, stroke: "#475467", grid: { stroke: "#eef0f3" }, size: 64, space: 22, values: (u, ticks) => ticks.map(format) },
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
      const data = [spec.steps, ...spec.series.map((series) => series.values)];
      plots.push(new uPlot(options, data, target));
    }
    window.t2gCharts = plots; // for the browser tests and the console
  }

  function start() {
    const live = document.getElementById("round-live");
    if (live) draw(live);
  }
  document.addEventListener("DOMContentLoaded", start);
  if (document.readyState !== "loading") start();
  document.body.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail && event.detail.target;
    if (target && target.id === "round-live") start();
    else if (document.getElementById("round-live") && !document.getElementById("round-live").querySelector(".uplot")) start();
  });
})();
