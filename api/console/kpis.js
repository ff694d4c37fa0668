// The KPIs as charts over time: GET /v1/reports/kpis for each of consecutive windows (the
// last 14 days, a day each, or the last 24 hours, an hour each), a line a KPI's headline
// value (and its p50 / p95 where it has them; margin_by_channel, whose value is rows: a line
// a channel's margin). A KPI with no data in any window says so.

import { all, get, q } from "./api.js";
import { duration, h, problemBox, replace } from "./dom.js";
import { lineChart } from "./chart.js";

const RANGES = {
  days: { count: 14, step: 86_400_000, label: (d) => d.toISOString().slice(5, 10), title: "last 14 days, by day" },
  hours: { count: 24, step: 3_600_000, label: (d) => d.toISOString().slice(11, 16), title: "last 24 hours, by hour" },
};
const PARALLEL = 4; // requests at once

export function windows(range, now = Date.now()) {
  const { count, step } = RANGES[range];
  const end = Math.ceil(now / step) * step; // whole days / hours (UTC), the last one still filling
  return Array.from({ length: count }, (_, i) => {
    const from = new Date(end - (count - i) * step);
    return { from, to: new Date(from.getTime() + step) };
  });
}

export async function kpisView(main, params) {
  const range = RANGES[params.get("range")] ? params.get("range") : "days";
  const channel = params.get("channel") || "";
  const heading = h("h1", {}, "KPIs");
  replace(main, heading, h("p", { class: "muted" }, "loading…"));
  let channels = [];
  try {
    channels = await all("/v1/channels");
  } catch {
    channels = [];
  }
  const spans = windows(range);
  let reports;
  try {
    reports = await inBatches(spans, (w) =>
      get(`/v1/reports/kpis${q({ from: w.from.toISOString(), to: w.to.toISOString(), channel })}`),
    );
  } catch (err) {
    replace(main, heading, controls(range, channel, channels), problemBox(err));
    return;
  }
  const labels = spans.map((w) => RANGES[range].label(w.from));
  const names = Object.keys(reports.at(-1).kpis);
  replace(
    main,
    heading,
    controls(range, channel, channels),
    h("p", { class: "muted" }, `${RANGES[range].title}${channel ? ` · channel ${channel}` : ""}`),
    h("div", { class: "kpis" }, names.map((name) => card(name, reports.map((r) => r.kpis[name]), labels))),
  );
}

async function inBatches(items, fetchOne) {
  const out = [];
  for (let i = 0; i < items.length; i += PARALLEL) {
    out.push(...(await Promise.all(items.slice(i, i + PARALLEL).map(fetchOne))));
  }
  return out;
}

function controls(range, channel, channels) {
  const link = (r, c, text, current) => h("a", { href: `#/kpis${q({ range: r, channel: c })}`, class: current ? "current" : "" }, text);
  return h(
    "nav",
    { class: "kinds" },
    link("days", channel, "14 days", range === "days"),
    link("hours", channel, "24 hours", range === "hours"),
    h("span", { class: "sep" }, "·"),
    link(range, "", "all channels", !channel),
    channels.map((c) => link(range, c.code, c.code, channel === c.code)),
  );
}

function card(name, points, labels) {
  const latest = points.at(-1) || {};
  const rows = points.some((p) => Array.isArray(p?.value));
  const series = rows ? rowSeries(points) : headlineSeries(points);
  const format = formatter(latest.unit);
  const hasData = series.some((s) => s.values.some((v) => v !== null));
  return h(
    "figure",
    { class: "kpi", dataset: { kpi: name } },
    h("figcaption", {}, h("strong", {}, name.replaceAll("_", " ")), " ",
      h("span", { class: "latest" }, hasData ? latestText(series, format, rows) : "no data yet")),
    hasData ? lineChart(series, labels, format) : h("div", { class: "nodata" }, "no data yet"),
    series.length > 1 || (rows && hasData) ? h("p", { class: "legend" }, series.map((s, i) => h("span", { class: `key k${i}` }, s.name))) : null,
    h("p", { class: "definition" }, latest.definition || ""),
  );
}

// A headline value a window, and its p50 / p95 where the KPI has them.
function headlineSeries(points) {
  const series = [{ name: "value", values: points.map((p) => num(p?.value)) }];
  for (const extra of ["p50", "p95"]) {
    if (points.some((p) => typeof p?.[extra] === "number")) series.push({ name: extra, values: points.map((p) => num(p?.[extra])) });
  }
  return series;
}

// A KPI whose value is rows (margin_by_channel: one a channel and currency): a line a row's
// margin, named by its channel and currency; a window without that row is a gap.
function rowSeries(points) {
  const key = (row) => `${row.channel ?? "no channel"} ${row.currency}`;
  const rowsOf = (p) => (Array.isArray(p?.value) ? p.value : []);
  const keys = [...new Set(points.flatMap((p) => rowsOf(p).map(key)))].sort();
  return keys.map((k) => ({ name: k, values: points.map((p) => num(rowsOf(p).find((row) => key(row) === k)?.margin)) }));
}

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function latestText(series, format, rows) {
  const lastOf = (s) => s.values.findLast((v) => v !== null);
  if (rows) return series.map((s) => `${s.name} ${format(lastOf(s))}`).join(" · ");
  const last = lastOf(series[0]);
  return last === undefined ? "no data in the last window" : format(last);
}

function formatter(unit) {
  switch (unit) {
    case "ratio":
      return (v) => `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)}%`;
    case "seconds":
      return (v) => (v === 0 ? "0" : duration(v * 1000));
    case "milliseconds":
      return (v) => `${Math.round(v)} ms`;
    case "minor currency units":
      return (v) => (v / 100).toFixed(0);
    default:
      return (v) => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  }
}
