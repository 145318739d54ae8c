// Totals across all links, the top links of a period, and the cluster's processes when there is one.

import { request } from "./api.js";
import { sparkline } from "./chart.js";
import { h, replace } from "./dom.js";
import { control, field } from "./forms.js";
import * as fmt from "./format.js";
import { failure } from "./widgets.js";

const PERIODS = [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"]];
const CLUSTER_REFRESH_MS = 2000;

export async function overviewPage(main, params) {
  const stats = h("div", { "aria-live": "polite" });
  const period = h("form", { class: "filters", novalidate: true },
    field({ name: "days", label: "Period", type: "select", options: PERIODS, value: params.get("days") ?? "7" }));
  period.addEventListener("change", () => {
    history.replaceState(null, "", `#/overview?days=${control(period, "days").value}`);
    showStats(stats, period);
  });
  period.addEventListener("submit", (event) => event.preventDefault());
  const cluster = h("div");
  main.append(
    h("h1", { tabindex: "-1" }, "Overview"),
    h("section", { class: "panel", "aria-labelledby": "totals-title" },
      h("h2", { id: "totals-title" }, "Clicks on all links"), period, stats),
    h("section", { class: "panel", "aria-labelledby": "cluster-title" },
      h("h2", { id: "cluster-title" }, "Cluster"), cluster));
  const [, clustered] = await Promise.all([showStats(stats, period), showCluster(cluster)]);
  if (!clustered) return undefined;
  // Live figures while this page is open; the router calls the returned function on leaving it.
  const timer = setInterval(() => showCluster(cluster), CLUSTER_REFRESH_MS);
  return () => clearInterval(timer);
}

async function showStats(target, period) {
  const days = Number(control(period, "days").value);
  const from = new Date(Date.now() - days * 86400 * 1000).toISOString();
  let stats;
  try {
    stats = await request("/api/v1/stats", { query: { from, top: 10 } });
  } catch (error) {
    replace(target, failure(error));
    return;
  }
  const t = stats.totals;
  const card = (label, value) => h("div", { class: "card" }, h("dt", {}, label), h("dd", {}, fmt.count(value)));
  replace(target,
    h("dl", { class: "cards" }, card("Clicks", t.total), card("Humans", t.humans), card("Bots", t.bots),
      card("Unique visitors", t.visitors), card("Links", stats.links)),
    h("h3", {}, "Top links"),
    stats.top_links.length
      ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col" }, "Link"),
          h("th", { scope: "col", class: "num" }, "Clicks"), h("th", { scope: "col", class: "num" }, "Humans"),
          h("th", { scope: "col", class: "num" }, "Bots"))),
        h("tbody", {}, stats.top_links.map((link, i) => h("tr", {},
          h("td", { class: "num" }, i + 1),
          h("td", {}, h("a", { href: `#/links/${encodeURIComponent(link.slug)}` }, `/${link.slug}`)),
          h("td", { class: "num" }, fmt.count(link.total)), h("td", { class: "num" }, fmt.count(link.humans)),
          h("td", { class: "num" }, fmt.count(link.bots)))))))
      : h("p", { class: "empty" }, "No clicks in this period."));
}

/** Draw the cluster's processes; false when there is no cluster to show. */
async function showCluster(target) {
  let status;
  try {
    status = await request("/api/v1/cluster");
  } catch (error) {
    replace(target, error.status === 404
      ? h("p", { class: "muted" }, "This API runs as a single process (", h("code", {}, "boltlink serve"),
        "), not under a cluster. Start it with ", h("code", {}, "boltlink start-cluster"), " to see its processes here.")
      : failure(error));
    return error.status !== 404;
  }
  const c = status.cluster;
  const card = (label, value) => h("div", { class: "card" }, h("dt", {}, label), h("dd", {}, value));
  replace(target,
    h("dl", { class: "cards" },
      card("Requests/s", c.requests_per_second.toFixed(1)),
      card("p99", c.p99_ms === null ? "–" : `${c.p99_ms} ms`),
      card("Errors", `${(100 * c.error_rate).toFixed(1)}%`),
      card("Processes", status.processes.length)),
    sparkline(c.history, `Requests per second over the last ${c.history.length} seconds`),
    h("p", { class: "small muted" }, `Master pid ${status.master.pid}, boltlink ${status.master.version}, ` +
      `up ${fmt.duration(status.master.uptime)}, ${status.master.phase}.`),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Status", "PID", "CPU", "Memory", "Restarts", "Uptime", "Req/s", "p99"]
        .map((name, i) => h("th", { scope: "col", class: i > 1 ? "num" : undefined }, name)))),
      h("tbody", {}, status.processes.map((p) => h("tr", { "data-process": p.name },
        h("td", {}, p.name), h("td", {}, p.status), h("td", { class: "num" }, p.pid ?? "–"),
        h("td", { class: "num" }, `${p.cpu.toFixed(0)}%`), h("td", { class: "num" }, fmt.bytes(p.memory)),
        h("td", { class: "num" }, p.restarts), h("td", { class: "num" }, fmt.duration(p.uptime)),
        h("td", { class: "num" }, p.role === "api" ? p.requests_per_second.toFixed(1) : "–"),
        h("td", { class: "num" }, p.p99_ms === null ? "–" : `${p.p99_ms} ms`)))))));
  return true;
}
