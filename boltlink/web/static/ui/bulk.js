// Bulk upload: a CSV file through POST /api/v1/links/bulk, and the API's answer for every row.

import { request } from "./api.js";
import { h, replace } from "./dom.js";
import { busy, field, formError, showErrors } from "./forms.js";
import * as fmt from "./format.js";

export function bulkPage(main) {
  const results = h("section", { class: "panel", "aria-labelledby": "bulk-results", hidden: true });
  const form = h("form", { class: "panel", novalidate: true },
    formError(),
    field({ name: "file", label: "CSV file", type: "file", accept: ".csv,text/csv", required: true,
            hint: "A header row names the columns: url (required), slug, title, tags (separated by spaces), " +
                  "expires_at, max_clicks, redirect_status, forward_query. At most 1,000 rows." }),
    h("button", { type: "submit", class: "primary" }, "Upload"));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      const data = new FormData(form);
      let answer;
      try {
        answer = await request("/api/v1/links/bulk", { method: "POST", body: data });
      } catch (error) {
        showErrors(form, error, { body: "file" });
        return;
      }
      showResults(results, answer);
    });
  });
  main.append(h("h1", { tabindex: "-1" }, "Upload links from a CSV file"), form, results);
}

function showResults(section, { created, failed, results }) {
  replace(section,
    h("h2", { id: "bulk-results", tabindex: "-1" }, `${fmt.plural(created, "link")} created, ${fmt.count(failed)} failed`),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "Row"), h("th", { scope: "col" }, "Result"),
        h("th", { scope: "col" }, "Details"))),
      h("tbody", {}, results.map((row) => h("tr", { "data-row": row.row },
        h("td", { class: "num" }, row.row),
        row.status === "created"
          ? [h("td", { class: "status-ok" }, "Created"),
            h("td", { class: "break" }, h("a", { href: `#/links/${encodeURIComponent(row.link.slug)}` }, row.link.short_url))]
          : [h("td", { class: "status-error" }, "Error"), h("td", { class: "break" }, problemText(row.error))]))))));
  section.hidden = false;
  section.querySelector("h2").focus();
}

function problemText(problem) {
  const fields = problem.errors ?? [];
  return fields.length ? fields.map((e) => `${e.field}: ${e.message}`).join("; ") : problem.detail;
}
