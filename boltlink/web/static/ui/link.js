// One link: its short URL and QR code, clicks over time, who clicked, recent visits; edit and delete.

import { linkPath, request } from "./api.js";
import { clicksChart } from "./chart.js";
import { h, replace } from "./dom.js";
import { busy, control, field, formError, isoToLocal, localToIso, showErrors, splitTags } from "./forms.js";
import * as fmt from "./format.js";
import { confirmDialog, copyButton, download, failure, notify, qrCode } from "./widgets.js";

const RANGES = [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"],
  ["365", "Last year"]];
const GRANULARITIES = [["hour", "By hour"], ["day", "By day"]];
const TOP = [["referrer", "Top referrers"], ["browser", "Browsers"], ["os", "Operating systems"],
  ["device", "Devices"], ["country", "Countries"]];
const RECENT_VISITS = 20;
// [heading, value of a visit, shown on a phone too]
const VISIT_COLUMNS = [
  ["When", (v) => fmt.when(v.at), true], ["Referrer", (v) => v.referrer_host, true],
  ["Browser", (v) => v.browser, true], ["OS", (v) => v.os, false], ["Device", (v) => v.device, false],
  ["Country", (v) => v.country, false], ["Who", (v) => (v.bot ? "Bot" : "Human"), true],
];

export async function linkPage(main, params, slug) {
  const link = await request(linkPath(slug));
  const stats = h("div", { "aria-live": "polite" });
  const controls = rangeControls(params, () => showStats(stats, slug, controls));

  main.append(
    header(link),
    h("section", { class: "panel", "aria-labelledby": "clicks-title" },
      h("div", { class: "row spread" }, h("h2", { id: "clicks-title" }, "Clicks"),
        h("p", { class: "muted small" }, `${fmt.plural(link.clicks.total, "click")} in all since `,
          fmt.when(link.created_at))),
      controls, stats),
    h("div", { class: "grid-2" }, editSection(link), deleteSection(link)));
  await showStats(stats, slug, controls);
}

function header(link) {
  return h("section", { class: "panel", "aria-labelledby": "link-title" },
    h("div", { class: "short-link" },
      h("div", { class: "details" },
        h("h1", { id: "link-title", tabindex: "-1" }, link.title || `/${link.slug}`),
        h("p", {}, h("a", { class: "short-url", href: link.short_url, "data-testid": "short-url" }, link.short_url)),
        h("p", { class: "muted break" }, "to ", h("a", { href: link.url, rel: "noreferrer noopener" }, link.url)),
        link.tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, link.tags.map((tag) => h("li", {},
          h("a", { class: "tag", href: `#/links?tag=${encodeURIComponent(tag)}` }, tag)))) : null,
        h("p", { class: "small muted" }, limits(link)),
        h("div", { class: "row" }, copyButton(link.short_url, "Copy"))),
      qrCode(link)));
}

function limits(link) {
  const parts = [`Redirects with ${link.redirect_status}`];
  if (link.expires_at) parts.push(`expires ${fmt.when(link.expires_at)}`);
  if (link.max_clicks) parts.push(`at most ${fmt.plural(link.max_clicks, "click")}`);
  if (link.do_not_track) parts.push("clicks not recorded (do not track)");
  return parts.join(" · ");
}

function rangeControls(params, onChange) {
  const form = h("form", { class: "filters", novalidate: true },
    field({ name: "range", label: "Range", type: "select", options: RANGES, value: params.get("range") ?? "7" }),
    field({ name: "granularity", label: "Step", type: "select", options: GRANULARITIES,
            value: params.get("granularity") ?? "hour" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Refresh")),
    formError());
  const changed = () => {
    // Kept in the address so a reload or a shared URL shows the same range; no history entry per change.
    const query = new URLSearchParams({ range: control(form, "range").value, granularity: control(form, "granularity").value });
    history.replaceState(null, "", `${location.hash.split("?")[0]}?${query}`);
    onChange();
  };
  form.addEventListener("change", changed);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    changed();
  });
  return form;
}

async function showStats(target, slug, controls) {
  const days = Number(control(controls, "range").value);
  const granularity = control(controls, "granularity").value;
  const to = new Date();
  const from = new Date(to.getTime() - days * 86400 * 1000);
  let stats, visits;
  try {
    [stats, visits] = await Promise.all([
      request(linkPath(slug, "/stats"), { query: { from: from.toISOString(), to: to.toISOString(), granularity, top: 5 } }),
      request(linkPath(slug, "/visits"), { query: { limit: RECENT_VISITS } }),
    ]);
  } catch (error) {
    // "from" is the range the user chose: e.g. a year by hour is more than the API gives at once.
    if (error.status === 422) showErrors(controls, error, { from: "range", to: "range" });
    else replace(target, failure(error));
    return;
  }
  controls.querySelector(".form-error").textContent = "";
  for (const slot of controls.querySelectorAll(".field-error")) slot.textContent = "";
  control(controls, "range").removeAttribute("aria-invalid");
  replace(target,
    totals(stats.totals),
    clicksChart(stats.series, granularity, target.clientWidth),
    humansAndBots(stats.totals),
    h("div", { class: "grid-2" }, TOP.map(([dimension, title]) => topList(title, stats.top[dimension] ?? []))),
    recentVisits(slug, visits.items));
}

function totals(t) {
  const card = (label, value, id) => h("div", { class: "card" }, h("dt", {}, label), h("dd", { "data-testid": id }, fmt.count(value)));
  return h("dl", { class: "cards" }, card("Clicks", t.total, "total"), card("Humans", t.humans, "humans"),
    card("Bots", t.bots, "bots"), card("Unique visitors", t.visitors, "visitors"));
}

function humansAndBots(t) {
  const humans = h("span", { class: "humans" });
  const bots = h("span", { class: "bots" });
  // Widths through the CSSOM: allowed by the CSP, unlike style attributes.
  humans.style.width = fmt.percent(t.humans, t.total);
  bots.style.width = fmt.percent(t.bots, t.total);
  return h("div", { class: "humans-bots" },
    h("h3", {}, "Humans and bots"),
    h("div", { class: "split", role: "img",
               "aria-label": `${fmt.percent(t.humans, t.total)} humans, ${fmt.percent(t.bots, t.total)} bots` }, humans, bots),
    h("p", { class: "small muted" }, `${fmt.plural(t.humans, "human")} (${fmt.percent(t.humans, t.total)}) · ` +
      `${fmt.plural(t.bots, "bot")} (${fmt.percent(t.bots, t.total)})`));
}

function topList(title, values) {
  const most = Math.max(1, ...values.map((v) => v.count));
  return h("section", { class: "breakdown" },
    h("h3", {}, title),
    values.length
      ? h("ol", { class: "toplist" }, values.map(({ value, count }) => {
        const bar = h("span");
        bar.style.width = `${(100 * count) / most}%`;
        return h("li", {}, h("span", { class: "value" }, value || "(none)"), h("span", { class: "num" }, fmt.count(count)),
          h("span", { class: "meter", "aria-hidden": "true" }, bar));
      }))
      : h("p", { class: "empty" }, "Nothing yet"));
}

function recentVisits(slug, visits) {
  const exportButton = h("button", { type: "button", class: "button" }, "Export all visits (CSV)");
  exportButton.addEventListener("click", async () => {
    exportButton.disabled = true;
    try {
      await download(await request(linkPath(slug, "/visits"), { query: { format: "csv" }, raw: true }), `${slug}-visits.csv`);
    } catch (error) {
      notify(error.message);
    } finally {
      exportButton.disabled = false;
    }
  });
  return h("section", { class: "visits", "aria-labelledby": "visits-title" },
    h("div", { class: "row spread" }, h("h3", { id: "visits-title" }, "Recent visits"), exportButton),
    visits.length
      ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, VISIT_COLUMNS.map(([name, , narrow]) =>
          h("th", { scope: "col", class: narrow ? undefined : "hide-narrow" }, name)))),
        h("tbody", {}, visits.map((visit) => h("tr", {}, VISIT_COLUMNS.map(([, value, narrow]) =>
          h("td", { class: narrow ? undefined : "hide-narrow" }, value(visit) || "–")))))))
      : h("p", { class: "empty" }, "No visits recorded yet (they show up a moment after the click)."));
}

function editSection(link) {
  const form = h("form", { novalidate: true },
    formError(),
    field({ name: "url", label: "Long URL", type: "url", required: true, value: link.url, inputmode: "url" }),
    field({ name: "title", label: "Title", value: link.title ?? "" }),
    field({ name: "tags", label: "Tags", value: link.tags.join(" "), hint: "Separated by spaces or commas." }),
    field({ name: "expires_at", label: "Expires", type: "datetime-local", value: isoToLocal(link.expires_at),
            hint: "Empty: never." }),
    field({ name: "max_clicks", label: "Maximum clicks", type: "number", min: 1, step: 1,
            value: link.max_clicks ?? "", hint: "Empty: no limit." }),
    h("button", { type: "submit", class: "primary" }, "Save changes"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      try {
        await request(linkPath(link.slug), { method: "PATCH", json: changesOf(form, link) });
      } catch (error) {
        showErrors(form, error);
        return;
      }
      notify("Saved");
      window.dispatchEvent(new HashChangeEvent("hashchange")); // draw the page again with the new values
    });
  });
  return h("section", { class: "panel", "aria-labelledby": "edit-title" }, h("h2", { id: "edit-title" }, "Edit"), form);
}

/** Only what changed; an emptied optional field becomes null, which clears it. */
function changesOf(form, link) {
  const value = (name) => control(form, name).value.trim();
  const changes = {};
  if (value("url") !== link.url) changes.url = value("url");
  if (value("title") !== (link.title ?? "")) changes.title = value("title") || null;
  const tags = splitTags(value("tags"));
  if (tags.join(" ") !== link.tags.join(" ")) changes.tags = tags;
  if (value("expires_at") !== isoToLocal(link.expires_at)) changes.expires_at = localToIso(value("expires_at"));
  const maxClicks = value("max_clicks") === "" ? null : Number(value("max_clicks"));
  if (maxClicks !== link.max_clicks) changes.max_clicks = maxClicks;
  return changes;
}

function deleteSection(link) {
  const button = h("button", { type: "button", class: "danger" }, "Delete this link…");
  button.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete ${link.short_url}? It will answer 404 from now on, and this cannot be undone.`,
      "Delete"))) return;
    try {
      await request(linkPath(link.slug), { method: "DELETE" });
    } catch (error) {
      notify(error.message);
      return;
    }
    notify(`Deleted /${link.slug}`);
    location.hash = "#/links";
  });
  return h("section", { class: "panel", "aria-labelledby": "delete-title" },
    h("h2", { id: "delete-title" }, "Delete"),
    h("p", {}, "The short URL stops working at once. Its statistics go with it."),
    button);
}
