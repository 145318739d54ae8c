// The only door to the server: the public /api/v1 endpoints with the user's
// API key, so the UI can do nothing the API does not allow that key to do.

const STORAGE_KEY = "boltlink.apiKey";

/** The API key, kept in this browser until sign-out. */
export const session = {
  key: () => localStorage.getItem(STORAGE_KEY),
  save: (key) => localStorage.setItem(STORAGE_KEY, key),
  clear: () => localStorage.removeItem(STORAGE_KEY),
};

/** An RFC 9457 problem from the API (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** field name -> message, from the problem's "errors" list; "tags.0" counts as "tags". */
  get fields() {
    const fields = {};
    for (const error of this.problem.errors ?? []) {
      const name = String(error.field).split(".")[0];
      fields[name] = fields[name] ? `${fields[name]}; ${error.message}` : error.message;
    }
    return fields;
  }
}

/**
 * Call the API. json: a body sent as JSON; body: FormData or text as is.
 * Returns the parsed JSON (null for 204), or the Response itself with raw: true.
 */
export async function request(path, { method = "GET", query, json, body, key = session.key(), raw = false } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "omit", cache: "no-store" });
  } catch {
    throw new ApiError(0, { title: "Network error", detail: "The server did not answer. Check the connection and try again." });
  }
  if (response.ok) {
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
  const problem = await response.json().catch(() => ({ title: response.statusText, detail: `HTTP ${response.status}` }));
  const error = new ApiError(response.status, problem);
  if (response.status === 401 && key && key === session.key()) {
    // The stored key was revoked meanwhile: app.js signs out and says why.
    window.dispatchEvent(new CustomEvent("boltlink:unauthorized", { detail: error.message }));
  }
  throw error;
}

/** The path of a link's API resource; slugs are URL-safe already, encoding is belt and braces. */
export function linkPath(slug, rest = "") {
  return `/api/v1/links/${encodeURIComponent(slug)}${rest}`;
}
