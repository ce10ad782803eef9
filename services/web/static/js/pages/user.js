// Signed-in pages: dashboard, API keys, usage logs, playground, wallet, inbox, personal settings.
import { api, relayBase, role, session } from "../api.js";
import { t } from "../i18n.js";
import {
  confirmDialog, copy, fieldRow, formDialog, fromLocalInput, h, money, pageHeader, pager, readForm,
  report, section, table, toast, toLocalInput, when,
} from "../ui.js";
import { marked } from "../../vendor/marked.esm.js";
import { oauthProviders, startOAuth, telegramWidget, turnstileWidget, wechatForm, withTurnstile } from "./public.js";
import { passkeysSection, twoFactorSection } from "./security.js";

// Third-party bindings: OAuth ones go through the provider (the callback binds when signed in);
// Telegram and WeChat bind with their widget or code right here.
function oauthBindings(me, refreshUser) {
  const box = h("div");
  const render = (user) => box.replaceChildren(...oauthProviders().map(([provider, , field, name]) =>
    h("p", null, name, ": ", user[field] || "-", " ", user[field]
      ? h("button", { class: "ghost small", id: "unbind-" + provider, onclick: async () => {
        if (report(await api("DELETE", `/api/oauth/${provider}/bind`), t("common.saved"))) render(await refreshUser());
      } }, t("me.unbind"))
      : h("button", { class: "ghost small", id: "bind-" + provider, onclick: () => startOAuth(provider) }, t("me.bind")))));
  render(me);
  const bound = async () => { toast(t("auth.bound"), true); render(await refreshUser()); };
  const s = session.status || {};
  const messenger = (provider, field, name, widget) => (me[field]
    ? h("p", null, name, ": ", me[field], " ", h("button", { class: "ghost small", id: "unbind-" + provider, onclick: async () => {
      if (report(await api("DELETE", `/api/oauth/${provider}/bind`), t("common.saved"))) location.reload();
    } }, t("me.unbind")))
    : h("div", null, h("p", null, name, ": -"), widget));
  return h("div", null, box,
    s.telegram_oauth ? messenger("telegram", "telegram_id", "Telegram", telegramWidget("/api/oauth/telegram/bind", bound)) : null,
    s.wechat_login ? messenger("wechat", "wechat_id", "WeChat", wechatForm("/api/oauth/wechat/bind", bound)) : null);
}

function card(label, value, id) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

// Chart.js is a classic (UMD) script; loaded on first use so other pages stay light.
let chartLib = null;
function loadChart() {
  chartLib ||= new Promise((resolve, reject) => {
    const script = h("script", { src: "/static/vendor/chart.umd.min.js" });
    script.onload = () => resolve(window.Chart);
    script.onerror = reject;
    document.head.append(script);
  });
  return chartLib;
}

function chartColors() {
  const style = getComputedStyle(document.documentElement);
  return { fg: style.getPropertyValue("--fg").trim(), line: style.getPropertyValue("--line").trim() };
}

const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

async function usageCharts(holder, points) {
  const Chart = await loadChart();
  const colors = chartColors();
  Chart.defaults.color = colors.fg;
  Chart.defaults.borderColor = colors.line;
  const models = [...new Set(points.map((p) => p.model_name))].sort();
  const hours = [...new Set(points.map((p) => p.created_at))].sort((a, b) => a - b);
  const byModelTime = new Map(points.map((p) => [p.model_name + "|" + p.created_at, p]));
  const perUnit = (session.status && session.status.quota_per_unit) || 500000;
  const timeCanvas = h("canvas", { role: "img", "aria-label": t("dash.costByTime") });
  const modelCanvas = h("canvas", { role: "img", "aria-label": t("dash.requestsByModel") });
  holder.replaceChildren(
    h("div", { class: "chart" }, h("h3", null, t("dash.costByTime")), timeCanvas),
    h("div", { class: "chart" }, h("h3", null, t("dash.requestsByModel")), modelCanvas));
  new Chart(timeCanvas, {
    type: "bar",
    data: {
      labels: hours.map((s) => new Date(s * 1000).toLocaleString([], { month: "2-digit", day: "2-digit", hour: "2-digit" })),
      datasets: models.map((m, i) => ({
        label: m, backgroundColor: PALETTE[i % PALETTE.length],
        data: hours.map((s) => ((byModelTime.get(m + "|" + s) || {}).quota || 0) / perUnit),
      })),
    },
    options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true } } },
  });
  new Chart(modelCanvas, {
    type: "doughnut",
    data: {
      labels: models,
      datasets: [{ data: models.map((m) => points.filter((p) => p.model_name === m).reduce((a, p) => a + p.count, 0)), backgroundColor: PALETTE }],
    },
    options: { animation: false, responsive: true, maintainAspectRatio: false },
  });
}

export async function dashboard(page) {
  const since = Math.floor(Date.now() / 1000) - 7 * 86400;
  const [me, stat, data] = await Promise.all([
    api("GET", "/api/user/self"),
    api("GET", "/api/log/self/stat?type=2"),
    api("GET", `/api/data/self?start_timestamp=${since}`),
  ]);
  if (!report(me)) return;
  const u = me.data;
  const base = relayBase();
  page.append(
    pageHeader(t("dash.welcome", { name: u.display_name || u.username })),
    h("div", { class: "cards" },
      card(t("dash.balance"), money(u.quota), "balance"),
      card(t("dash.used"), money(u.used_quota), "used-quota"),
      card(t("dash.requests"), String(u.request_count), "request-count"),
      card(t("dash.rpm"), stat.success ? String(stat.data.rpm) : "-", "rpm"),
      card(t("dash.tpm"), stat.success ? String(stat.data.tpm) : "-", "tpm")),
    section(t("dash.apiBase"), h("p", null, h("code", { id: "server-address" }, base), " ",
      h("button", { class: "ghost small", onclick: () => copy(base) }, t("common.copy")))));
  const charts = h("div", { class: "charts" });
  page.append(section(t("dash.usage"), charts));
  if (data.success && data.data.length) await usageCharts(charts, data.data);
  else charts.append(h("p", { class: "muted" }, t("dash.noUsage")));
}

// ---------- API keys ----------

const TOKEN_STATUS = { 1: "key.enabled", 2: "key.disabled", 3: "key.expired", 4: "key.exhausted" };

function fullKey(key) {
  return key.startsWith("sk-") ? key : "sk-" + key;
}

function maskedKey(key) {
  const full = fullKey(key);
  return full.length > 14 ? full.slice(0, 7) + "…" + full.slice(-4) : full;
}

async function keyFields() {
  const [groups, models] = await Promise.all([api("GET", "/api/user/self/groups"), api("GET", "/api/user/models")]);
  const groupOptions = [["", t("key.userGroup")], ...Object.entries(groups.success ? groups.data : {}).map(([g, v]) => [g, `${g} (×${v.ratio})`])];
  const modelList = h("datalist", { id: "user-models" }, (models.success ? models.data : []).map((m) => h("option", { value: m })));
  document.body.append(modelList);
  const perUnit = (session.status && session.status.quota_per_unit) || 500000;
  return [
    { name: "name", label: t("key.name"), required: true },
    { name: "remain_quota", label: t("key.quota"), type: "number", min: "0", help: t("key.quotaHelp", { unit: perUnit }) },
    { name: "unlimited_quota", label: t("key.unlimited"), type: "checkbox" },
    { name: "expired_time", label: t("key.expiry"), type: "datetime-local", help: t("key.expiryHelp") },
    { name: "group", label: t("key.group"), type: "select", options: groupOptions },
    { name: "model_limits_enabled", label: t("key.modelLimitsEnabled"), type: "checkbox" },
    { name: "model_limits", label: t("key.modelLimits"), list: "user-models", help: t("key.modelLimitsHelp") },
    { name: "allow_ips", label: t("key.allowIps"), type: "textarea", help: t("key.allowIpsHelp") },
    { name: "rate_limit_enabled", label: t("key.rateLimitEnabled"), type: "checkbox" },
    { name: "rate_limit_period", label: t("key.ratePeriod"), type: "number", min: "0" },
    { name: "rate_limit_count", label: t("key.rateCount"), type: "number", min: "0" },
    { name: "rate_limit_success", label: t("key.rateSuccess"), type: "number", min: "0" },
  ];
}

function keyBody(data) {
  return { ...data, expired_time: data.expired_time ? fromLocalInput(data.expired_time) : -1 };
}

async function editKey(token, reload) {
  const fields = await keyFields();
  const values = token ? { ...token, expired_time: toLocalInput(token.expired_time) } : { unlimited_quota: true, name: "" };
  formDialog({
    title: token ? t("key.edit") : t("key.create"), fields, values,
    onSubmit: async (data) => {
      const body = keyBody(data);
      const reply = token ? await api("PUT", "/api/token/", { ...body, id: token.id }) : await api("POST", "/api/token/", body);
      if (reply.success) { report(reply, t("common.saved")); reload(); }
      return reply;
    },
  });
}

function chatLinks(token) {
  const chats = (session.status && session.status.chats) || [];
  return chats.flatMap((entry) => Object.entries(entry)).map(([name, template]) => {
    const url = String(template).replaceAll("{key}", fullKey(token.key)).replaceAll("{address}", (session.status.server_address || ""));
    return h("a", { href: url, target: "_blank", rel: "noopener", class: "small" }, name);
  });
}

export async function keys(page) {
  const list = h("div");
  const state = { page: 1, keyword: "" };
  const reload = async () => {
    const path = state.keyword ? `/api/token/search?keyword=${encodeURIComponent(state.keyword)}&p=${state.page}&size=10`
      : `/api/token/?p=${state.page}&size=10`;
    const reply = await api("GET", path);
    if (!report(reply)) return;
    list.replaceChildren(table([
      { label: t("key.name"), cell: (k) => k.name },
      { label: t("key.key"), cell: (k) => h("span", { class: "nowrap" }, h("code", null, maskedKey(k.key)), " ",
        h("button", { class: "ghost small", onclick: () => copy(fullKey(k.key)), "aria-label": t("common.copy") + " " + k.name }, t("common.copy"))) },
      { label: t("common.status"), cell: (k) => h("span", { class: "badge s" + k.status }, t(TOKEN_STATUS[k.status] || "key.unknown")) },
      { label: t("key.remaining"), cell: (k) => (k.unlimited_quota ? t("key.unlimitedShort") : money(k.remain_quota)) },
      { label: t("key.used"), cell: (k) => money(k.used_quota) },
      { label: t("key.expiry"), cell: (k) => (k.expired_time === -1 ? t("key.never") : when(k.expired_time)) },
      { label: t("common.actions"), cell: (k) => h("span", { class: "row-actions" },
        chatLinks(k),
        h("button", { class: "ghost small", onclick: () => editKey(k, reload) }, t("common.edit")),
        h("button", { class: "ghost small", onclick: async () => {
          const status = k.status === 1 ? 2 : 1;
          report(await api("PUT", "/api/token/?status_only=true", { id: k.id, status }));
          reload();
        } }, t(k.status === 1 ? "common.disable" : "common.enable")),
        h("button", { class: "ghost small danger-text", onclick: async () => {
          if (!(await confirmDialog(t("key.confirmDelete", { name: k.name })))) return;
          report(await api("DELETE", "/api/token/" + k.id), t("common.deleted"));
          reload();
        } }, t("common.delete"))) },
    ], reply.data.items, t("key.none")), pager(state.page, 10, reply.data.total, (p) => { state.page = p; reload(); }));
  };
  const search = h("input", { type: "search", placeholder: t("key.search"), "aria-label": t("key.search"),
    onchange: (e) => { state.keyword = e.target.value.trim(); state.page = 1; reload(); } });
  page.append(pageHeader(t("nav.keys"), h("button", { onclick: () => editKey(null, reload) }, t("key.create"))),
    h("div", { class: "toolbar" }, search), list);
  await reload();
}

// ---------- Usage logs ----------

const TYPE_NAMES = { 1: "log.topup", 2: "log.consume", 3: "log.adjustment", 4: "log.system", 5: "log.checkin", 6: "log.error" };
const KIND_NAMES = { grant: "log.grant", admin: "log.adjustment", topup: "log.topup", redeem: "log.topup", checkin: "log.checkin", invite: "log.invite", refund: "log.refund" };

function parseOther(log) {
  try { return typeof log.other === "string" ? JSON.parse(log.other || "{}") : log.other || {}; } catch { return {}; }
}

// What a row is: a billing adjustment carries its kind (grant, admin, refund…) in `other`.
export function logTypeName(log) {
  const kind = parseOther(log).kind;
  if (kind && KIND_NAMES[kind]) return t(KIND_NAMES[kind]);
  return t(TYPE_NAMES[log.type] || "log.unknown");
}

function logDetail(log) {
  const other = parseOther(log);
  formDialog({
    title: t("log.detail"), submitLabel: t("common.close"), fields: [],
    onSubmit: async () => ({ success: true }),
  }).querySelector("form h2").after(h("div", { class: "stack" },
    h("p", null, log.content || ""),
    h("pre", { class: "json" }, JSON.stringify({ ...log, other }, null, 2))));
}

export async function logs(page) {
  const admin = role() >= 10;
  const fields = [
    { name: "type", label: t("log.type"), type: "select", options: [["0", t("log.all")], ...Object.entries(TYPE_NAMES).map(([v, k]) => [v, t(k)])] },
    { name: "model_name", label: t("log.model") },
    { name: "token_name", label: t("log.key") },
    { name: "group", label: t("log.group") },
    { name: "start", label: t("log.from"), type: "datetime-local" },
    { name: "end", label: t("log.to"), type: "datetime-local" },
    ...(admin ? [{ name: "username", label: t("log.user") }, { name: "channel", label: t("log.channel"), type: "number" }] : []),
  ];
  const form = h("form", { class: "filters" }, fields.map((f) => fieldRow(f)),
    h("div", { class: "field" }, h("button", { type: "submit" }, t("common.search"))));
  const statBar = h("div", { class: "statbar", id: "log-stat" });
  const list = h("div");
  const cursors = [""];
  let index = 0;
  const query = () => {
    const d = readForm(form, fields);
    const params = new URLSearchParams({ type: d.type, model_name: d.model_name, token_name: d.token_name, group: d.group,
      start_timestamp: String(fromLocalInput(d.start)), end_timestamp: String(fromLocalInput(d.end)) });
    if (admin) { params.set("username", d.username); if (d.channel) params.set("channel", String(d.channel)); }
    return params;
  };
  const base = admin ? "/api/log/" : "/api/log/self";
  const statPath = admin ? "/api/log/stat" : "/api/log/self/stat";
  const load = async () => {
    const params = query();
    const stat = await api("GET", `${statPath}?${params}`);
    if (stat.success) {
      statBar.replaceChildren(h("span", null, t("log.statQuota"), " ", h("strong", null, money(stat.data.quota))),
        h("span", null, t("log.statCount"), " ", h("strong", null, String(stat.data.count))),
        h("span", null, "RPM ", h("strong", null, String(stat.data.rpm))), h("span", null, "TPM ", h("strong", null, String(stat.data.tpm))));
    }
    params.set("page_size", "20");
    params.set("skip_total", "1");
    if (cursors[index]) params.set("cursor", cursors[index]);
    const reply = await api("GET", `${base}?${params}`);
    if (!report(reply)) return;
    cursors[index + 1] = reply.data.next_cursor;
    list.replaceChildren(table([
      { label: t("log.time"), cell: (l) => when(l.created_at) },
      ...(admin ? [{ label: t("log.user"), cell: (l) => l.username || "#" + l.user_id }] : []),
      { label: t("log.type"), cell: (l) => h("span", { class: "badge t" + l.type }, logTypeName(l)) },
      { label: t("log.key"), cell: (l) => l.token_name },
      { label: t("log.model"), cell: (l) => l.model_name },
      { label: t("log.tokens"), cell: (l) => (l.type === 2 ? `${l.prompt_tokens} / ${l.completion_tokens}` : "") },
      { label: t("log.cost"), cell: (l) => h("span", { title: String(l.quota) + " " + t("log.units") }, money(l.quota)) },
      { label: t("log.duration"), cell: (l) => (l.use_time ? l.use_time + " s" : "") },
      { label: t("log.detail"), cell: (l) => h("button", { class: "ghost small", onclick: () => logDetail(l) }, t("log.details")) },
    ], reply.data.items, t("log.none")), h("div", { class: "pager" },
      h("button", { class: "ghost", disabled: index === 0, onclick: () => { index -= 1; load(); } }, t("common.prev")),
      h("span", null, t("log.pageN", { page: index + 1 })),
      h("button", { class: "ghost", disabled: !reply.data.next_cursor, onclick: () => { index += 1; load(); } }, t("common.next"))));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); index = 0; cursors.length = 1; load(); });
  page.append(pageHeader(admin ? t("log.allTitle") : t("nav.logs"),
    h("button", { class: "ghost", id: "log-refresh", onclick: () => load() }, t("common.refresh"))), form, statBar, list);
  await load();
}

// ---------- Playground ----------

async function streamChat({ key, model, messages, onDelta }) {
  const res = await fetch(relayBase() + "/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + fullKey(key) },
    body: JSON.stringify({ model, messages, stream: true }),
  });
  if (!res.ok || !res.body) {
    let message = res.statusText;
    try { message = (await res.json()).error.message; } catch { /* keep the status text */ }
    throw new Error(message);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      const data = line.startsWith("data:") ? line.slice(5).trim() : "";
      if (!data || data === "[DONE]") continue;
      try {
        const chunk = JSON.parse(data);
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) onDelta(delta.content);
      } catch { /* a partial or non-JSON line */ }
    }
  }
}

export async function playground(page) {
  const [tokens, models] = await Promise.all([api("GET", "/api/token/?p=1&size=100"), api("GET", "/api/user/models")]);
  const usable = tokens.success ? tokens.data.items.filter((k) => k.status === 1) : [];
  page.append(pageHeader(t("nav.playground")));
  if (!usable.length) { page.append(h("p", null, t("play.noKey"), " ", h("a", { href: "/console/token" }, t("nav.keys")))); return; }
  const keySelect = h("select", { id: "play-key", "aria-label": t("play.key") }, usable.map((k) => h("option", { value: String(k.id) }, k.name)));
  const modelSelect = h("select", { id: "play-model", "aria-label": t("play.model") }, (models.success ? models.data : []).map((m) => h("option", { value: m }, m)));
  const transcript = h("div", { class: "transcript", id: "play-transcript", "aria-live": "polite" });
  const prompt = h("textarea", { id: "play-input", rows: "3", placeholder: t("play.placeholder"), "aria-label": t("play.placeholder") });
  const send = h("button", { type: "submit", id: "play-send" }, t("play.send"));
  const history = [];
  const form = h("form", { class: "play-form" }, prompt, h("div", { class: "actions" },
    h("button", { type: "button", class: "ghost", onclick: () => { history.length = 0; transcript.replaceChildren(); } }, t("play.clear")), send));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    const token = usable.find((k) => String(k.id) === keySelect.value);
    history.push({ role: "user", content: text });
    transcript.append(h("div", { class: "msg user" }, text));
    const answer = h("div", { class: "msg assistant" });
    transcript.append(answer);
    prompt.value = "";
    send.disabled = true;
    let reply = "";
    try {
      await streamChat({ key: token.key, model: modelSelect.value, messages: history, onDelta: (d) => { reply += d; answer.textContent = reply; } });
      history.push({ role: "assistant", content: reply });
      answer.classList.add("done");
    } catch (err) {
      answer.classList.add("error");
      answer.textContent = t("play.failed") + ": " + err.message;
    } finally {
      send.disabled = false;
    }
  });
  prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });
  if (!modelSelect.options.length) page.append(h("p", { class: "muted" }, t("play.noModel")));
  page.append(h("div", { class: "toolbar" }, h("label", { class: "check" }, t("play.key"), keySelect),
    h("label", { class: "check" }, t("play.model"), modelSelect)), transcript, form);
}

// ---------- Wallet ----------

export async function wallet(page, { refreshUser }) {
  const me = await refreshUser();
  const s = session.status || {};
  const balance = h("strong", { id: "wallet-balance" }, money(me ? me.quota : 0));
  const codeFields = [{ name: "key", label: t("wallet.code"), required: true }];
  const widget = turnstileWidget();
  const redeem = h("form", { class: "stack narrow" }, fieldRow(codeFields[0]), widget, h("button", { type: "submit" }, t("wallet.redeem")));
  redeem.addEventListener("submit", async (e) => {
    e.preventDefault();
    const reply = await api("POST", withTurnstile("/api/user/topup", widget), readForm(redeem, codeFields));
    if (!report(reply, t("wallet.redeemed", { amount: money(reply.data || 0) }))) return;
    redeem.reset();
    const fresh = await refreshUser();
    if (fresh) balance.textContent = money(fresh.quota);
  });
  page.append(pageHeader(t("nav.wallet")), section(t("wallet.balance"), h("p", null, balance)), section(t("wallet.redeemTitle"), redeem));
  if (s.top_up_link) page.append(section(t("wallet.buy"), h("a", { href: s.top_up_link, target: "_blank", rel: "noopener" }, t("wallet.buyLink"))));
  if (s.enable_online_topup) page.append(section(t("wallet.online"), onlineTopUp(s)));
}

// EPay: the API signs the order; the browser posts it to the gateway as upstream's page does.
function onlineTopUp(s) {
  const fields = [
    { name: "amount", label: t("wallet.amount"), type: "number", min: String(s.min_topup || 1), required: true },
    { name: "payment_method", label: t("wallet.method"), type: "select", options: [["alipay", t("wallet.alipay")], ["wxpay", t("wallet.wxpay")]] },
  ];
  const price = h("p", { class: "muted", id: "topup-price" });
  const form = h("form", { class: "stack narrow" }, fields.map((f) => fieldRow(f)), price, h("button", { type: "submit" }, t("wallet.pay")));
  form.elements.amount.addEventListener("change", async () => {
    const reply = await api("POST", "/api/user/amount", { amount: Number(form.elements.amount.value) });
    price.textContent = reply.success ? t("wallet.toPay", { money: reply.data }) : reply.message;
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = readForm(form, fields);
    const reply = await api("POST", "/api/user/pay", data);
    if (!report(reply)) return;
    const gateway = h("form", { method: "POST", action: reply.url, hidden: true },
      Object.entries(reply.data).map(([name, value]) => h("input", { type: "hidden", name, value: String(value) })));
    document.body.append(gateway);
    gateway.submit();
  });
  return form;
}

// ---------- Inbox ----------

export async function inbox(page, { refreshUnread }) {
  const list = h("div");
  const load = async () => {
    const reply = await api("GET", "/api/user/messages/?p=1&page_size=50");
    if (!report(reply)) return;
    list.replaceChildren(...(reply.data.items.length ? reply.data.items.map((m) => h("details", {
      class: "message-item" + (m.read ? "" : " unread"),
      ontoggle: async (e) => { if (e.target.open && !m.read) { await api("PUT", `/api/user/messages/${m.id}/read`); m.read = true; e.target.classList.remove("unread"); refreshUnread(); } },
    }, h("summary", null, h("strong", null, m.title), " ", h("small", { class: "muted" }, when(m.created_at))),
      h("div", { class: "md", html: m.format === "markdown" ? marked.parse(m.content) : "" }, m.format === "markdown" ? null : m.content)))
      : [h("p", { class: "muted" }, t("inbox.empty"))]));
  };
  page.append(pageHeader(t("nav.inbox"), h("button", { class: "ghost", onclick: async () => {
    report(await api("PUT", "/api/user/messages/read_all")); refreshUnread(); load();
  } }, t("inbox.readAll"))), list);
  await load();
}

// ---------- Personal settings ----------

function smallForm(fields, values, label, onSubmit) {
  const form = h("form", { class: "stack narrow" }, fields.map((f) => fieldRow(f, values[f.name])), h("button", { type: "submit" }, label));
  form.addEventListener("submit", async (e) => { e.preventDefault(); await onSubmit(readForm(form, fields), form); });
  return form;
}

function emailBinding(refreshUser) {
  const fields = [
    { name: "email", label: t("auth.email"), type: "email", required: true },
    { name: "code", label: t("auth.code"), required: true },
  ];
  const form = h("form", { class: "stack narrow" }, fields.map((f) => fieldRow(f)),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "ghost", onclick: async () => {
        const email = form.elements.email.value;
        report(await api("GET", "/api/verification?email=" + encodeURIComponent(email)), t("auth.codeSent"));
      } }, t("auth.sendCode")),
      h("button", { type: "submit" }, t("me.bind"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const { email, code } = readForm(form, fields);
    const query = new URLSearchParams({ email, code });
    if (report(await api("GET", "/api/oauth/email/bind?" + query), t("common.saved"))) await refreshUser();
  });
  return form;
}

// Signed-in browsers and devices; any but this one can be signed out from here.
async function sessions() {
  const holder = h("div");
  const load = async () => {
    const reply = await api("GET", "/api/user/sessions");
    if (!report(reply)) return;
    holder.replaceChildren(table([
      { label: t("me.signedIn"), cell: (x) => when(x.created_at) },
      { label: t("me.expires"), cell: (x) => when(x.expires_at) },
      { label: "IP", cell: (x) => x.ip },
      { label: t("me.device"), cell: (x) => h("span", { class: "clip", title: x.user_agent }, x.user_agent) },
      { label: t("common.actions"), cell: (x) => (x.current ? t("me.thisSession") : h("button", { class: "ghost small", onclick: async () => {
        report(await api("DELETE", "/api/user/sessions/" + x.id), t("common.saved")); load();
      } }, t("me.signOutSession"))) },
    ], reply.data));
  };
  await load();
  return holder;
}

export async function personal(page, { refreshUser }) {
  const me = await refreshUser();
  if (!me) return;
  const s = session.status || {};
  let setting = {};
  try { setting = JSON.parse(me.setting || "{}"); } catch { setting = {}; }
  const profile = smallForm([{ name: "display_name", label: t("me.displayName") }], me, t("common.save"),
    async (data) => { report(await api("PUT", "/api/user/self", data), t("common.saved")); await refreshUser(); });
  const password = smallForm([
    { name: "original_password", label: t("me.currentPassword"), type: "password", required: true },
    { name: "password", label: t("me.newPassword"), type: "password", required: true },
  ], {}, t("me.changePassword"), async (data, form) => { if (report(await api("PUT", "/api/user/self", data), t("common.saved"))) form.reset(); });
  const tokenOut = h("code", { id: "access-token" });
  const access = h("div", null, h("button", { onclick: async () => {
    const reply = await api("GET", "/api/user/token");
    if (report(reply)) { tokenOut.textContent = reply.data; copy(reply.data); }
  } }, t("me.generateToken")), " ", tokenOut, h("p", { class: "help" }, t("me.tokenHelp")));
  page.append(pageHeader(t("nav.personal")),
    section(t("me.profile"), h("p", null, t("auth.username"), ": ", h("strong", null, me.username), " · ", t("me.group"), ": ", me.group, " · ", t("me.email"), ": ", me.email || "-"), profile),
    section(t("me.bindEmail"), emailBinding(refreshUser)),
    oauthProviders().length || s.telegram_oauth || s.wechat_login ? section(t("me.bindings"), oauthBindings(me, refreshUser)) : null,
    twoFactorSection(),
    passkeysSection(),
    section(t("me.password"), password),
    section(t("me.accessToken"), access),
    section(t("me.sessions"), await sessions()));
  if (s.aff_enabled) {
    const aff = await api("GET", "/api/user/aff");
    const link = aff.success ? `${location.origin}/register?aff=${aff.data}` : "";
    const transfer = smallForm([{ name: "quota", label: t("me.transferAmount"), type: "number", min: "0" }], {}, t("me.transfer"),
      async (data) => { report(await api("POST", "/api/user/aff_transfer", data), t("common.saved")); });
    page.append(section(t("me.invite"), h("p", null, h("code", null, link), " ", h("button", { class: "ghost small", onclick: () => copy(link) }, t("common.copy"))),
      h("p", null, t("me.affStats", { count: me.aff_count, pending: money(me.aff_quota), total: money(me.aff_history_quota) })), transfer));
  }
  if (s.check_in_enabled) {
    const status = await api("GET", "/api/user/check_in_status");
    const checked = status.success && !status.data.can_check_in;
    const widget = checked ? null : turnstileWidget();
    page.append(section(t("me.checkIn"), widget, h("button", { disabled: Boolean(checked), onclick: async (e) => {
      if (report(await api("POST", withTurnstile("/api/user/check_in", widget)), t("me.checkedIn"))) e.target.disabled = true;
    } }, checked ? t("me.checkedIn") : t("me.checkInNow"))));
  }
  const notify = smallForm([
    { name: "notify_type", label: t("me.notifyType"), type: "select", options: [["email", t("me.notifyEmail")], ["webhook", "Webhook"]] },
    { name: "quota_warning_threshold", label: t("me.threshold"), type: "number", min: "0" },
    { name: "notification_email", label: t("me.notifyAddress"), type: "email" },
    { name: "webhook_url", label: t("me.webhookUrl"), type: "url" },
    { name: "webhook_secret", label: t("me.webhookSecret"), type: "password" },
  ], setting, t("common.save"), async (data) => {
    if (!data.webhook_secret) delete data.webhook_secret;
    report(await api("PUT", "/api/user/setting", data), t("common.saved"));
  });
  page.append(section(t("me.notifications"), notify));
}
