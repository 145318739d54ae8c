// Sign in with an API key: checked against the API, then kept in this browser until sign-out.

import { ApiError, request, session } from "./api.js";
import { h } from "./dom.js";
import { busy, control, field, formError, showErrors } from "./forms.js";

export function signInPage(main, params) {
  const form = h("form", { class: "panel narrow", novalidate: true },
    h("h1", { tabindex: "-1" }, "Sign in"),
    h("p", {}, "Paste an API key. Make one on the server with ", h("code", {}, "boltlink apikey create --name web-ui"), "."),
    formError(),
    field({ name: "key", label: "API key", type: "password", required: true, autocomplete: "off",
            spellcheck: "false", hint: "Kept in this browser until you sign out." }),
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  if (params.get("reason")) form.querySelector(".form-error").textContent = params.get("reason");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = control(form, "key").value.trim();
    busy(form, async () => {
      try {
        if (!key) throw new ApiError(422, { errors: [{ field: "key", message: "paste your API key" }] });
        await checkKey(key);
      } catch (error) {
        showErrors(form, error);
        return;
      }
      session.save(key);
      location.hash = "#/links";
    });
  });
  main.append(form);
}

/** Any call the UI needs proves the key: listing one link needs links:read, which every page uses. */
async function checkKey(key) {
  try {
    await request("/api/v1/links", { query: { limit: 1 }, key });
  } catch (error) {
    if (error.status === 401) throw new ApiError(401, { errors: [{ field: "key", message: "this API key is not valid" }] });
    if (error.status === 403) {
      throw new ApiError(403, { errors: [{ field: "key", message: "this key lacks the links:read scope the UI needs" }] });
    }
    throw error;
  }
}
