// The API as the page calls it. The token is sent once (POST /session) and then lives only in an
// HttpOnly cookie that no script can read; every request carries the CSRF header the server wants
// on changes made with that cookie.

export const API = "/api/v1";
const CSRF = { "X-Accessgw-Csrf": "1" };

export class ApiFailure extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

let onExpired = () => {};
/** Called when a request answers 401 after sign-in: the token was revoked or rotated. */
export function whenExpired(fn) {
  onExpired = fn;
}

export function apiUrl(path, query) {
  const params = query instanceof URLSearchParams ? query : new URLSearchParams(query || {});
  const qs = params.toString();
  return API + path + (qs ? "?" + qs : "");
}

/** call("GET", "/entries", {query: {limit: 50}}) · {json: {...}} · {form: FormData} · {raw: true} */
export async function call(method, path, opts = {}) {
  const headers = { ...CSRF };
  let body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.form !== undefined) {
    body = opts.form; // FormData: the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(apiUrl(path, opts.query), {
      method, headers, body, cache: "no-store", credentials: "same-origin",
    });
  } catch (e) {
    throw new ApiFailure(0, "network", e && e.message ? e.message : String(e), null);
  }
  if (response.ok) {
    if (opts.raw) return response;
    return response.status === 204 ? null : response.json();
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch (e) { /* not JSON */ }
  const error = payload && payload.error ? payload.error : {};
  const failure = new ApiFailure(response.status, error.code || "http_" + response.status,
    error.message || response.statusText || "HTTP " + response.status, payload);
  if (response.status === 401 && !opts.signingIn) {
    failure.handled = true;
    onExpired();
  }
  throw failure;
}

export async function signIn(token) {
  await call("POST", "/session", { json: { token }, signingIn: true });
  return call("GET", "/me", { signingIn: true });
}

/** Who the cookie belongs to, or null when there is no valid session. */
export async function currentUser() {
  try {
    return await call("GET", "/me", { signingIn: true });
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signOut() {
  try {
    await call("DELETE", "/session", { signingIn: true });
  } catch (e) { /* the page forgets the user anyway */ }
}
