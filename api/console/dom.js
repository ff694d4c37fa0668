// Small DOM helpers. Every value from the API goes in as text (textContent or an attribute),
// never as HTML: a SKU or a note cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headers.map((title) => h("th", {}, title)))),
    h("tbody", {}, rows),
  );
}

export function money(minor, currency = "") {
  if (minor === null || minor === undefined) return "—";
  const major = (Number(minor) / 100).toFixed(2);
  return currency ? `${major} ${currency}` : major;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

// "3d 4h", "2h 5m", "45s": how long, roughly, in the two largest units.
export function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const parts = [
    [Math.floor(s / 86400), "d"],
    [Math.floor((s % 86400) / 3600), "h"],
    [Math.floor((s % 3600) / 60), "m"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return "0s";
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n}${unit}`)
    .join(" ");
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}`.trim() }, text);
}

// A random Idempotency-Key (crypto.randomUUID needs a secure context; this does not).
export function newKey(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// A refusal as the API answered it (RFC 9457): status, title, detail and each field error.
export function problemBox(err) {
  const problem = err.problem || { title: "The API could not be reached", detail: String(err.message || err) };
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("strong", {}, `${err.status ?? ""} ${problem.title || ""}`.trim()),
    problem.detail ? h("p", { class: "detail" }, problem.detail) : null,
    problem.errors?.length
      ? h("ul", {}, problem.errors.map((e) => h("li", {}, `${(e.loc || []).join(".")}: ${e.msg}`)))
      : null,
    problem.type ? h("code", { class: "muted" }, problem.type) : null,
  );
}
