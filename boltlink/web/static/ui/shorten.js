// Shorten a URL: the form, and the short link with a copy button and its QR code.

import { ApiError, request } from "./api.js";
import { h, replace } from "./dom.js";
import { busy, clearErrors, control, field, formError, localToIso, showErrors, splitTags } from "./forms.js";
import { copyButton, qrCode } from "./widgets.js";

export function shortenPage(main) {
  const result = h("section", { class: "panel", "aria-labelledby": "result-title", hidden: true });
  const form = h("form", { class: "panel", novalidate: true },
    formError(),
    h("div", { class: "fields" },
      field({ name: "url", label: "Long URL", type: "url", required: true, wide: true, inputmode: "url",
              placeholder: "https://…", autocomplete: "off" }),
      field({ name: "slug", label: "Custom slug", hint: "Optional. Letters, digits, - and _.", autocomplete: "off",
              spellcheck: "false" }),
      field({ name: "title", label: "Title", hint: "Optional, for your own list." }),
      field({ name: "tags", label: "Tags", hint: "Optional, separated by spaces or commas." }),
      field({ name: "expires_at", label: "Expires", type: "datetime-local", hint: "Optional. Then it answers 410." }),
      field({ name: "max_clicks", label: "Maximum clicks", type: "number", min: 1, step: 1, inputmode: "numeric",
              hint: "Optional. Human clicks allowed in total." })),
    h("button", { type: "submit", class: "primary" }, "Shorten"));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      let link;
      try {
        link = await request("/api/v1/links", { method: "POST", json: draftOf(form) });
      } catch (error) {
        showErrors(form, error);
        return;
      }
      clearErrors(form);
      form.reset();
      showResult(result, link, form);
    });
  });
  main.append(h("h1", { tabindex: "-1" }, "Shorten a link"), result, form);
}

function draftOf(form) {
  const value = (name) => control(form, name).value.trim();
  const draft = { url: value("url"), tags: splitTags(value("tags")) };
  if (value("slug")) draft.slug = value("slug");
  if (value("title")) draft.title = value("title");
  if (value("expires_at")) draft.expires_at = localToIso(value("expires_at"));
  const maxClicks = control(form, "max_clicks");
  // A number field reads "" for text it can't parse; saying nothing would silently drop the limit.
  if (maxClicks.validity.badInput) {
    throw new ApiError(422, { errors: [{ field: "max_clicks", message: "enter a whole number" }] });
  }
  if (maxClicks.value !== "") draft.max_clicks = maxClicks.valueAsNumber;
  return draft;
}

function showResult(result, link, form) {
  const another = h("button", { type: "button", class: "button" }, "Shorten another");
  another.addEventListener("click", () => {
    result.hidden = true;
    control(form, "url").focus();
  });
  replace(result,
    h("h2", { id: "result-title", tabindex: "-1" }, "Your short link"),
    h("div", { class: "short-link" },
      h("div", { class: "details" },
        h("p", {}, h("a", { class: "short-url", href: link.short_url, "data-testid": "short-url" }, link.short_url)),
        h("p", { class: "muted small break" }, "to ", link.url),
        h("div", { class: "row" },
          copyButton(link.short_url, "Copy"),
          h("a", { class: "button", href: `#/links/${encodeURIComponent(link.slug)}` }, "Clicks and settings"),
          another)),
      qrCode(link)));
  result.hidden = false;
  result.querySelector("h2").focus();
}
