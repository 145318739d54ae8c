// Labelled form fields with a hint and an error slot each, and the mapping of
// the API's 422/409 field errors onto them.

import { h } from "./dom.js";

let counter = 0;

/**
 * A labelled control. Options: name, label, type (or "select" with options:
 * [[value, text]], or "textarea"), hint, required, wide, and any attribute.
 */
export function field({ name, label, type = "text", hint, required, wide, options, ...attrs }) {
  const id = `field-${name}-${++counter}`;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  let control;
  if (type === "select") {
    control = h("select", attrs, options.map(([value, text]) => h("option", { value }, text)));
  } else if (type === "textarea") {
    control = h("textarea", attrs);
  } else {
    control = h("input", { type, ...attrs });
  }
  control.id = id;
  control.name = name;
  if (required) control.setAttribute("aria-required", "true");
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h("div", { class: wide ? "field wide" : "field", "data-field": name },
    h("label", { for: id }, label, required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    control,
    h("p", { class: "field-error", id: errorId }));
}

/** Where errors that belong to no field go; focused when it says something. */
export function formError() {
  return h("p", { class: "form-error", role: "alert", tabindex: "-1" });
}

export function control(form, name) {
  return form.querySelector(`[data-field="${name}"] :is(input, select, textarea)`);
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Show an ApiError: each field's message under that field (aliases rename API fields), the rest on top. */
export function showErrors(form, error, aliases = {}) {
  clearErrors(form);
  const unplaced = [];
  let first = null;
  for (const [name, message] of Object.entries(error.fields ?? {})) {
    const wrapper = form.querySelector(`[data-field="${aliases[name] ?? name}"]`);
    if (!wrapper) {
      unplaced.push(`${name}: ${message}`);
      continue;
    }
    wrapper.querySelector(".field-error").textContent = sentence(message);
    const input = wrapper.querySelector("input, select, textarea");
    input.setAttribute("aria-invalid", "true");
    first ??= input;
  }
  const summary = form.querySelector(".form-error");
  if (unplaced.length || !first) summary.textContent = unplaced.length ? unplaced.join("; ") : error.message;
  (first ?? summary).focus();
}

function sentence(message) {
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** Disable the submit button while a request runs, so a double click sends one request. */
export async function busy(form, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

/** "a b, c" -> ["a", "b", "c"] */
export function splitTags(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** A datetime-local value (the browser's time zone) as ISO 8601 UTC, or null when empty. */
export function localToIso(value) {
  return value ? new Date(value).toISOString() : null;
}

/** ISO 8601 -> a datetime-local value in the browser's time zone. */
export function isoToLocal(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
