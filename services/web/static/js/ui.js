// Small DOM helpers shared by every page: elements, tables, dialogs, toasts, formatting.
import { session } from "./api.js";
import { t } from "./i18n.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "html") el.innerHTML = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function toast(message, ok = false) {
  const box = document.getElementById("toast");
  const item = h("div", { class: ok ? "toast ok" : "toast error" }, message);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

// Shows the API's message when a call failed; true when it succeeded.
export function report(reply, okMessage) {
  if (!reply.success) { toast(reply.message || t("common.failed")); return false; }
  if (okMessage) toast(okMessage, true);
  return true;
}

// Quota units in the shown currency with enough digits that a small charge is never $0.
export function money(quota) {
  const status = session.status || {};
  if (!status.display_in_currency) return String(quota);
  const value = quota / (status.quota_per_unit || 500000);
  if (value === 0) return "$0";
  const abs = Math.abs(value);
  const digits = abs >= 1 ? 6 : Math.min(8, Math.max(4, Math.ceil(-Math.log10(abs)) + 2));
  // Trailing zeros go, but cents stay: $10.00, $9.9999, $0.0001.
  return "$" + value.toFixed(digits).replace(/(\.\d\d\d*?)0+$/, "$1");
}

export function when(seconds) {
  if (!seconds || seconds < 0) return "-";
  return new Date(seconds * 1000).toLocaleString();
}

export function toLocalInput(seconds) {
  if (!seconds || seconds < 0) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(text) {
  return text ? Math.floor(new Date(text).getTime() / 1000) : 0;
}

// columns: [{label, cell(row) -> node|string}]; narrow screens show rows as labelled cards.
export function table(columns, rows, empty) {
  const head = h("tr", null, columns.map((c) => h("th", { scope: "col" }, c.label)));
  const body = rows.length
    ? rows.map((row) => h("tr", null, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row)))))
    : [h("tr", null, h("td", { colspan: String(columns.length), class: "empty" }, empty || t("common.empty")))];
  return h("div", { class: "table-wrap" }, h("table", { class: "grid" }, h("thead", null, head), h("tbody", null, body)));
}

export function pager(page, size, total, go) {
  const pages = Math.max(1, Math.ceil(total / size));
  return h("div", { class: "pager" },
    h("button", { class: "ghost", disabled: page <= 1, onclick: () => go(page - 1) }, t("common.prev")),
    h("span", null, t("common.page", { page, pages, total })),
    h("button", { class: "ghost", disabled: page >= pages, onclick: () => go(page + 1) }, t("common.next")));
}

export function confirmDialog(message) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "modal", "aria-label": t("common.confirm") },
      h("p", null, message),
      h("div", { class: "actions" },
        h("button", { class: "ghost", value: "no", onclick: () => dialog.close("no") }, t("common.cancel")),
        h("button", { class: "danger", value: "yes", onclick: () => dialog.close("yes") }, t("common.confirm"))));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "yes"); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A field: {name, label, type, options, help, required, placeholder, rows, validate}.
function input(field, value) {
  const common = { name: field.name, id: "f-" + field.name, required: field.required, placeholder: field.placeholder };
  if (field.type === "checkbox") return h("input", { ...common, type: "checkbox", checked: Boolean(value) });
  if (field.type === "textarea") return h("textarea", { ...common, rows: String(field.rows || 3) }, value ?? "");
  if (field.type === "select") {
    return h("select", common, field.options.map(([v, label]) =>
      h("option", { value: String(v), selected: String(v) === String(value ?? "") }, label)));
  }
  return h("input", { ...common, type: field.type || "text", value: value ?? "", step: field.step, min: field.min, list: field.list });
}

export function fieldRow(field, value) {
  const control = input(field, value);
  const label = h("label", { for: control.id, class: field.type === "checkbox" ? "check" : "" },
    field.type === "checkbox" ? control : null, field.label);
  return h("div", { class: "field" + (field.type === "checkbox" ? " field-check" : "") },
    field.type === "checkbox" ? label : [label, control],
    field.help ? h("small", { class: "help" }, field.help) : null);
}

export function readForm(form, fields) {
  const data = {};
  for (const field of fields) {
    const el = form.elements[field.name];
    if (!el) continue;
    if (field.type === "checkbox") data[field.name] = el.checked;
    else if (field.type === "number") data[field.name] = el.value === "" ? 0 : Number(el.value);
    else data[field.name] = el.value;
  }
  return data;
}

// A modal form; onSubmit(data) returns the API reply: the dialog stays open with its message on failure.
export function formDialog({ title, fields, values = {}, submitLabel, onSubmit }) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const form = h("form", { method: "dialog", class: "stack" },
    h("h2", null, title), error,
    fields.map((f) => fieldRow(f, values[f.name])),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "ghost", onclick: () => dialog.close() }, t("common.cancel")),
      h("button", { type: "submit" }, submitLabel || t("common.save"))));
  const dialog = h("dialog", { class: "modal wide" }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = readForm(form, fields);
    for (const field of fields) {
      const problem = field.validate && field.validate(data[field.name]);
      if (problem) { error.textContent = problem; error.hidden = false; return; }
    }
    const reply = await onSubmit(data);
    if (reply && !reply.success) { error.textContent = reply.message; error.hidden = false; return; }
    dialog.close();
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function jsonObjectCheck(text) {
  if (!text || !text.trim()) return "";
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return "";
  } catch { /* reported below */ }
  return t("common.jsonObject");
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t("common.copied"), true);
  } catch {
    window.prompt(t("common.copyManually"), text);
  }
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, title ? h("h2", null, title) : null, children);
}

export function pageHeader(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", null, title), h("div", { class: "actions" }, actions));
}
