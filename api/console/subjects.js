// What an exception is about, and where the console shows it: an order has its own page, a
// channel its publishing row; the other subjects are shown as the API answers them.

import { get } from "./api.js";
import { h, problemBox, replace } from "./dom.js";

export const READS = {
  order: (id) => `/v1/orders/${encodeURIComponent(id)}`,
  purchase_order: (id) => `/v1/purchase-orders/${encodeURIComponent(id)}`,
  return: (id) => `/v1/returns/${encodeURIComponent(id)}`,
  transfer: (id) => `/v1/transfers/${encodeURIComponent(id)}`,
  cycle_count: (id) => `/v1/cycle-counts/${encodeURIComponent(id)}`,
  channel: (id) => `/v1/channels/${encodeURIComponent(id)}`,
};

export function subjectHref(subject) {
  if (subject.type === "order") return `#/orders/${encodeURIComponent(subject.id)}`;
  if (subject.type === "channel") return `#/channels`;
  return `#/subject/${encodeURIComponent(subject.type)}/${encodeURIComponent(subject.id)}`;
}

export function subjectLink(subject) {
  return h("a", { href: subjectHref(subject) }, `${subject.type.replaceAll("_", " ")} ${subject.id}`);
}

export async function subjectView(main, type, id) {
  const title = h("h1", {}, `${type.replaceAll("_", " ")} ${id}`);
  const read = READS[type];
  if (!read) {
    replace(main, title, h("p", {}, "The console has no page for this kind of subject."));
    return;
  }
  try {
    const record = await get(read(id));
    replace(main, title, h("pre", { class: "record" }, JSON.stringify(record, null, 2)));
  } catch (err) {
    replace(main, title, problemBox(err));
  }
}
