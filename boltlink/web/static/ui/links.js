// The list of links: search, filter by tag, sort, page through; each row leads to its link page.

import { request } from "./api.js";
import { h } from "./dom.js";
import { field } from "./forms.js";
import * as fmt from "./format.js";

const PAGE_SIZE = 20;
const SORTS = [
  ["-created_at", "Newest first"], ["created_at", "Oldest first"], ["-clicks", "Most clicks"],
  ["clicks", "Fewest clicks"], ["slug", "Slug A–Z"], ["url", "Target A–Z"],
];

export async function linksPage(main, params) {
  const filters = {
    q: params.get("q") ?? "",
    tag: params.get("tag") ?? "",
    sort: params.get("sort") ?? "-created_at",
    page: Math.max(1, Number.parseInt(params.get("page") ?? "1", 10) || 1),
  };
  const form = h("form", { class: "filters", role: "search" },
    field({ name: "q", label: "Search", type: "search", value: filters.q, hint: "In the slug, target or title." }),
    field({ name: "tag", label: "Tag", value: filters.tag, autocomplete: "off" }),
    field({ name: "sort", label: "Sort", type: "select", options: SORTS, value: filters.sort }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = listHash({ q: data.get("q").trim(), tag: data.get("tag").trim(), sort: data.get("sort"), page: 1 });
  });
  main.append(
    h("div", { class: "row spread" },
      h("h1", { tabindex: "-1" }, "Links"),
      h("div", { class: "row" }, h("a", { class: "button", href: "#/new" }, "Shorten a link"),
        h("a", { class: "button", href: "#/bulk" }, "Upload CSV"))),
    h("div", { class: "panel" }, form));

  const list = await request("/api/v1/links", { query: { ...filters, limit: PAGE_SIZE } });
  main.append(h("section", { class: "panel", "aria-label": "Results" }, results(list, filters)));
}

function results(list, filters) {
  const { items, pagination } = list;
  const filtered = filters.q || filters.tag;
  if (!items.length) {
    return h("p", { class: "empty" }, filtered ? "No link matches. " : "No links yet. ",
      filtered ? h("a", { href: "#/links" }, "Show all links") : h("a", { href: "#/new" }, "Shorten your first link"));
  }
  const caption = `${fmt.plural(pagination.total, "link")}` +
    (filters.q ? `, matching “${filters.q}”` : "") + (filters.tag ? `, tagged ${filters.tag}` : "");
  return [
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", {}, caption, filtered ? [" · ", h("a", { href: "#/links" }, "clear filters")] : null),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Link"), h("th", { scope: "col", class: "hide-narrow" }, "Tags"),
        h("th", { scope: "col", class: "num" }, "Clicks"), h("th", { scope: "col", class: "hide-narrow" }, "Created"))),
      h("tbody", {}, items.map(row)))),
    pager(pagination, filters),
  ];
}

function row(link) {
  return h("tr", { "data-slug": link.slug },
    h("td", { class: "link-cell" },
      h("a", { href: `#/links/${encodeURIComponent(link.slug)}` }, `/${link.slug}`),
      link.title ? h("div", { class: "break" }, link.title) : null,
      h("div", { class: "target" }, link.url)),
    h("td", { class: "hide-narrow" }, h("ul", { class: "tags", "aria-label": "Tags" }, link.tags.map((tag) =>
      h("li", {}, h("a", { class: "tag", href: listHash({ tag }), title: `Links tagged ${tag}` }, tag))))),
    h("td", { class: "num" }, fmt.count(link.clicks.total),
      h("div", { class: "small muted" }, fmt.plural(link.clicks.humans, "human"))),
    h("td", { class: "hide-narrow small" }, fmt.when(link.created_at)));
}

function pager({ page, pages }, filters) {
  if (pages <= 1) return null;
  return h("nav", { class: "pagination", "aria-label": "Pages" },
    page > 1 ? h("a", { class: "button", href: listHash({ ...filters, page: page - 1 }), rel: "prev" }, "Previous") : null,
    h("span", { "aria-current": "page" }, `Page ${page} of ${pages}`),
    page < pages ? h("a", { class: "button", href: listHash({ ...filters, page: page + 1 }), rel: "next" }, "Next") : null);
}

/** #/links?… with only the filters that are set, so the URL can be bookmarked and Back works. */
export function listHash(filters) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) {
    if (value && !(name === "page" && value === 1) && !(name === "sort" && value === "-created_at")) {
      query.set(name, value);
    }
  }
  const text = query.toString();
  return text ? `#/links?${text}` : "#/links";
}
