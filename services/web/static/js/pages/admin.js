// Admin pages: channels, users, redemption codes, inbox messages and (root) settings.
import { api, role, session } from "../api.js";
import { t } from "../i18n.js";
import { CHANNEL_TYPES } from "../channel_types.js";
import {
  confirmDialog, copy, fieldRow, formDialog, fromLocalInput, h, jsonObjectCheck, money, pageHeader, pager,
  readForm, report, table, toast, toLocalInput, when,
} from "../ui.js";

const TYPE_NAME = new Map(CHANNEL_TYPES);
const CHANNEL_STATUS = { 1: "ch.enabled", 2: "ch.manualDisabled", 3: "ch.autoDisabled" };

function datalist(id, values) {
  document.getElementById(id)?.remove();
  document.body.append(h("datalist", { id }, values.map((v) => h("option", { value: v }))));
}

// {"client model": "upstream model"}: names to non-empty names, as accounts validates it.
function mappingCheck(text) {
  const problem = jsonObjectCheck(text);
  if (problem || !text.trim()) return problem;
  const ok = Object.entries(JSON.parse(text)).every(([k, v]) => k.trim() && typeof v === "string" && v.trim());
  return ok ? "" : t("ch.mappingInvalid");
}

function channelFields(editing) {
  return [
    { name: "type", label: t("ch.type"), type: "select", options: CHANNEL_TYPES.map(([id, name]) => [id, `${name} (${id})`]) },
    { name: "name", label: t("ch.name"), required: true },
    { name: "key", label: t("ch.key"), type: "textarea", required: !editing, help: editing ? t("ch.keyKeep") : t("ch.keyHelp") },
    { name: "base_url", label: t("ch.baseUrl"), type: "url", placeholder: "https://api.openai.com" },
    { name: "models", label: t("ch.models"), list: "type-models", required: true, help: t("ch.modelsHelp") },
    { name: "group", label: t("ch.groups"), list: "all-groups", help: t("ch.groupsHelp") },
    { name: "priority", label: t("ch.priority"), type: "number" },
    { name: "weight", label: t("ch.weight"), type: "number", min: "0" },
    { name: "model_mapping", label: t("ch.mapping"), type: "textarea", placeholder: '{"gpt-4o": "gpt-4o-2024-08-06"}', validate: mappingCheck },
    { name: "status_code_mapping", label: t("ch.statusMapping"), type: "textarea", placeholder: '{"400": "500"}', validate: jsonObjectCheck },
    { name: "param_override", label: t("ch.paramOverride"), type: "textarea", placeholder: '{"temperature": 0}', validate: jsonObjectCheck },
    { name: "setting", label: t("ch.setting"), type: "textarea", placeholder: '{"force_format": false}', validate: jsonObjectCheck },
    { name: "system_prompt", label: t("ch.systemPrompt"), type: "textarea" },
    { name: "model_prefix", label: t("ch.modelPrefix") },
    { name: "tag", label: t("ch.tag") },
    { name: "test_model", label: t("ch.testModel") },
    { name: "openai_organization", label: t("ch.organization") },
    { name: "other", label: t("ch.other"), help: t("ch.otherHelp") },
    { name: "auto_ban", label: t("ch.autoBan"), type: "checkbox" },
  ];
}

async function editChannel(id, reload) {
  const [models, groups] = await Promise.all([api("GET", "/api/models"), api("GET", "/api/group/")]);
  datalist("all-groups", groups.success ? groups.data : []);
  datalist("type-models", models.success ? [...new Set(Object.values(models.data).flat())] : []);
  let values = { type: 1, priority: 0, weight: 1, group: "default", auto_ban: true };
  if (id) {
    const reply = await api("GET", "/api/channel/" + id);
    if (!report(reply)) return;
    values = { ...reply.data, key: "", auto_ban: reply.data.auto_ban === 1 };
  }
  const dialog = formDialog({
    title: id ? t("ch.edit") : t("ch.add"), fields: channelFields(Boolean(id)), values,
    onSubmit: async (data) => {
      const body = { ...data, type: Number(data.type), auto_ban: data.auto_ban ? 1 : 0 };
      if (id && !body.key) delete body.key;
      const reply = id ? await api("PUT", "/api/channel/", { ...body, id }) : await api("POST", "/api/channel/", body);
      if (reply.success) { toast(t("common.saved"), true); reload(); }
      return reply;
    },
  });
  dialog.querySelector("[name=models]").closest(".field").append(
    h("button", { type: "button", class: "ghost small", id: "fetch-models", onclick: () => fetchModels(id, dialog) }, t("ch.fetchModels")));
  if (id && values.keys && values.keys.length) {
    dialog.querySelector("[name=key]").closest(".field").after(h("div", { class: "field" }, h("span", null, t("ch.keyStatus")),
      h("ul", { class: "key-list" }, values.keys.map((k) => h("li", null, `#${k.index} `,
        h("span", { class: "badge s" + k.status }, t(k.status === 1 ? "ch.enabled" : "ch.autoDisabled")),
        ` ${t("ch.requests")}: ${k.request_count} · ${t("ch.failures")}: ${k.failure_count}`, k.last_error ? h("small", { class: "muted" }, " " + k.last_error) : null)))));
  }
}

// One channel's test (each of its keys); the answer's response time lands in the list.
async function testChannel(c, reload) {
  const reply = await api("GET", `/api/channel/test/${c.id}`);
  report(reply, t("ch.testOk", { time: (reply.time || 0).toFixed(2) }));
  reload();
}

// The upstream's model list into the models field: a saved channel by id (its stored key), a
// new one from the form's type, base URL and key.
async function fetchModels(id, dialog) {
  const form = dialog.querySelector("form");
  const value = (name) => form.querySelector(`[name=${name}]`).value;
  const reply = id ? await api("GET", `/api/channel/fetch_models/${id}`)
    : await api("POST", "/api/channel/fetch_models", { type: Number(value("type")), base_url: value("base_url"), key: value("key") });
  if (!report(reply, t("ch.modelsFetched", { count: reply.data?.length || 0 }))) return;
  form.querySelector("[name=models]").value = reply.data.join(",");
}

function tagSelected(selected, reload) {
  if (!selected.size) { toast(t("ch.noneSelected")); return; }
  formDialog({
    title: t("ch.tagSelected"), fields: [{ name: "tag", label: t("ch.tag"), help: t("ch.tagEmpty") }],
    onSubmit: async (data) => {
      const reply = await api("POST", "/api/channel/batch/tag", { ids: [...selected], tag: data.tag });
      if (reply.success) { toast(t("common.saved"), true); reload(); }
      return reply;
    },
  });
}

// Every channel with one tag at once: enable, disable, or change the shared fields.
async function tagTools(reload) {
  const tags = await api("GET", "/api/channel/tags");
  if (!report(tags)) return;
  if (!tags.data.length) { toast(t("ch.noTags")); return; }
  const fields = [
    { name: "tag", label: t("ch.tag"), type: "select", options: tags.data.map((x) => [x, x]) },
    { name: "action", label: t("ch.tagAction"), type: "select", options: [["edit", t("ch.tagEdit")], ["enabled", t("ch.tagEnable")], ["disabled", t("ch.tagDisable")]] },
    { name: "new_tag", label: t("ch.newTag"), help: t("ch.keepEmpty") },
    { name: "priority", label: t("ch.priorityOnly"), help: t("ch.keepEmpty") },
    { name: "weight", label: t("ch.weight"), help: t("ch.keepEmpty") },
    { name: "models", label: t("ch.models"), help: t("ch.keepEmpty") },
    { name: "group", label: t("ch.groups"), help: t("ch.keepEmpty") },
    { name: "model_mapping", label: t("ch.mapping"), type: "textarea", validate: (v) => (v.trim() ? mappingCheck(v) : "") },
  ];
  formDialog({
    title: t("ch.tags"), fields, submitLabel: t("ch.apply"),
    onSubmit: async (data) => {
      let reply;
      if (data.action === "edit") {
        const body = Object.fromEntries(Object.entries(data).filter(([k, v]) => k !== "action" && v !== ""));
        reply = await api("PUT", "/api/channel/tag", body);
      } else {
        reply = await api("POST", `/api/channel/tag/${data.action}`, { tag: data.tag });
      }
      if (reply.success) { toast(t("ch.changedN", { count: reply.data }), true); reload(); }
      return reply;
    },
  });
}

export async function channels(page) {
  const fields = [
    { name: "keyword", label: t("common.search"), type: "search" },
    { name: "group", label: t("ch.groups") },
    { name: "model", label: t("ch.model") },
    { name: "statuses", label: t("common.status"), type: "select", options: [["", t("log.all")], ...Object.entries(CHANNEL_STATUS).map(([v, k]) => [v, t(k)])] },
    { name: "types", label: t("ch.type"), type: "select", options: [["", t("log.all")], ...CHANNEL_TYPES] },
  ];
  const filters = h("form", { class: "filters" }, fields.map((f) => fieldRow(f)), h("div", { class: "field" }, h("button", { type: "submit" }, t("common.search"))));
  const list = h("div");
  const selected = new Set();
  let current = 1;
  let latest = 0;
  const reload = async () => {
    const mine = ++latest;
    const params = new URLSearchParams({ ...readForm(filters, fields), p: String(current), page_size: "20" });
    const reply = await api("GET", "/api/channel/search?" + params);
    if (mine !== latest) return; // a later reload is under way: an older answer must not win
    if (!report(reply)) return;
    selected.clear();
    list.replaceChildren(table([
      { label: t("ch.select"), cell: (c) => h("input", { type: "checkbox", "aria-label": t("ch.selectOne", { name: c.name }),
        onchange: (e) => (e.target.checked ? selected.add(c.id) : selected.delete(c.id)) }) },
      { label: "ID", cell: (c) => String(c.id) },
      { label: t("ch.name"), cell: (c) => h("span", null, c.name, c.tag ? h("small", { class: "tag" }, c.tag) : null) },
      { label: t("ch.type"), cell: (c) => TYPE_NAME.get(c.type) || String(c.type) },
      { label: t("common.status"), cell: (c) => h("span", { class: "badge s" + c.status }, t(CHANNEL_STATUS[c.status] || "key.unknown")) },
      { label: t("ch.groups"), cell: (c) => c.group },
      { label: t("ch.models"), cell: (c) => h("span", { class: "clip", title: c.models }, c.models) },
      { label: t("ch.priority"), cell: (c) => `${c.priority} / ${c.weight}` },
      { label: t("ch.used"), cell: (c) => money(c.used_quota) },
      { label: t("ch.responseTime"), cell: (c) => h("span", { class: "response-time", title: c.test_time ? t("ch.testedAt", { when: when(c.test_time) }) : "" },
        c.test_time ? `${(c.response_time / 1000).toFixed(2)} s` : t("ch.notTested")) },
      { label: t("ch.balance"), cell: (c) => h("span", { class: "balance", title: c.balance_updated_time ? t("ch.balanceAt", { when: when(c.balance_updated_time) }) : "" },
        c.balance_updated_time ? `$${c.balance.toFixed(2)}` : "—") },
      { label: t("common.actions"), cell: (c) => h("span", { class: "row-actions" },
        h("button", { class: "ghost small", onclick: () => editChannel(c.id, reload) }, t("common.edit")),
        h("button", { class: "ghost small", "data-test": c.id, onclick: () => testChannel(c, reload) }, t("ch.test")),
        h("button", { class: "ghost small", onclick: async () => {
          if (report(await api("GET", `/api/channel/update_balance/${c.id}`))) reload();
        } }, t("ch.updateBalance")),
        h("button", { class: "ghost small", onclick: async () => {
          report(await api("PUT", "/api/channel/", { id: c.id, status: c.status === 1 ? 2 : 1 })); reload();
        } }, t(c.status === 1 ? "common.disable" : "common.enable")),
        h("button", { class: "ghost small danger-text", onclick: async () => {
          if (!(await confirmDialog(t("ch.confirmDelete", { name: c.name })))) return;
          report(await api("DELETE", "/api/channel/" + c.id), t("common.deleted")); reload();
        } }, t("common.delete"))) },
    ], reply.data.items, t("ch.none")), pager(current, 20, reply.data.total, (p) => { current = p; reload(); }));
  };
  filters.addEventListener("submit", (e) => { e.preventDefault(); current = 1; reload(); });
  const bulk = h("div", { class: "toolbar" },
    h("button", { class: "ghost", onclick: () => tagSelected(selected, reload) }, t("ch.tagSelected")),
    h("button", { class: "ghost danger-text", onclick: async () => {
      if (!selected.size) { toast(t("ch.noneSelected")); return; }
      if (!(await confirmDialog(t("ch.confirmDeleteN", { count: selected.size })))) return;
      const reply = await api("POST", "/api/channel/batch", { ids: [...selected] });
      if (report(reply, t("code.deletedN", { count: reply.data }))) reload();
    } }, t("ch.deleteSelected")),
    h("button", { class: "ghost", onclick: () => tagTools(reload) }, t("ch.tags")),
    h("button", { class: "ghost", onclick: async () => report(await api("GET", "/api/channel/test"), t("ch.testAll")) }, t("ch.testAll")),
    h("button", { class: "ghost", onclick: async () => report(await api("GET", "/api/channel/update_balance"), t("ch.updateAllBalances")) }, t("ch.updateAllBalances")),
    h("button", { class: "ghost danger-text", onclick: async () => {
      if (!(await confirmDialog(t("ch.confirmDeleteDisabled")))) return;
      const reply = await api("DELETE", "/api/channel/disabled");
      if (report(reply, t("code.deletedN", { count: reply.data }))) reload();
    } }, t("ch.deleteDisabled")));
  page.append(pageHeader(t("nav.channels"), h("button", { id: "add-channel", onclick: () => editChannel(0, reload) }, t("ch.add"))), filters, bulk, list);
  await reload();
}

// ---------- Users ----------

const ROLE_NAMES = { 1: "user.common", 10: "user.admin", 100: "user.root" };

function userFields(editing) {
  return [
    { name: "username", label: t("auth.username"), required: true },
    { name: "display_name", label: t("me.displayName") },
    { name: "password", label: t("auth.password"), type: "password", required: !editing, help: editing ? t("user.passwordKeep") : "" },
    { name: "group", label: t("key.group"), list: "all-groups" },
    { name: "email", label: t("auth.email"), type: "email" },
    ...(editing ? [] : [{ name: "role", label: t("user.role"), type: "select", options: [[1, t("user.common")], ...(role() >= 100 ? [[10, t("user.admin")]] : [])] }]),
  ];
}

async function editUser(user, reload) {
  const groups = await api("GET", "/api/group/");
  datalist("all-groups", groups.success ? groups.data : []);
  formDialog({
    title: user ? t("user.edit") : t("user.add"), fields: userFields(Boolean(user)), values: user || { group: "default" },
    onSubmit: async (data) => {
      if (user && !data.password) delete data.password;
      const reply = user ? await api("PUT", "/api/user/", { ...data, id: user.id }) : await api("POST", "/api/user/", { ...data, role: Number(data.role) });
      if (reply.success) { toast(t("common.saved"), true); reload(); }
      return reply;
    },
  });
}

function adjustQuota(user, reload) {
  const perUnit = (session.status && session.status.quota_per_unit) || 500000;
  formDialog({
    title: t("user.quotaTitle", { name: user.username }),
    fields: [{ name: "quota_delta", label: t("user.quotaDelta"), type: "number", required: true, help: t("user.quotaHelp", { balance: money(user.quota), unit: perUnit }) }],
    onSubmit: async (data) => {
      const reply = await api("PUT", "/api/user/", { id: user.id, quota_delta: Math.trunc(data.quota_delta) });
      if (reply.success) { toast(t("common.saved"), true); reload(); }
      return reply;
    },
  });
}

// For a user who lost both the authenticator and the backup codes.
async function resetTwoFactor(user) {
  if (!(await confirmDialog(t("user.confirmReset2fa", { name: user.username })))) return;
  report(await api("DELETE", `/api/user/${user.id}/2fa`), t("common.saved"));
}

async function manage(user, action, reload) {
  if (action === "delete" && !(await confirmDialog(t("user.confirmDelete", { name: user.username })))) return;
  report(await api("POST", "/api/user/manage", { id: user.id, action }), t("common.saved"));
  reload();
}

export async function users(page) {
  const list = h("div");
  let current = 1, keyword = "";
  const reload = async () => {
    const reply = await api("GET", `/api/user/search?keyword=${encodeURIComponent(keyword)}&p=${current}&page_size=20`);
    if (!report(reply)) return;
    list.replaceChildren(table([
      { label: "ID", cell: (u) => String(u.id) },
      { label: t("auth.username"), cell: (u) => h("span", null, u.username, u.display_name && u.display_name !== u.username ? h("small", { class: "muted" }, " " + u.display_name) : null) },
      { label: t("key.group"), cell: (u) => u.group },
      { label: t("user.role"), cell: (u) => t(ROLE_NAMES[u.role] || "key.unknown") },
      { label: t("common.status"), cell: (u) => h("span", { class: "badge s" + u.status }, t(u.status === 1 ? "key.enabled" : "key.disabled")) },
      { label: t("dash.balance"), cell: (u) => money(u.quota) },
      { label: t("dash.used"), cell: (u) => money(u.used_quota) },
      { label: t("dash.requests"), cell: (u) => String(u.request_count) },
      { label: t("common.actions"), cell: (u) => h("span", { class: "row-actions" },
        h("button", { class: "ghost small", onclick: () => editUser(u, reload) }, t("common.edit")),
        h("button", { class: "ghost small", onclick: () => adjustQuota(u, reload) }, t("user.quota")),
        u.role === 1 && role() >= 100 ? h("button", { class: "ghost small", onclick: () => manage(u, "promote", reload) }, t("user.promote")) : null,
        u.role === 10 && role() >= 100 ? h("button", { class: "ghost small", onclick: () => manage(u, "demote", reload) }, t("user.demote")) : null,
        h("button", { class: "ghost small", onclick: () => manage(u, u.status === 1 ? "disable" : "enable", reload) }, t(u.status === 1 ? "common.disable" : "common.enable")),
        h("button", { class: "ghost small", onclick: () => resetTwoFactor(u) }, t("user.reset2fa")),
        h("button", { class: "ghost small danger-text", onclick: () => manage(u, "delete", reload) }, t("common.delete"))) },
    ], reply.data.items), pager(current, 20, reply.data.total, (p) => { current = p; reload(); }));
  };
  const search = h("input", { type: "search", placeholder: t("user.search"), "aria-label": t("user.search"),
    onchange: (e) => { keyword = e.target.value.trim(); current = 1; reload(); } });
  page.append(pageHeader(t("nav.users"), h("button", { onclick: () => editUser(null, reload) }, t("user.add"))), h("div", { class: "toolbar" }, search), list);
  await reload();
}

// ---------- Redemption codes ----------

function showCodes(keys) {
  const text = keys.join("\n");
  const dialog = h("dialog", { class: "modal wide" }, h("h2", null, t("code.created", { count: keys.length })),
    h("textarea", { rows: "8", readonly: true, "aria-label": t("code.codes") }, text),
    h("div", { class: "actions" },
      h("button", { class: "ghost", onclick: () => copy(text) }, t("common.copy")),
      h("a", { class: "button ghost", download: "redemption-codes.txt", href: "data:text/plain;charset=utf-8," + encodeURIComponent(text) }, t("code.export")),
      h("button", { onclick: () => dialog.close() }, t("common.close"))));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

function editCode(code, reload) {
  formDialog({
    title: t("code.edit"),
    fields: [
      { name: "name", label: t("code.name"), required: true },
      { name: "quota", label: t("code.quota"), type: "number", min: "1", required: true },
      { name: "max_uses", label: t("code.maxUses"), type: "number", help: t("code.maxUsesHelp") },
      { name: "valid_until", label: t("code.validUntil"), type: "datetime-local" },
    ],
    values: { ...code, valid_until: toLocalInput(code.valid_until) },
    onSubmit: async (data) => {
      const reply = await api("PUT", "/api/redemption/", { ...data, id: code.id, valid_until: fromLocalInput(data.valid_until) });
      if (reply.success) { toast(t("common.saved"), true); reload(); }
      return reply;
    },
  });
}

export async function redemptions(page) {
  const list = h("div");
  const selected = new Set();
  let current = 1, keyword = "";
  const perUnit = (session.status && session.status.quota_per_unit) || 500000;
  const reload = async () => {
    const reply = await api("GET", `/api/redemption/search?keyword=${encodeURIComponent(keyword)}&p=${current}&page_size=20`);
    if (!report(reply)) return;
    selected.clear();
    list.replaceChildren(table([
      { label: t("ch.select"), cell: (c) => h("input", { type: "checkbox", "aria-label": t("ch.selectOne", { name: c.name + " #" + c.id }),
        onchange: (e) => (e.target.checked ? selected.add(c.id) : selected.delete(c.id)) }) },
      { label: "ID", cell: (c) => String(c.id) },
      { label: t("code.name"), cell: (c) => c.name },
      { label: t("code.code"), cell: (c) => h("span", { class: "nowrap" }, h("code", null, c.key.slice(0, 8) + "…"), " ", h("button", { class: "ghost small", onclick: () => copy(c.key) }, t("common.copy"))) },
      { label: t("common.status"), cell: (c) => h("span", { class: "badge s" + c.status }, t({ 1: "code.unused", 2: "code.disabled", 3: "code.used" }[c.status] || "key.unknown")) },
      { label: t("code.quota"), cell: (c) => money(c.quota) },
      { label: t("code.uses"), cell: (c) => `${c.used_count} / ${c.max_uses < 0 ? "∞" : c.max_uses}` },
      { label: t("code.validUntil"), cell: (c) => (c.valid_until ? when(c.valid_until) : t("key.never")) },
      { label: t("common.actions"), cell: (c) => h("span", { class: "row-actions" },
        h("button", { class: "ghost small", onclick: () => editCode(c, reload) }, t("common.edit")),
        c.status !== 3 ? h("button", { class: "ghost small", onclick: async () => {
          report(await api("PUT", "/api/redemption/?status_only=true", { id: c.id, status: c.status === 1 ? 2 : 1 })); reload();
        } }, t(c.status === 1 ? "common.disable" : "common.enable")) : null,
        h("button", { class: "ghost small danger-text", onclick: async () => {
          if (!(await confirmDialog(t("code.confirmDelete", { name: c.name })))) return;
          report(await api("DELETE", "/api/redemption/" + c.id), t("common.deleted")); reload();
        } }, t("common.delete"))) },
    ], reply.data.items), pager(current, 20, reply.data.total, (p) => { current = p; reload(); }));
  };
  const create = () => formDialog({
    title: t("code.create"),
    fields: [
      { name: "name", label: t("code.name"), required: true },
      { name: "quota", label: t("code.quota"), type: "number", min: "1", required: true, help: t("key.quotaHelp", { unit: perUnit }) },
      { name: "count", label: t("code.count"), type: "number", min: "1", max: "100", required: true },
      { name: "key", label: t("code.customKey"), help: t("code.customKeyHelp") },
      { name: "is_gift", label: t("code.isGift"), type: "checkbox" },
      { name: "max_uses", label: t("code.maxUses"), type: "number", help: t("code.maxUsesHelp") },
      { name: "valid_from", label: t("code.validFrom"), type: "datetime-local" },
      { name: "valid_until", label: t("code.validUntil"), type: "datetime-local" },
    ],
    values: { count: 1, quota: perUnit },
    onSubmit: async (data) => {
      const body = { ...data, valid_from: fromLocalInput(data.valid_from), valid_until: fromLocalInput(data.valid_until) };
      if (body.max_uses === "") delete body.max_uses;
      const reply = await api("POST", "/api/redemption/", body);
      if (reply.success) { showCodes(reply.data); reload(); }
      return reply;
    },
  });
  const search = h("input", { type: "search", placeholder: t("code.search"), "aria-label": t("code.search"),
    onchange: (e) => { keyword = e.target.value.trim(); current = 1; reload(); } });
  const deleteByName = () => formDialog({
    title: t("code.deleteByName"),
    fields: [{ name: "name", label: t("code.name"), required: true }],
    onSubmit: async ({ name }) => {
      const counted = await api("GET", "/api/redemption/count-by-name?name=" + encodeURIComponent(name));
      if (!counted.success) return counted;
      if (!counted.data) return { success: false, message: t("code.noneNamed", { name }) };
      if (!(await confirmDialog(t("code.confirmByName", { count: counted.data, name })))) return { success: true };
      const reply = await api("DELETE", "/api/redemption/delete-by-name?name=" + encodeURIComponent(name));
      if (report(reply, t("code.deletedN", { count: reply.data }))) reload();
      return reply;
    },
  });
  const bulk = h("div", { class: "toolbar" }, search,
    h("button", { class: "ghost", id: "codes-disable-selected", onclick: async () => {
      if (!selected.size) { toast(t("ch.noneSelected")); return; }
      const reply = await api("POST", "/api/redemption/batch-disable", { ids: [...selected] });
      if (report(reply, t("code.disabledN", { count: reply.data }))) reload();
    } }, t("code.disableSelected")),
    h("button", { class: "ghost danger-text", id: "codes-delete-by-name", onclick: deleteByName }, t("code.deleteByName")),
    h("button", { class: "ghost danger-text", onclick: async () => {
      if (!(await confirmDialog(t("code.confirmDisabled")))) return;
      const reply = await api("DELETE", "/api/redemption/delete-disabled");
      if (report(reply, t("code.deletedN", { count: reply.data }))) reload();
    } }, t("code.deleteDisabled")));
  page.append(pageHeader(t("nav.redemptions"),
    h("button", { class: "ghost", onclick: async () => {
      if (!(await confirmDialog(t("code.confirmInvalid")))) return;
      const reply = await api("DELETE", "/api/redemption/invalid");
      if (report(reply, t("code.deletedN", { count: reply.data }))) reload();
    } }, t("code.deleteInvalid")),
    h("button", { onclick: create }, t("code.create"))), bulk, list);
  await reload();
}

// ---------- Messages ----------

export async function messages(page) {
  const list = h("div");
  let current = 1;
  const fields = [
    { name: "title", label: t("msg.title"), required: true },
    { name: "content", label: t("msg.content"), type: "textarea", rows: 6, required: true },
    { name: "format", label: t("msg.format"), type: "select", options: [["markdown", "Markdown"], ["text", t("msg.text")]] },
    { name: "to_all", label: t("msg.toAll"), type: "checkbox" },
    { name: "user_ids", label: t("msg.userIds"), help: t("msg.userIdsHelp") },
  ];
  const edit = (m) => formDialog({
    title: m ? t("msg.edit") : t("msg.create"), fields,
    values: m ? { ...m, user_ids: (m.user_ids || []).join(",") } : { to_all: true, format: "markdown" },
    onSubmit: async (data) => {
      const body = { ...data, user_ids: data.user_ids.split(/[\s,]+/).filter(Boolean).map(Number) };
      const reply = m ? await api("PUT", "/api/admin/messages/" + m.id, body) : await api("POST", "/api/admin/messages/", body);
      if (reply.success) { toast(t("common.saved"), true); reload(); }
      return reply;
    },
  });
  const reload = async () => {
    const reply = await api("GET", `/api/admin/messages/?p=${current}&page_size=20`);
    if (!report(reply)) return;
    list.replaceChildren(table([
      { label: "ID", cell: (m) => String(m.id) },
      { label: t("msg.title"), cell: (m) => m.title },
      { label: t("msg.recipients"), cell: (m) => (m.to_all ? t("msg.everyone") : (m.user_ids || []).join(", ")) },
      { label: t("log.time"), cell: (m) => when(m.created_at) },
      { label: t("common.actions"), cell: (m) => h("span", { class: "row-actions" },
        h("button", { class: "ghost small", onclick: () => edit(m) }, t("common.edit")),
        h("button", { class: "ghost small danger-text", onclick: async () => {
          if (!(await confirmDialog(t("msg.confirmDelete", { name: m.title })))) return;
          report(await api("DELETE", "/api/admin/messages/" + m.id), t("common.deleted")); reload();
        } }, t("common.delete"))) },
    ], reply.data.items), pager(current, 20, reply.data.total, (p) => { current = p; reload(); }));
  };
  page.append(pageHeader(t("nav.messages"), h("button", { onclick: () => edit(null) }, t("msg.create"))), list);
  await reload();
}

// ---------- Settings (root) ----------

const TABS = [
  ["set.operation", ["QuotaPerUnit", "PreConsumedQuota", "QuotaForNewUser", "QuotaForInviter", "QuotaForInvitee", "AffEnabled",
    "RebateEnabled", "RebatePercentage", "QuotaRemindThreshold", "CheckInEnabled", "CheckInQuota", "CheckInMaxQuota", "CheckInTimeZone",
    "RetryTimes", "AutomaticDisableChannelEnabled", "AutomaticEnableChannelEnabled", "ChannelDisableThreshold", "AutomaticDisableKeywords",
    "LogConsumeEnabled", "LogChatContentEnabled", "LogErrorEnabled", "SelfUseModeEnabled", "DemoSiteEnabled",
    "fallback_pricing_enabled", "fallback_single_price", "fallback_input_ratio", "fallback_completion_ratio", "redirect_billing_enabled"]],
  ["set.system", ["SystemName", "Logo", "Footer", "Notice", "About", "HomePageContent", "ServerAddress", "TopUpLink", "Chats",
    "DisplayInCurrencyEnabled", "DisplayTokenStatEnabled", "DefaultCollapseSidebar", "DrawingEnabled", "TaskEnabled",
    "DataExportEnabled", "DataExportInterval", "DataExportDefaultTime", "custom_head_html", "global_css", "global_js", "general_setting.docs_link"]],
  ["set.ratios", ["ModelRatio", "ModelPrice", "CompletionRatio", "CacheRatio", "GroupRatio", "UserUsableGroups"]],
  ["set.payment", ["PayAddress", "CustomCallbackAddress", "EpayId", "EpayKey", "Price", "MinTopUp", "TopupGroupRatio"]],
  ["set.auth", ["PasswordLoginEnabled", "PasswordRegisterEnabled", "RegisterEnabled", "EmailVerificationEnabled",
    "EmailDomainRestrictionEnabled", "EmailAliasRestrictionEnabled", "EmailDomainWhitelist", "GitHubOAuthEnabled", "GitHubClientId",
    "GitHubClientSecret", "LinuxDOOAuthEnabled", "LinuxDOClientId", "LinuxDOClientSecret", "LinuxDOMinimumTrustLevel",
    "IDCFlareOAuthEnabled", "IDCFlareClientId", "IDCFlareClientSecret", "IDCFlareMinimumTrustLevel", "TelegramOAuthEnabled",
    "TelegramBotToken", "TelegramBotName", "WeChatAuthEnabled", "WeChatServerAddress", "WeChatServerToken", "WeChatAccountQRCodeImageURL",
    "TurnstileCheckEnabled", "TurnstileSiteKey", "TurnstileSecretKey", "oidc.enabled", "oidc.client_id", "oidc.client_secret",
    "oidc.well_known", "oidc.authorization_endpoint", "oidc.token_endpoint", "oidc.user_info_endpoint"]],
  ["set.smtp", ["SMTPServer", "SMTPPort", "SMTPSSLEnabled", "SMTPAccount", "SMTPFrom", "SMTPToken"]],
  ["set.rateLimit", ["ModelRequestRateLimitEnabled", "ModelRequestRateLimitDurationMinutes", "ModelRequestRateLimitCount",
    "ModelRequestRateLimitSuccessCount", "global.rate_limit_exempt_enabled", "global.rate_limit_exempt_group"]],
  ["set.sensitive", ["CheckSensitiveEnabled", "CheckSensitiveOnPromptEnabled", "StopOnSensitiveEnabled", "StreamCacheQueueLength",
    "SensitiveWords", "SafeCheckExemptEnabled", "SafeCheckExemptGroup", "global.safe_check_exempt_enabled", "global.safe_check_exempt_group"]],
];
const TABLE_KEYS = new Set(["ModelRatio", "ModelPrice", "CompletionRatio", "CacheRatio", "GroupRatio", "UserUsableGroups", "TopupGroupRatio"]);
const SECRET = /(Token|Secret|Key|_secret|_token|_key)$/;
const LONG = new Set(["Footer", "Notice", "About", "HomePageContent", "Chats", "AutomaticDisableKeywords", "SensitiveWords",
  "custom_head_html", "global_css", "global_js", "EmailDomainWhitelist"]);

// A JSON object as an editable two-column table; numeric values stay numbers.
function ratioTable(key, text) {
  let entries = [];
  try { entries = Object.entries(JSON.parse(text || "{}")); } catch { entries = []; }
  const body = h("tbody");
  const addRow = (name = "", value = "") => body.append(h("tr", null,
    h("td", null, h("input", { class: "k", value: name, "aria-label": t("set.name") })),
    h("td", null, h("input", { class: "v", value: String(value), "aria-label": t("set.value") })),
    h("td", null, h("button", { type: "button", class: "ghost small", onclick: (e) => e.target.closest("tr").remove() }, t("common.delete")))));
  entries.forEach(([k, v]) => addRow(k, v));
  const wrap = h("div", { class: "ratio-table", "data-key": key },
    h("div", { class: "table-wrap" }, h("table", { class: "grid compact" }, h("thead", null, h("tr", null, h("th", null, t("set.name")), h("th", null, t("set.value")), h("th"))), body)),
    h("button", { type: "button", class: "ghost small", onclick: () => addRow() }, t("set.addRow")));
  wrap.serialize = () => {
    const out = {};
    for (const row of body.rows) {
      const k = row.querySelector(".k").value.trim();
      const raw = row.querySelector(".v").value.trim();
      if (!k) continue;
      if (key === "UserUsableGroups") { out[k] = raw; continue; }
      if (raw === "" || Number.isNaN(Number(raw))) throw new Error(t("set.notNumber", { key, name: k }));
      out[k] = Number(raw);
    }
    return JSON.stringify(out);
  };
  return wrap;
}

function optionControl(key, value) {
  if (TABLE_KEYS.has(key)) return ratioTable(key, value);
  if (value === "true" || value === "false") return h("input", { type: "checkbox", name: key, id: "o-" + key, checked: value === "true" });
  if (SECRET.test(key) && value === undefined) return h("input", { type: "password", name: key, id: "o-" + key, placeholder: t("set.secretKeep"), autocomplete: "off" });
  if (LONG.has(key) || (value || "").length > 80) return h("textarea", { name: key, id: "o-" + key, rows: "4" }, value || "");
  return h("input", { name: key, id: "o-" + key, value: value ?? "" });
}

function controlValue(control) {
  if (control.serialize) return control.serialize();
  return control.type === "checkbox" ? String(control.checked) : control.value;
}

export async function settings(page) {
  const reply = await api("GET", "/api/option/");
  page.append(pageHeader(t("nav.settings")));
  if (!report(reply)) return;
  const values = Object.fromEntries(reply.data.map((o) => [o.key, o.value]));
  const listed = new Set(TABS.flatMap(([, keys]) => keys));
  const tabs = [...TABS, ["set.other", Object.keys(values).filter((k) => !listed.has(k)).sort()]];
  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const panel = h("div", { class: "tab-panel", role: "tabpanel" });
  const show = (index) => {
    const [label, keys] = tabs[index];
    [...tabBar.children].forEach((b, i) => b.setAttribute("aria-selected", String(i === index)));
    const controls = keys.map((key) => [key, optionControl(key, values[key])]);
    const form = h("form", { class: "stack" }, controls.map(([key, control]) => h("div", { class: "field" + (control.type === "checkbox" ? " field-check" : "") },
      h("label", { for: control.id || null }, control.type === "checkbox" ? control : null, h("code", null, key)), control.type === "checkbox" ? null : control)),
      h("div", { class: "actions" }, h("button", { type: "submit" }, t("set.saveTab", { tab: t(label) }))));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let changed = 0;
      for (const [key, control] of controls) {
        let value;
        try { value = controlValue(control); } catch (err) { toast(err.message); return; }
        if (control.type === "password" && !value) continue;
        if (value === (values[key] ?? "")) continue;
        const r = await api("PUT", "/api/option/", { key, value });
        if (!r.success) { toast(`${key}: ${r.message}`); return; }
        values[key] = value;
        changed += 1;
      }
      toast(t("set.saved", { count: changed }), true);
      if (changed) { const status = await api("GET", "/api/status"); if (status.success) session.status = status.data; }
    });
    panel.replaceChildren(form);
  };
  tabs.forEach(([label], i) => tabBar.append(h("button", { type: "button", role: "tab", class: "tab", onclick: () => show(i) }, t(label))));
  page.append(tabBar, panel);
  show(0);
}
