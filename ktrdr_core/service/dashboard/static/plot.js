// Line charts as inline SVG, drawn here: no library, nothing inline for the CSP.

const NS = "http://www.w3.org/2000/svg";
const W = 360, H = 190, M = { left: 46, right: 10, top: 10, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceTicks(low, high, count = 4) {
  if (low === high) { high = low + 1; }
  const raw = (high - low) / count;
  const step = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * step).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.floor(low / nice) * nice; t <= high + nice * 1e-9; t += nice) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function label(value) {
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(1);
  return String(Number(value.toPrecision(3)));
}

/**
 * A line chart. series: [{name, color, values: [number|null], dashed}], xs: numbers
 * (one per value), xLabel(x) -> text; lines: [{value, text}] reference lines;
 * band: [low, high] a shaded target range. Gaps (null) break the line.
 */
export function lineChart({ title, unit = "", xs, xLabel = label, series, lines = [], band = null, empty = "no data" }) {
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && Number.isFinite(v));
  const refs = [...lines.map((l) => l.value), ...(band || [])].filter((v) => v !== null && Number.isFinite(v));
  if (!values.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, empty));
    return root;
  }
  let low = Math.min(0, ...values, ...refs), high = Math.max(...values, ...refs);
  if (high === low) high = low + 1;
  high += (high - low) * 0.08;
  const xMin = Math.min(...xs), xMax = Math.max(...xs);
  const px = (x) => M.left + (xMax === xMin ? 0.5 : (x - xMin) / (xMax - xMin)) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - (y - low) / (high - low) * (H - M.top - M.bottom);

  if (band) root.append(svg("rect", { x: M.left, width: W - M.left - M.right, y: py(band[1]),
    height: Math.max(0, py(band[0]) - py(band[1])), class: "band" }));
  for (const tick of niceTicks(low, high)) {
    if (tick > high) continue;
    root.append(svg("line", { x1: M.left, x2: W - M.right, y1: py(tick), y2: py(tick), class: "gridline" }));
    root.append(svg("text", { x: M.left - 4, y: py(tick) + 3, "text-anchor": "end", class: "tick" }, label(tick)));
  }
  const xTicks = xs.length <= 6 ? xs : [xs[0], xs[Math.floor(xs.length / 3)], xs[Math.floor(2 * xs.length / 3)], xs[xs.length - 1]];
  for (const x of xTicks) {
    root.append(svg("text", { x: px(x), y: H - M.bottom + 14, "text-anchor": "middle", class: "tick" }, xLabel(x)));
  }
  for (const line of lines) {
    if (line.value === null || !Number.isFinite(line.value)) continue;
    root.append(svg("line", { x1: M.left, x2: W - M.right, y1: py(line.value), y2: py(line.value), class: "threshold" }));
    root.append(svg("text", { x: W - M.right - 2, y: py(line.value) - 3, "text-anchor": "end", class: "threshold-label" }, line.text));
  }
  for (const s of series) {
    let path = "", pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      path += `${pen ? "L" : "M"}${px(xs[i]).toFixed(1)},${py(v).toFixed(1)} `;
      pen = true;
    });
    if (path) root.append(svg("path", { d: path, stroke: s.color, fill: "none", "stroke-width": s.width || 2, "stroke-opacity": s.width > 2 ? 0.45 : 1,
      "stroke-dasharray": s.dashed ? "4 3" : "none", class: "series" }));
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      const dot = svg("circle", { cx: px(xs[i]), cy: py(v), r: 2.6, fill: s.color });
      dot.append(svg("title", {}, `${s.name}: ${label(v)}${unit ? " " + unit : ""}`));
      root.append(dot);
    });
  }
  root.append(svg("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }));
  root.append(svg("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  return root;
}
