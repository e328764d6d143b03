// Trainings running now: one card each, its bar fed by the training's SSE stream,
// and a cancel button that asks for the API token (kept in sessionStorage: this tab only).

import { getJSON, post, message } from "./api.js";
import { el, replace, fmt, when, badge } from "./dom.js";

const TOKEN_KEY = "ktrdr-api-token";
const ACTIVE = new Set(["queued", "running"]);
const cards = new Map();     // id -> {card, bar, text, status, source, note}
let onChange = () => {};

function progressText(p) {
  if (!p || p.epoch === undefined || p.epoch === null) return "waiting for the first progress update";
  const parts = [`epoch ${p.epoch}/${p.total_epochs}`];
  if (p.batch) parts.push(`batch ${p.batch}/${p.total_batches}`);
  const m = p.metrics || {};
  for (const key of ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]) {
    if (typeof m[key] === "number") parts.push(`${key.replace("_", " ")} ${fmt(m[key], 3)}`);
  }
  return parts.join(" · ");
}

function show(entry, progress) {
  const percent = progress && typeof progress.percent === "number" ? progress.percent : null;
  if (percent === null) entry.bar.removeAttribute("value");
  else entry.bar.value = percent;
  entry.percent.textContent = percent === null ? "" : `${percent.toFixed(1)} %`;
  entry.text.textContent = progressText(progress);
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" && input.value.trim() ? input.value.trim() : null);
    }, { once: true });
    dialog.showModal();
  });
}

async function cancel(id, entry) {
  let token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) token = await askToken();
  if (!token) return;
  entry.note.textContent = "cancelling…";
  entry.note.className = "note muted";
  const answer = await post(`/dashboard/api/trainings/${encodeURIComponent(id)}/cancel`, token);
  if (answer.ok) {
    sessionStorage.setItem(TOKEN_KEY, token);
    // the stream's "end" may arrive before this answer: then the card already says how it ended
    if (!entry.ended) entry.note.textContent = "cancel requested: it stops at its next batch";
    return;
  }
  if (answer.status === 401 || answer.status === 403) sessionStorage.removeItem(TOKEN_KEY);
  entry.note.textContent = `not cancelled: ${message(answer)}`;
  entry.note.className = "note error";
}

function follow(training, entry) {
  const source = new EventSource(training.links.events);
  entry.source = source;
  source.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    entry.status.replaceWith(entry.status = badge("running"));
    show(entry, data);
  });
  source.addEventListener("end", (event) => {
    const data = JSON.parse(event.data);
    source.close();
    entry.ended = true;
    entry.status.replaceWith(entry.status = badge(data.status));
    entry.card.classList.add("ended");
    entry.cancel.disabled = true;
    entry.note.textContent = `ended ${data.status}${data.error ? ": " + data.error : ""}`;
    entry.note.className = data.status === "failed" ? "note error" : "note muted";
    onChange();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) entry.note.textContent = "progress stream closed";
  });
}

function card(training) {
  const entry = {};
  entry.bar = el("progress", { max: 100, "aria-label": `progress of ${training.id}` });
  entry.percent = el("span", { class: "percent" });
  entry.text = el("span", { class: "muted" });
  entry.status = badge(training.status);
  entry.note = el("p", { class: "muted note", role: "status" });
  entry.cancel = el("button", { class: "danger", text: "Cancel", onclick: () => cancel(training.id, entry) });
  const d = training.decision || {};
  entry.card = el("div", { class: "training", "data-id": training.id },
    el("div", { class: "training-head" },
      el("strong", { text: training.strategy }), " for ", el("strong", { text: training.user_id }),
      " on ", el("span", { class: "mode", text: d.mode || "?" }), " ", entry.status,
      el("span", { class: "muted", text: ` started ${when(training.started_at || training.created_at)}` }),
      entry.cancel),
    el("div", { class: "bar-row" }, entry.bar, entry.percent),
    entry.text,
    el("p", { class: "muted reason", text: d.reason || "" }),
    entry.note);
  show(entry, training.progress);
  follow(training, entry);
  return entry;
}

export function renderLive(trainings) {
  const active = trainings.filter((t) => ACTIVE.has(t.status));
  const ended = trainings.filter((t) => !ACTIVE.has(t.status));
  for (const t of active) if (!cards.has(t.id)) cards.set(t.id, card(t));
  // keep ended cards for a while so the outcome stays visible, then drop them
  const keep = new Set([...active.map((t) => t.id), ...ended.slice(0, 3).map((t) => t.id)]);
  for (const [id, entry] of cards) {
    if (!keep.has(id)) { if (entry.source) entry.source.close(); cards.delete(id); }
  }
  const shown = [...cards.values()].map((e) => e.card);
  replace("live", shown.length ? shown : [el("p", { class: "muted", text: "No training is running or queued." })]);
  return active.length;
}

export async function refreshLive(changed) {
  onChange = changed;
  const answer = await getJSON("/api/v1/trainings?limit=20");
  const error = document.getElementById("live-error");
  if (!answer.ok) { error.textContent = `trainings: ${message(answer)}`; return null; }
  error.textContent = "";
  return renderLive(answer.body.trainings || []);
}
