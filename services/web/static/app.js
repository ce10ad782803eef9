// Veloera console stub: setup, sign-in and a small dashboard over the /api endpoints.
"use strict";

const state = { status: null, userId: Number(localStorage.getItem("veloera-user") || 0) };
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.userId) headers["Veloera-User"] = String(state.userId);
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload;
  try { payload = await res.json(); } catch { payload = { success: false, message: res.statusText }; }
  if (res.status === 401) payload.unauthorized = true;
  return payload;
}

function say(text, ok = false) {
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "message ok" : "message";
  box.hidden = !text;
}

function show(view) {
  for (const id of ["setup-view", "login-view", "dashboard-view"]) $(id).hidden = id !== view;
  $("logout").hidden = view !== "dashboard-view";
}

function money(quota) {
  const perUnit = (state.status && state.status.quota_per_unit) || 500000;
  if (state.status && state.status.display_in_currency) return "$" + (quota / perUnit).toFixed(4);
  return String(quota);
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

const TOKEN_STATUS = { 1: "enabled", 2: "disabled", 3: "expired", 4: "exhausted" };

async function loadTokens() {
  const r = await api("GET", "/api/token/?p=1&size=50");
  const body = $("tokens").querySelector("tbody");
  body.replaceChildren();
  if (!r.success) return say(r.message);
  for (const t of r.data.items) {
    const row = document.createElement("tr");
    cell(row, t.name);
    const key = cell(row, "");
    const code = document.createElement("code");
    code.textContent = "sk-" + t.key;
    key.appendChild(code);
    cell(row, TOKEN_STATUS[t.status] || String(t.status));
    cell(row, t.unlimited_quota ? "unlimited" : money(t.remain_quota));
    cell(row, money(t.used_quota));
    const actions = cell(row, "");
    const del = document.createElement("button");
    del.className = "small";
    del.textContent = "Delete";
    del.onclick = async () => {
      const d = await api("DELETE", "/api/token/" + t.id);
      if (!d.success) say(d.message);
      loadTokens();
    };
    actions.appendChild(del);
    body.appendChild(row);
  }
}

async function loadLogs() {
  const r = await api("GET", "/api/log/self?p=1&page_size=10");
  const body = $("logs").querySelector("tbody");
  body.replaceChildren();
  if (!r.success) return;
  for (const l of r.data.items) {
    const row = document.createElement("tr");
    cell(row, new Date(l.created_at * 1000).toLocaleString());
    cell(row, l.model_name);
    cell(row, l.token_name);
    cell(row, l.prompt_tokens + " / " + l.completion_tokens);
    cell(row, money(l.quota));
    body.appendChild(row);
  }
}

async function showDashboard() {
  const r = await api("GET", "/api/user/self");
  if (!r.success) {
    state.userId = 0;
    localStorage.removeItem("veloera-user");
    show("login-view");
    return;
  }
  const u = r.data;
  $("display-name").textContent = u.display_name || u.username;
  $("balance").textContent = money(u.quota);
  $("used-quota").textContent = money(u.used_quota);
  $("request-count").textContent = String(u.request_count);
  $("server-address").textContent = (state.status && state.status.server_address) || "";
  show("dashboard-view");
  await Promise.all([loadTokens(), loadLogs()]);
}

function formData(form) {
  const data = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    data[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return data;
}

async function onSetup(event) {
  event.preventDefault();
  const r = await api("POST", "/api/setup", formData(event.target));
  if (!r.success) return say(r.message);
  say("Setup complete. Sign in with the root account.", true);
  show("login-view");
}

async function onLogin(event) {
  event.preventDefault();
  const r = await api("POST", "/api/user/login", formData(event.target));
  if (!r.success) return say(r.message);
  state.userId = r.data.id;
  localStorage.setItem("veloera-user", String(r.data.id));
  say("");
  await showDashboard();
}

async function onCreateToken(event) {
  event.preventDefault();
  const form = event.target;
  const r = await api("POST", "/api/token/", {
    name: form.elements.name.value, remain_quota: 0, unlimited_quota: true, expired_time: -1,
  });
  if (!r.success) return say(r.message);
  form.reset();
  await loadTokens();
}

async function onLogout() {
  await api("POST", "/api/user/logout");
  state.userId = 0;
  localStorage.removeItem("veloera-user");
  show("login-view");
}

async function start() {
  $("setup-form").addEventListener("submit", onSetup);
  $("login-form").addEventListener("submit", onLogin);
  $("token-form").addEventListener("submit", onCreateToken);
  $("logout").addEventListener("click", onLogout);
  const r = await api("GET", "/api/status");
  if (!r.success) return say(r.message || "The service is not available.");
  state.status = r.data;
  $("system-name").textContent = r.data.system_name;
  document.title = r.data.system_name;
  if (!r.data.setup) return show("setup-view");
  if (state.userId) return showDashboard();
  show("login-view");
}

document.addEventListener("DOMContentLoaded", start);
