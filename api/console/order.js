// An order: its status, amounts and payment, lines, shipments, holds (each open one with the
// decisions the signed-in role may take), timeline, and its workflow in the Temporal UI.

import { get, q } from "./api.js";
import { badge, h, money, problemBox, replace, table, when } from "./dom.js";
import { decisionButtons } from "./decide.js";
import { escalation, slaStatus } from "./exceptions.js";

export function temporalLink(config, workflowId) {
  if (!config.temporal_ui_url) return h("span", { class: "muted" }, `workflow ${workflowId}`);
  const base = config.temporal_ui_url.replace(/\/$/, "");
  const ns = encodeURIComponent(config.temporal_namespace);
  const query = encodeURIComponent(`WorkflowId="${workflowId}"`);
  return h(
    "a",
    { href: `${base}/namespaces/${ns}/workflows?query=${query}`, target: "_blank", rel: "noopener", class: "temporal" },
    `workflow ${workflowId} in the Temporal UI ↗`,
  );
}

export async function orderView(main, config, orderId) {
  replace(main, h("h1", {}, `Order ${orderId}`), h("p", { class: "muted" }, "loading…"));
  let order;
  let exceptions = [];
  try {
    order = await get(`/v1/orders/${encodeURIComponent(orderId)}`);
  } catch (err) {
    replace(main, h("h1", {}, `Order ${orderId}`), problemBox(err));
    return;
  }
  try {
    // The holds' exceptions, for their actions' data (a key that may not read queues sees the holds only).
    const page = await get(`/v1/exceptions${q({ subject_type: "order", subject_id: orderId, status: "open" })}`);
    exceptions = page.items;
  } catch {
    exceptions = [];
  }
  const refresh = () => orderView(main, config, orderId);
  const cur = order.currency;
  replace(
    main,
    h("h1", {}, `Order ${order.id} `, badge(order.status, `status-${order.status}`)),
    h(
      "dl",
      { class: "facts" },
      fact("channel", `${order.channel} · ${order.external_id}`),
      fact("customer", `${order.customer.id} ${order.customer.email}`),
      fact("ship to", address(order.ship_to)),
      fact("promise", order.promise),
      fact("total", money(order.amounts.total, cur)),
      fact("payment", `${order.payment.method} · ${order.payment.status} · captured ${money(order.payment.captured, cur)}`),
      fact("fraud score", order.fraud_score ?? "—"),
      fact("workflow", temporalLink(config, order.workflow_id)),
    ),
    h("h2", {}, "Lines"),
    table(
      ["line", "sku", "qty", "unit price", "reserved", "backordered", "shipped", "cancelled", "returned"],
      order.lines.map((l) =>
        h("tr", {}, [l.line, l.sku, l.qty, money(l.unit_price, cur), l.reserved, l.backordered, l.shipped, l.cancelled, l.returned].map(
          (v, i) => h("td", { class: i >= 2 ? "num" : "" }, v),
        )),
      ),
      { class: "grid lines" },
    ),
    h("h2", {}, "Shipments"),
    order.shipments.length
      ? table(
          ["shipment", "from", "status", "lines", "carrier", "tracking", "shipped"],
          order.shipments.map((s) =>
            h(
              "tr",
              {},
              h("td", {}, s.id),
              h("td", {}, s.kind === "dropship" ? `${s.location} (drop-ship ${s.supplier ?? ""})` : s.location),
              h("td", {}, badge(s.status, `status-${s.status}`)),
              h("td", {}, s.lines.map((l) => `${l.qty}× ${l.sku}`).join(", ")),
              h("td", {}, [s.carrier, s.service].filter(Boolean).join(" ") || "—"),
              h("td", {}, s.tracking || "—"),
              h("td", {}, when(s.shipped_at)),
            ),
          ),
          { class: "grid shipments" },
        )
      : h("p", { class: "muted" }, "No shipments yet."),
    h("h2", {}, "Holds"),
    order.holds.length ? holds(order, exceptions, config, refresh) : h("p", { class: "muted" }, "No holds."),
    h("h2", {}, "Timeline"),
    h(
      "ol",
      { class: "timeline" },
      order.timeline.map((e) =>
        h("li", {}, h("time", {}, when(e.at)), " ", h("strong", {}, e.event.replaceAll("_", " ")), " ", detail(e.detail)),
      ),
    ),
  );
}

function holds(order, exceptions, config, refresh) {
  const byId = new Map(exceptions.map((e) => [e.id, e]));
  return table(
    ["hold", "status", "opened", "SLA", "escalation", "decide"],
    order.holds.map((hold) => {
      const exception = byId.get(hold.exception_id);
      const sla = slaStatus({ ...hold, ...(exception || {}) }, config);
      return h(
        "tr",
        { dataset: { exception: hold.exception_id } },
        h("td", {}, hold.kind.replaceAll("_", " ")),
        h("td", {}, badge(hold.status, `status-${hold.status}`)),
        h("td", {}, when(hold.opened_at)),
        h("td", {}, hold.status === "open" ? badge(sla.label, sla.kind) : "—"),
        h("td", { class: "num" }, escalation({ ...hold }, config)),
        h("td", {}, exception ? decisionButtons(exception, config, refresh) : h("span", { class: "muted" }, hold.status === "open" ? "—" : "decided")),
      );
    }),
    { class: "grid holds" },
  );
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function address(a) {
  if (!a) return "—";
  return [a.name, a.line1, a.line2, a.city, a.region, a.postal_code, a.country].filter(Boolean).join(", ");
}

function detail(d) {
  const entries = Object.entries(d || {}).filter(([, v]) => v !== null && v !== "");
  if (!entries.length) return null;
  return h("span", { class: "muted" }, entries.map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · "));
}
