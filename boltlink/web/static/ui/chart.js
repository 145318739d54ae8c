// Hand-drawn SVG charts: clicks over time as stacked bars (humans, then bots), and a sparkline.

import { h, svg } from "./dom.js";
import * as fmt from "./format.js";

const PAD = { top: 12, right: 8, bottom: 26, left: 44 };

/**
 * Stacked bars of a stats series ([{start, total, humans, bots}]), with the numbers in a table beside.
 * Drawn at the width it will be shown at (the SVG still scales), so its text is the page's size on a phone too.
 */
export function clicksChart(series, granularity, width) {
  const WIDTH = Math.round(Math.min(1200, Math.max(300, width || 640)));
  const HEIGHT = WIDTH < 500 ? 180 : 240;
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const top = niceCeiling(Math.max(0, ...series.map((p) => p.humans + p.bots)));
  const y = (value) => PAD.top + plotHeight - (value / top) * plotHeight;
  const step = plotWidth / Math.max(1, series.length);
  const barWidth = Math.max(step * 0.8, 0.5);
  const total = series.reduce((sum, p) => sum + p.total, 0);
  const unit = granularity === "hour" ? "hour" : "day";
  const summary = series.length
    ? `${fmt.plural(total, "click")} from ${fmt.bucket(series[0].start, granularity)} to ` +
      `${fmt.bucket(series.at(-1).start, granularity)}, by ${unit}; at most ` +
      `${fmt.count(Math.max(...series.map((p) => p.total)))} in one ${unit}.`
    : "No data for this range.";

  const gridLines = (top >= 2 ? [0, top / 2, top] : [0, top]).map((value) => svg("g", {},
    svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
    svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, fmt.count(value))));
  const bars = series.map((point, i) => {
    const x = PAD.left + i * step + (step - barWidth) / 2;
    return svg("g", { class: "bar" },
      svg("title", {}, `${fmt.bucket(point.start, granularity)}: ${fmt.plural(point.total, "click")} ` +
        `(${fmt.plural(point.humans, "human")}, ${fmt.plural(point.bots, "bot")})`),
      svg("rect", { class: "humans", x, width: barWidth, y: y(point.humans), height: y(0) - y(point.humans) }),
      svg("rect", { class: "bots", x, width: barWidth, y: y(point.humans + point.bots),
                    height: y(point.humans) - y(point.humans + point.bots) }));
  });
  const labelAt = series.length < 2 ? [0] : WIDTH < 500 ? [0, series.length - 1] : [0, Math.floor(series.length / 2), series.length - 1];
  const xLabels = series.length ? labelAt.map((i, n) => svg("text", {
    x: PAD.left + i * step + step / 2, y: HEIGHT - 8,
    "text-anchor": n === 0 ? "start" : n === labelAt.length - 1 ? "end" : "middle",
  }, fmt.bucket(series[i].start, granularity))) : [];

  const busy = series.filter((p) => p.total > 0);
  return h("figure", { class: "chart", "data-total": total },
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": summary },
      gridLines, bars, xLabels),
    h("figcaption", {},
      h("ul", { class: "legend" },
        h("li", {}, h("span", { class: "swatch humans" }), "Humans"),
        h("li", {}, h("span", { class: "swatch bots" }), "Bots")),
      h("p", { class: "small muted" }, summary)),
    h("details", {},
      h("summary", {}, `Show the numbers (${fmt.plural(busy.length, unit)} with clicks)`),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, unit === "hour" ? "Hour" : "Day"),
          h("th", { class: "num" }, "Clicks"), h("th", { class: "num" }, "Humans"), h("th", { class: "num" }, "Bots"))),
        h("tbody", {}, busy.map((p) => h("tr", {},
          h("td", {}, fmt.bucket(p.start, granularity)), h("td", { class: "num" }, fmt.count(p.total)),
          h("td", { class: "num" }, fmt.count(p.humans)), h("td", { class: "num" }, fmt.count(p.bots)))))))));
}

/** A line of recent values (e.g. requests/s, one a second), scaled to its own maximum. */
export function sparkline(values, label) {
  const width = 240;
  const height = 48;
  const top = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
  return svg("svg", { class: "sparkline", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
                      role: "img", "aria-label": label },
    svg("polyline", { points: points.join(" ") }));
}

/** 1, 2, 4, 6, 8, 10, 20, 40...: a round number at or above value whose half is whole too, for the axis. */
function niceCeiling(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 4, 6, 8, 10].map((m) => m * power).find((n) => n >= value);
}
