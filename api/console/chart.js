// A line chart in SVG, drawn here (no chart library): one line a series over consecutive
// windows; a null value is a gap (no data in that window), not a zero.

const NS = "http://www.w3.org/2000/svg";
const W = 320;
const H = 120;
const PAD = { left: 44, right: 8, top: 8, bottom: 22 };
const COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

// series: [{name, values: [number|null]}]; labels: one a window; format: value → text.
export function lineChart(series, labels, format) {
  const values = series.flatMap((s) => s.values).filter((v) => typeof v === "number");
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  let lo = Math.min(0, ...values);
  let hi = Math.max(...values);
  if (hi === lo) hi = lo + 1;
  const x = (i) => PAD.left + (labels.length === 1 ? 0.5 : i / (labels.length - 1)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  for (const tick of [lo, (lo + hi) / 2, hi]) {
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(tick), y2: y(tick), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 4, y: y(tick) + 3, "text-anchor": "end", class: "tick" }, format(tick)));
  }
  for (const i of [0, Math.floor((labels.length - 1) / 2), labels.length - 1]) {
    root.append(svg("text", { x: x(i), y: H - 6, "text-anchor": "middle", class: "tick" }, labels[i]));
  }
  series.forEach((s, n) => {
    const color = COLORS[n % COLORS.length];
    let d = "";
    s.values.forEach((v, i) => {
      if (typeof v !== "number") return;
      const joined = i > 0 && typeof s.values[i - 1] === "number";
      d += `${joined ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
    });
    if (d) root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" }));
    s.values.forEach((v, i) => {
      if (typeof v !== "number") return;
      const dot = svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: color, class: "point" });
      dot.append(svg("title", {}, `${s.name} · ${labels[i]}: ${format(v)}`));
      root.append(dot);
    });
  });
  return root;
}
