// Small DOM helpers: elements are built with textContent only, so names and
// messages from the server can never become markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(target, ...children) {
  const node = typeof target === "string" ? document.getElementById(target) : target;
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

export function table(id, headers, rows) {
  return replace(id,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value)) return String(value);
    return Number(value.toPrecision(digits)).toString();
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function verdictClass(verdict) {
  const v = String(verdict || "").toUpperCase();
  if (v === "PASS" || v === "COMPLETED" || v === "SUCCESS" || v === "OK") return "pass";
  if (v === "FAIL" || v === "FAILED" || v === "ERROR" || v === "UNHEALTHY") return "fail";
  return "wait";
}

export function badge(text, cls = verdictClass(text)) {
  return el("span", { class: `badge ${cls}`, text });
}

const PALETTE = { legacy: "#2f6fb0", unified: "#e07b1a", cloud: "#2e9a4e" };
const EXTRA = ["#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];

export function modeColor(mode, index = 0) {
  return PALETTE[mode] || EXTRA[index % EXTRA.length];
}
