// The dashboard: reads the service's JSON every few seconds and draws it.

import { getJSON, message } from "./api.js";
import { el, replace, table, fmt, when, badge, modeColor } from "./dom.js";
import { lineChart } from "./plot.js";
import { refreshLive } from "./live.js";

const SOURCE_WORDS = { env: "environment", file: "rollout file", default: "default" };
const KNOWN_CRITERION_KEYS = new Set(["name", "threshold", "measured", "verdict", "detail", "unit", "low", "high", "interval", "runs_needed"]);
const state = { rollout: null, gate: null, running: null };

function sourceText(rollout, field) {
  const source = (rollout.sources || {})[field] || "default";
  const words = SOURCE_WORDS[source] || source;
  return source === "env" && rollout.env && rollout.env[field] ? `${words}: ${rollout.env[field]}` : words;
}

function renderRollout(answer) {
  if (!answer.ok) {
    replace("rollout", el("tr", {}, el("td", { class: "error", text: message(answer) })));
    state.rollout = null;
    return;
  }
  const r = answer.body;
  state.rollout = r;
  const rows = [
    ["stage", r.stage, "enabled"],
    ["enabled", fmt(r.enabled), "enabled"],
    ["percentage", `${r.percentage} %`, "percentage"],
    ["control mode", r.control, "control"],
    ["candidate mode", r.candidate, "candidate"],
    ["excluded users", (r.excluded_users || []).join(", ") || "none", "excluded_users"],
  ];
  if (r.shadow) rows.push(["shadow", `${r.shadow.percentage} % of control runs also run ${r.candidate} (≤ ${r.shadow.max_concurrent} at once)`, "shadow"]);
  for (const [key, value] of Object.entries(r)) {
    // settings added later (e.g. a shadow share) show up without a page change
    if (["enabled", "percentage", "excluded_users", "control", "candidate", "stage", "sources", "env",
      "last_change", "auto_rollback", "file"].includes(key) || typeof value === "object") continue;
    rows.push([key.replace(/_/g, " "), fmt(value), key]);
  }
  table("rollout", ["setting", "value", "from"], rows.map(([name, value, field]) =>
    el("tr", {}, el("th", { text: name }), el("td", { class: "value", text: value }),
      el("td", { class: "muted", text: name === "stage" ? "derived" : field === "shadow" ? "rollout file" : sourceText(r, field) }))));
  const last = r.last_change;
  replace("rollout-file", last ? `last change ${when(last.timestamp)} by ${last.actor}: ${last.action} (${last.reason})` : "no rollout change recorded yet");
}

function criterionValue(c) {
  let text = fmt(c.measured, 4);
  if (c.low !== null && c.low !== undefined && c.high !== null && c.high !== undefined) text += ` [${fmt(c.low, 3)}, ${fmt(c.high, 3)}]`;
  return c.unit && c.measured !== null && c.measured !== undefined ? `${text} ${c.unit}` : text;
}

function criterionDetail(c) {
  const parts = [];
  if (c.detail) parts.push(c.detail);
  for (const [key, value] of Object.entries(c)) {
    if (!KNOWN_CRITERION_KEYS.has(key) && value !== null && value !== undefined) parts.push(`${key.replace(/_/g, " ")}: ${fmt(value)}`);
  }
  return parts.join("; ");
}

function renderGate(answer) {
  if (!answer.ok) {
    state.gate = null;
    state.gateError = message(answer);
    replace("gate-verdict", el("span", { class: "error", text: message(answer) }));
    replace("gate");
    return;
  }
  const g = answer.body;
  state.gate = g;
  state.gateError = null;
  replace("gate-title", `Quality gate: ${g.title}`);
  replace("gate-verdict", badge(g.verdict), " ", g.note ? el("span", { class: "muted", text: g.note }) : null);
  replace("gate-window", `candidate ${g.candidate} vs control ${g.control}; runs started ${when(g.since)} – ${when(g.until)} (window ${g.window}); bounds are one-sided ${Math.round((g.confidence || 0.95) * 100)} %`);
  table("gate", ["criterion", "threshold", "estimate [bounds]", "verdict", "why"], (g.criteria || []).map((c) =>
    el("tr", { class: `criterion ${String(c.verdict).toLowerCase().replace(/\s+/g, "-")}` },
      el("td", { text: c.name }), el("td", { text: c.threshold }), el("td", { class: "value", text: criterionValue(c) }),
      el("td", {}, badge(c.verdict)), el("td", { class: "muted", text: criterionDetail(c) }))));
}

function renderHeadline() {
  const r = state.rollout, g = state.gate;
  if (r) {
    const text = !r.enabled || r.percentage === 0
      ? `Rollout off: every user gets the control mode ${r.control}.`
      : `Stage ${r.stage}: ${r.percentage} % of users get the candidate ${r.candidate}; the rest get ${r.control}.`;
    const shadow = r.shadow && r.shadow.percentage > 0 ? ` Shadow: ${r.shadow.percentage} % of the control's trainings also run ${r.candidate} for comparison.` : "";
    replace("headline-stage", text, (r.excluded_users || []).length ? ` ${r.excluded_users.length} user(s) excluded.` : "", shadow);
    const auto = r.auto_rollback || {};
    const banner = document.getElementById("banner");
    banner.hidden = !auto.rolled_back;
    if (auto.rolled_back && auto.last) banner.textContent = `Automatically rolled back at ${when(auto.last.timestamp)}: ${auto.last.reason}`;
  }
  if (g) {
    const blocking = (g.criteria || []).filter((c) => c.verdict !== "PASS").map((c) => c.name);
    let text;
    if (!g.next_stage) text = g.verdict === "PASS" ? "The last stage's gate passes: Phase 3 (removing the control mode) may begin." : "At the last stage; its gate does not pass yet, so the control mode must stay.";
    else if (g.verdict === "PASS") text = `May advance to ${g.next_stage}: every criterion passes (ktrdr rollout advance).`;
    else if (g.verdict === "FAIL") {
      const failing = (g.criteria || []).filter((c) => c.verdict === "FAIL").map((c) => c.name);
      text = `Must not advance to ${g.next_stage}: the gate fails on ${failing.join(", ")}.`;
    } else text = `May not advance to ${g.next_stage} yet: ${blocking.length} of ${(g.criteria || []).length} criteria lack data (${blocking.join(", ")}).`;
    replace("headline-gate", badge(g.verdict), " ", text);
  } else if (state.gateError) {
    replace("headline-gate", badge("UNKNOWN", "fail"), " ", state.gateError);
  }
  if (state.running !== null) replace("headline-live", state.running === 0 ? "No training running now." : `${state.running} training(s) running or queued now.`);
}

const PLOTS = [
  { key: "error_rate_pct", title: "Error rate", unit: "%", line: (t) => t.error_rate_pct, lineText: (v) => `gate < ${v} %` },
  { key: "duration_s", title: "Median duration", unit: "s" },
  { key: "cancel_p95_ms", title: "Cancellation latency p95", unit: "ms", line: (t) => t.cancel_p95_ms, lineText: (v) => `gate < ${v} ms` },
  { key: "progress_interval_s", title: "Median progress interval", unit: "s", band: (t) => t.progress_interval_s },
];

function renderSeries(answer) {
  if (!answer.ok) { replace("plots", el("p", { class: "error", text: message(answer) })); return; }
  const s = answer.body;
  replace("plots-title", `Per mode over the gate window (${s.window}, stage ${s.stage}; user traffic, bad input left out)`);
  const modes = Object.keys(s.modes);
  const xs = s.starts.map((iso) => new Date(iso).getTime() + s.bucket_seconds * 500);
  const span = s.bucket_seconds * s.starts.length;
  const xLabel = (x) => { const d = new Date(x); return span > 2 * 86400 ? `${d.getMonth() + 1}/${d.getDate()}` : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); };
  const charts = PLOTS.map((p) => {
    const t = s.thresholds || {};
    const line = p.line && p.line(t) !== null && p.line(t) !== undefined ? [{ value: p.line(t), text: p.lineText(p.line(t)) }] : [];
    const series = modes.map((mode, i) => ({ name: mode, color: modeColor(mode, i), values: s.modes[mode].map((b) => b[p.key]) }));
    const legend = modes.map((mode, i) => {
      const total = (s.totals || {})[mode] || {};
      const value = total[p.key];
      return el("span", { class: "legend-item" }, el("span", { class: "swatch", "data-mode": mode }), `${mode} ${fmt(value)}${value === null || value === undefined ? "" : " " + p.unit} (${total.runs || 0} runs)`);
    });
    const figure = el("figure", { class: "plot", "data-plot": p.key },
      el("figcaption", { text: `${p.title} (${p.unit})` }),
      lineChart({ title: p.title, unit: p.unit, xs, xLabel, series, lines: line, band: p.band ? p.band(t) : null, empty: "no runs in the window" }),
      el("div", { class: "legend" }, legend));
    figure.querySelectorAll(".swatch").forEach((sw, i) => { sw.style.background = modeColor(modes[i], i); });
    return figure;
  });
  replace("plots", charts);
}

function renderRuns(answer) {
  if (!answer.ok) { replace("runs", el("tr", {}, el("td", { class: "error", text: message(answer) }))); return; }
  table("runs", ["#", "started", "user", "strategy", "mode", "status", "duration", "val acc", "note"], answer.body.runs.map((r) =>
    el("tr", {}, el("td", { text: r.id }), el("td", { text: when(r.started_at) }), el("td", { text: r.user_id }),
      el("td", { text: r.strategy }), el("td", { class: "mode", text: r.mode }), el("td", {}, badge(r.status)),
      el("td", { text: r.duration_seconds === null ? "–" : `${fmt(r.duration_seconds)} s` }),
      el("td", { text: fmt(r.val_accuracy) }),
      el("td", { class: "muted", text: [r.shadow ? "shadow" : "", r.forced ? "forced" : "", r.fallback ? "fallback" : "", r.error || ""].filter(Boolean).join("; ") }))));
  if (!answer.body.runs.length) replace("runs", el("tr", {}, el("td", { class: "muted", text: "No run recorded yet." })));
}

function curvePlots(c) {
  const charts = [];
  for (const [metric, title] of [["loss", "Loss per epoch"], ["accuracy", "Accuracy per epoch"]]) {
    const series = [];
    let longest = 0;
    for (const role of ["control", "candidate"]) {
      const side = (c.curves || {})[role] || {};
      for (const split of ["val", "train"]) {
        const values = side[`${split}_${metric}`];
        if (!values) continue;
        longest = Math.max(longest, values.length);
        series.push({ name: `${role} ${side.mode || ""} ${split}`, color: modeColor(side.mode, role === "control" ? 0 : 1), values, dashed: split === "train", width: role === "control" ? 5 : 2 });
      }
    }
    const xs = Array.from({ length: longest }, (_, i) => i + 1);
    for (const s of series) while (s.values.length < longest) s.values = [...s.values, null];
    const modes = ["control", "candidate"].map((role) => ((c.curves || {})[role] || {}).mode);
    const legend = el("div", { class: "legend" }, modes.map((mode, i) => {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = modeColor(mode, i);
      return el("span", { class: "legend-item" }, swatch, `${i ? "candidate" : "control"} ${mode || "?"}`);
    }));
    charts.push(el("figure", { class: "plot" }, el("figcaption", { text: `${title} (solid: validation, dashed: train)` }),
      lineChart({ title, xs, xLabel: (x) => String(x), series, empty: "no curves in the report" }), legend));
  }
  return charts;
}

function renderComparisons(answer) {
  if (!answer.ok) { replace("comparisons", el("p", { class: "error", text: message(answer) })); return; }
  const items = answer.body.comparisons;
  if (!items.length) { replace("comparisons", el("p", { class: "muted", text: "No comparison recorded yet (ktrdr compare STRATEGY)." })); return; }
  replace("comparisons", items.map((c, index) => {
    const differing = (c.differences || []).map((d) => (d && d.field) || fmt(d)).join(", ");
    const head = el("summary", {}, badge(c.equivalent ? "equivalent" : "different", c.equivalent ? "pass" : "fail"),
      ` ${c.strategy}: ${c.control} vs ${c.candidate}, ${when(c.created_at)} (${c.source})`, differing ? el("span", { class: "muted", text: ` differing: ${differing}` }) : null);
    const body = c.curves ? el("div", { class: "plots" }, curvePlots(c)) : el("p", { class: "muted", text: "no report with curves for this comparison" });
    return el("details", { class: "comparison", open: index === 0 && Boolean(c.curves) }, head, body);
  }));
}

function renderAudit(answer) {
  if (!answer.ok) { replace("audit", el("tr", {}, el("td", { class: "error", text: message(answer) }))); return; }
  const rows = answer.body.entries.map((e) => el("tr", {}, el("td", { text: when(e.timestamp) }), el("td", { text: e.actor }),
    el("td", { text: e.action }), el("td", { class: "value", text: `${fmt(e.old)} → ${fmt(e.new)}` }), el("td", { class: "muted", text: e.reason })));
  if (!rows.length) rows.push(el("tr", {}, el("td", { class: "muted", text: "No rollout change recorded yet." })));
  table("audit", ["when", "who", "action", "change", "why"], rows);
}

async function refreshHealth() {
  const answer = await getJSON("/api/v1/health");
  const status = answer.body && answer.body.status ? answer.body.status : "unreachable";
  const node = badge(`health ${status}`, status === "ok" ? "pass" : status === "degraded" ? "wait" : "fail");
  node.id = "health";
  const problems = (answer.body && answer.body.problems) || [];
  if (problems.length) node.title = problems.join("\n");
  document.getElementById("health").replaceWith(node);
}

async function refreshSlow() {
  const [rollout, gate, series, runs, comparisons, audit] = await Promise.all([
    getJSON("/dashboard/api/rollout"), getJSON("/dashboard/api/gate"), getJSON("/dashboard/api/series"),
    getJSON("/dashboard/api/runs?limit=15"), getJSON("/dashboard/api/comparisons?limit=5"), getJSON("/dashboard/api/audit?limit=20")]);
  renderRollout(rollout);
  renderGate(gate);
  renderSeries(series);
  renderRuns(runs);
  renderComparisons(comparisons);
  renderAudit(audit);
  renderHeadline();
  await refreshHealth();
  replace("updated", `updated ${new Date().toLocaleTimeString()}`);
  document.body.dataset.loaded = "true";
}

let slowTimer = null;
function soon() { clearTimeout(slowTimer); slowTimer = setTimeout(loopSlow, 1500); }

async function loopSlow() {
  clearTimeout(slowTimer);
  await refreshSlow();
  slowTimer = setTimeout(loopSlow, 10000);
}

async function loopLive() {
  const running = await refreshLive(soon);
  if (running !== null) { state.running = running; renderHeadline(); }
  setTimeout(loopLive, 2000);
}

loopSlow();
loopLive();
