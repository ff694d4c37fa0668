// The exception queues: every open exception, one queue a kind, each sorted by priority (the
// API's order: money at risk × escalation × urgency), with its age, SLA status, escalation
// level, subject and the decisions the signed-in role may take.

import { all, q } from "./api.js";
import { badge, duration, h, money, problemBox, replace, table, when } from "./dom.js";
import { decisionButtons } from "./decide.js";
import { subjectLink } from "./subjects.js";

// ok / due soon / breached. The SLA is the time to the next escalation (domain/exceptions.py):
// past due_at, or escalated at least once, it was breached; within the last `due_soon_fraction`
// of the kind's SLA it is due soon.
export function slaStatus(exception, config, now = Date.now()) {
  const due = Date.parse(exception.due_at);
  const left = due - now;
  if (exception.status !== "open") return { label: exception.status, kind: "muted" };
  if (left <= 0) return { label: `breached ${duration(left)} ago`, kind: "breached" };
  if (exception.escalation_level > 0) return { label: `breached · due in ${duration(left)}`, kind: "breached" };
  const sla = (config.exception_policies[exception.kind]?.sla_seconds ?? 86400) * 1000;
  if (left < sla * config.due_soon_fraction) return { label: `due soon · ${duration(left)}`, kind: "soon" };
  return { label: `ok · due in ${duration(left)}`, kind: "ok" };
}

export function escalation(exception, config) {
  const max = config.exception_policies[exception.kind]?.max_escalations;
  return max === undefined ? String(exception.escalation_level) : `${exception.escalation_level} of ${max}`;
}

export async function exceptionsView(main, config, params) {
  const kind = params.get("kind") || "";
  replace(main, h("h1", {}, "Exceptions"), h("p", { class: "muted" }, "loading…"));
  let items;
  try {
    items = await all(`/v1/exceptions${q({ status: "open", sort: "priority" })}`);
  } catch (err) {
    replace(main, h("h1", {}, "Exceptions"), problemBox(err));
    return;
  }
  const byKind = new Map();
  for (const item of items) {
    if (!byKind.has(item.kind)) byKind.set(item.kind, []);
    byKind.get(item.kind).push(item);
  }
  const refresh = () => exceptionsView(main, config, params);
  const kinds = [...byKind.keys()]; // in the order of each queue's top priority
  const shown = kind ? kinds.filter((k) => k === kind) : kinds;
  replace(
    main,
    h("h1", {}, "Exceptions"),
    h(
      "nav",
      { class: "kinds" },
      h("a", { href: "#/exceptions", class: kind ? "" : "current" }, `all (${items.length})`),
      kinds.map((k) =>
        h("a", { href: `#/exceptions?kind=${k}`, class: k === kind ? "current" : "" }, `${k.replaceAll("_", " ")} (${byKind.get(k).length})`),
      ),
    ),
    items.length === 0 ? h("p", { class: "empty" }, "No open exceptions: nothing is waiting for a person.") : null,
    shown.map((k) => queue(k, byKind.get(k), config, refresh)),
  );
}

function queue(kind, items, config, refresh) {
  const now = Date.now();
  return h(
    "section",
    { class: "queue", dataset: { kind } },
    h("h2", {}, kind.replaceAll("_", " "), " ", h("span", { class: "count" }, String(items.length))),
    table(
      ["priority", "subject", "at risk", "age", "SLA", "escalation", "details", "decide"],
      items.map((e) => {
        const sla = slaStatus(e, config, now);
        return h(
          "tr",
          { dataset: { exception: e.id } },
          h("td", { class: "num" }, e.priority.toFixed(2)),
          h("td", {}, subjectLink(e.subject)),
          h("td", { class: "num" }, money(e.value_at_risk)),
          h("td", { title: `opened ${when(e.opened_at)}` }, duration(now - Date.parse(e.opened_at))),
          h("td", { title: `due ${when(e.due_at)}` }, badge(sla.label, sla.kind)),
          h("td", { class: "num" }, escalation(e, config)),
          h("td", { class: "details" }, summary(e.details)),
          h("td", {}, decisionButtons(e, config, refresh)),
        );
      }),
      { class: "grid" },
    ),
  );
}

// The exception's details in one line or a few (problems, reasons, lines).
export function summary(details) {
  const parts = [];
  for (const [name, value] of Object.entries(details || {})) {
    if (value === null || value === "" || (Array.isArray(value) && value.length === 0)) continue;
    parts.push(`${name.replaceAll("_", " ")}: ${brief(value)}`);
  }
  return parts.slice(0, 4).join(" · ");
}

function brief(value) {
  if (Array.isArray(value)) return value.map(brief).join(", ");
  if (value && typeof value === "object") {
    if (value.message) return value.message;
    return Object.entries(value).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  }
  return String(value);
}
