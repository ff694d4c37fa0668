// The public API, called with the signed-in key (sessionStorage: gone when the tab closes).

const KEY = "omniflow.console.key";
const ME = "omniflow.console.me";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  get me() {
    const raw = sessionStorage.getItem(ME);
    return raw ? JSON.parse(raw) : null;
  },
  save(key, me) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(ME, JSON.stringify(me));
  },
  clear() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ME);
  },
};

export async function call(method, path, { body, key, idempotencyKey } = {}) {
  const headers = { Authorization: `Bearer ${key ?? session.key}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data && typeof data === "object" ? data : { title: response.statusText, detail: text });
  }
  return { status: response.status, data, headers: response.headers };
}

export const get = (path) => call("GET", path).then((r) => r.data);

// Every page of a list route (up to `max` items).
export async function all(path, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

export function q(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const s = search.toString();
  return s ? `?${s}` : "";
}
