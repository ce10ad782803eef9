// Public pages: home, pricing, about, sign-in, registration, password reset, first-run setup.
import { api, session, signedIn } from "../api.js";
import { t } from "../i18n.js";
import { copy, fieldRow, h, pageHeader, readForm, report, section, table, toast, when } from "../ui.js";
import { marked } from "../../vendor/marked.esm.js";
import { passkeySignIn, passkeysSupported, twoFactorStep } from "./security.js";

// Markdown, HTML, a whole HTML document (in a frame) or a URL (in a frame), as upstream shows them.
function richContent(text) {
  const trimmed = text.trim();
  if (/^https?:\/\/\S+$/.test(trimmed)) return h("iframe", { class: "content-frame", src: trimmed, title: "content" });
  if (/^<!doctype html|^<html/i.test(trimmed)) return h("iframe", { class: "content-frame", srcdoc: trimmed, title: "content" });
  return h("div", { class: "md", html: marked.parse(trimmed) });
}

export async function home(page) {
  const reply = await api("GET", "/api/home_page_content");
  const content = reply.success ? reply.data : "";
  if (content) { page.append(richContent(content)); return; }
  const s = session.status || {};
  page.append(
    pageHeader(s.system_name || "Veloera"),
    section(t("home.status"),
      h("dl", { class: "facts" },
        h("dt", null, t("home.version")), h("dd", null, s.version || "-"),
        h("dt", null, t("home.started")), h("dd", null, when(s.start_time)),
        h("dt", null, t("home.apiBase")), h("dd", null, h("code", null, (s.server_address || "") + "/v1")),
        h("dt", null, t("home.source")), h("dd", null, h("a", { href: "https://github.com/Veloera/Veloera" }, "github.com/Veloera/Veloera")),
        h("dt", null, t("home.license")), h("dd", null, "GPL v3-or-later"))),
    h("p", null, session.user
      ? h("a", { class: "button", href: "/console" }, t("nav.dashboard"))
      : h("a", { class: "button", href: "/login" }, t("nav.login"))));
}

export async function about(page) {
  const reply = await api("GET", "/api/about");
  page.append(pageHeader(t("nav.about")));
  if (reply.success && reply.data) page.append(richContent(reply.data));
  else page.append(h("p", null, t("about.empty")), h("p", null, h("a", { href: "https://github.com/Veloera/Veloera" }, "Veloera")));
}

function priceText(item) {
  if (!item.priced) return t("pricing.unpriced");
  if (item.quota_type === 1) return t("pricing.perCall", { price: "$" + Number(item.model_price).toFixed(4) });
  return `${t("pricing.in")} $${Number(item.input_price_per_million).toFixed(4)} / ${t("pricing.out")} $${Number(item.output_price_per_million).toFixed(4)}`;
}

export async function pricing(page) {
  const reply = await api("GET", "/api/pricing");
  page.append(pageHeader(t("nav.pricing")));
  if (!report(reply)) return;
  const groups = Object.keys(reply.group_ratio || {}).sort();
  const search = h("input", { type: "search", placeholder: t("pricing.search"), "aria-label": t("pricing.search") });
  const group = h("select", { "aria-label": t("pricing.group") }, h("option", { value: "" }, t("pricing.allGroups")),
    groups.map((g) => h("option", { value: g }, `${g} (×${reply.group_ratio[g]})`)));
  const holder = h("div");
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    // A model no enabled channel serves (no group) cannot be used, so it is not offered.
    const rows = reply.data.filter((m) => m.enable_groups.length && m.model_name.toLowerCase().includes(q)
      && (!group.value || m.enable_groups.includes(group.value)));
    holder.replaceChildren(table([
      { label: t("pricing.model"), cell: (m) => h("code", null, m.model_name) },
      { label: t("pricing.type"), cell: (m) => t(m.quota_type === 1 ? "pricing.byCall" : "pricing.byToken") },
      { label: t("pricing.price"), cell: priceText },
      { label: t("pricing.groups"), cell: (m) => m.enable_groups.join(", ") },
    ], rows));
  };
  search.addEventListener("input", draw);
  group.addEventListener("change", draw);
  page.append(h("div", { class: "toolbar" }, search, group), h("p", { class: "muted" }, t("pricing.note")), holder);
  draw();
}

function authForm(fields, submitLabel, onSubmit) {
  const form = h("form", { class: "stack narrow" }, fields.map((f) => fieldRow(f)), h("button", { type: "submit" }, submitLabel));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await onSubmit(readForm(form, fields), form);
  });
  return form;
}

// Cloudflare Turnstile: its script can only come from Cloudflare, so it is loaded only when the
// administrator switched the check on (TurnstileCheckEnabled). The server checks the token once
// per browser session; later protected calls (redeem, check-in) pass without one.
let turnstileScript = null;

export function turnstileWidget() {
  const s = session.status || {};
  const box = h("div", { class: "turnstile" });
  box.token = "";
  if (!s.turnstile_check) return box;
  turnstileScript = turnstileScript || new Promise((resolve, reject) => {
    const script = h("script", { src: "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit", async: true });
    script.onload = resolve;
    script.onerror = reject;
    document.head.append(script);
  });
  turnstileScript.then(() => window.turnstile.render(box, {
    sitekey: s.turnstile_site_key, callback: (token) => { box.token = token; },
  }), () => toast("Turnstile cannot be loaded"));
  return box;
}

export function withTurnstile(path, box) {
  return box && box.token ? path + (path.includes("?") ? "&" : "?") + "turnstile=" + encodeURIComponent(box.token) : path;
}

// Sends the browser to the provider's consent page with a fresh state; the provider sends it
// back to /oauth/<provider>, which finishes the sign-in (or the binding, when signed in).
export async function startOAuth(provider) {
  const s = session.status || {};
  const aff = localStorage.getItem("veloera-aff") || "";
  const reply = await api("GET", "/api/oauth/state?aff=" + encodeURIComponent(aff));
  if (!report(reply)) return;
  const state = reply.data;
  if (provider === "github") {
    location.href = "https://github.com/login/oauth/authorize?" + new URLSearchParams({ client_id: s.github_client_id, state, scope: "user:email" });
    return;
  }
  if (provider === "linuxdo" || provider === "idcflare") {
    const host = provider === "linuxdo" ? "https://connect.linux.do" : "https://connect.idcflare.com";
    location.href = host + "/oauth2/authorize?" + new URLSearchParams({ response_type: "code",
      client_id: s[provider + "_client_id"], redirect_uri: location.origin + "/oauth/" + provider, state });
    return;
  }
  const url = new URL(s.oidc_authorization_endpoint);
  url.search = new URLSearchParams({ client_id: s.oidc_client_id, redirect_uri: location.origin + "/oauth/oidc",
    response_type: "code", scope: "openid profile email", state }).toString();
  location.href = url.toString();
}

// The providers /api/status advertises: [provider, button label key, user field, name].
export function oauthProviders() {
  const s = session.status || {};
  return [
    s.github_oauth && ["github", "auth.withGitHub", "github_id", "GitHub"],
    s.oidc_enabled && s.oidc_authorization_endpoint && ["oidc", "auth.withOIDC", "oidc_id", "OIDC"],
    s.linuxdo_oauth && ["linuxdo", "auth.withLinuxDO", "linux_do_id", "LinuxDO"],
    s.idcflare_oauth && ["idcflare", "auth.withIDCFlare", "idc_flare_id", "IDC Flare"],
  ].filter(Boolean);
}

// The Telegram login widget can only come from telegram.org: loaded only when the administrator
// switched Telegram sign-in on. `path` is /api/oauth/telegram/login or /bind.
export function telegramWidget(path, done, aff = "") {
  const s = session.status || {};
  const box = h("div", { class: "telegram-login" });
  if (!s.telegram_oauth || !s.telegram_bot_name) return box;
  const callback = "veloeraTelegramAuth";
  window[callback] = async (user) => {
    const reply = await api("GET", path + "?" + new URLSearchParams(aff ? { ...user, aff } : user));
    if (report(reply)) await done(reply.data);
  };
  box.append(h("script", { async: true, src: "https://telegram.org/js/telegram-widget.js?22",
    "data-telegram-login": s.telegram_bot_name, "data-size": "large", "data-onauth": callback + "(user)",
    "data-request-access": "write" }));
  return box;
}

// WeChat: the official account's QR code; the user sends it a message and types the code it
// answers with. `path` is /api/oauth/wechat or /api/oauth/wechat/bind.
export function wechatForm(path, done, aff = "") {
  const s = session.status || {};
  if (!s.wechat_login) return h("div");
  const code = h("input", { id: "wechat-code", placeholder: t("auth.wechatCode") });
  const form = h("form", { class: "inline", id: "wechat-form" },
    s.wechat_qrcode ? h("img", { src: s.wechat_qrcode, alt: "WeChat", width: 160, height: 160 }) : "",
    h("p", { class: "help" }, t("auth.wechatHelp")), code, " ", h("button", { type: "submit" }, t("auth.withWeChat")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await api("GET", path + "?" + new URLSearchParams(aff ? { code: code.value.trim(), aff } : { code: code.value.trim() }));
    if (report(reply)) await done(reply.data);
  });
  return form;
}

function oauthButtons() {
  const row = h("p", { class: "oauth-buttons" });
  for (const [provider, label] of oauthProviders()) {
    row.append(h("button", { type: "button", class: "ghost", id: "oauth-" + provider, onclick: () => startOAuth(provider) }, t(label)), " ");
  }
  return row;
}

async function finishSignIn(user, navigate, refreshUnread) {
  signedIn(user);
  const me = await api("GET", "/api/user/self");
  if (me.success) signedIn(me.data);
  refreshUnread();
  const next = new URLSearchParams(location.search).get("next");
  navigate(next && next.startsWith("/") ? next : "/console");
}

// A signed-in answer, or the second step when the account has two-factor authentication on.
async function afterFirstFactor(page, data, navigate, refreshUnread) {
  const done = (user) => finishSignIn(user, navigate, refreshUnread);
  if (data && data.require_2fa) {
    page.replaceChildren(pageHeader(t("sec.twoFactor")), twoFactorStep(done));
    return;
  }
  await done(data);
}

export async function login(page, { navigate, refreshUnread }) {
  const fields = [
    { name: "username", label: t("auth.username"), required: true },
    { name: "password", label: t("auth.password"), type: "password", required: true },
  ];
  const widget = turnstileWidget();
  const next = (data) => afterFirstFactor(page, data, navigate, refreshUnread);
  const form = authForm(fields, t("nav.login"), async (data) => {
    const reply = await api("POST", withTurnstile("/api/user/login", widget), data);
    if (!report(reply)) return;
    await next(reply.data);
  });
  form.insertBefore(widget, form.lastElementChild);
  const passkey = passkeysSupported()
    ? h("button", { type: "button", class: "ghost", id: "passkey-login", onclick: async () => {
      const user = await passkeySignIn();
      if (user) await finishSignIn(user, navigate, refreshUnread);
    } }, t("sec.withPasskey"))
    : null;
  page.append(pageHeader(t("nav.login")), form, h("p", { class: "oauth-buttons" }, passkey), oauthButtons(),
    telegramWidget("/api/oauth/telegram/login", next), wechatForm("/api/oauth/wechat", next),
    h("p", null, h("a", { href: "/register" }, t("auth.noAccount")), " · ", h("a", { href: "/reset" }, t("auth.forgot"))));
}

// /oauth/<provider>: the provider's redirect; signs in, or binds when signed in.
export async function oauthCallback(page, { navigate, refreshUnread }) {
  const provider = location.pathname.split("/").pop();
  const params = new URLSearchParams(location.search);
  page.append(pageHeader(t("nav.login")), h("p", null, t("auth.finishing")));
  const reply = await api("GET", `/api/oauth/${provider}?` + new URLSearchParams({ code: params.get("code") || "", state: params.get("state") || "" }));
  if (!report(reply)) { navigate(session.user ? "/console/personal" : "/login", true); return; }
  if (reply.data && reply.data.action === "bind") { toast(t("auth.bound")); navigate("/console/personal", true); return; }
  await afterFirstFactor(page, reply.data, navigate, refreshUnread);
}

export async function register(page, { navigate }) {
  const s = session.status || {};
  page.append(pageHeader(t("nav.register")));
  if (!s.register_enabled || !s.password_register_enabled) { page.append(h("p", null, t("auth.registerClosed"))); return; }
  const aff = new URLSearchParams(location.search).get("aff") || localStorage.getItem("veloera-aff") || "";
  if (aff) localStorage.setItem("veloera-aff", aff);
  const fields = [
    { name: "username", label: t("auth.username"), required: true },
    { name: "password", label: t("auth.password"), type: "password", required: true },
    { name: "password2", label: t("auth.confirm"), type: "password", required: true },
  ];
  if (s.email_verification) {
    fields.push({ name: "email", label: t("auth.email"), type: "email", required: true },
      { name: "verification_code", label: t("auth.code"), required: true });
  }
  const widget = turnstileWidget();
  const form = authForm(fields, t("nav.register"), async (data) => {
    const reply = await api("POST", withTurnstile("/api/user/register", widget), { ...data, aff_code: aff });
    if (!report(reply, t("auth.registered"))) return;
    navigate("/login");
  });
  form.insertBefore(widget, form.lastElementChild);
  if (s.email_verification) {
    form.append(h("button", { type: "button", class: "ghost", onclick: async () => {
      const email = form.elements.email.value;
      report(await api("GET", withTurnstile("/api/verification?email=" + encodeURIComponent(email), widget)), t("auth.codeSent"));
    } }, t("auth.sendCode")));
  }
  // Telegram and WeChat register an unknown account as they sign in (with the invite code).
  const signedUp = async (data) => { if (data && !data.require_2fa) await finishSignIn(data, navigate, () => {}); };
  page.append(form, oauthButtons(), telegramWidget("/api/oauth/telegram/login", signedUp, aff),
    wechatForm("/api/oauth/wechat", signedUp, aff));
}

export async function reset(page) {
  const params = new URLSearchParams(location.search);
  page.append(pageHeader(t("nav.reset")));
  if (params.get("token")) {
    // The mailed link: a click (not the page load, which a mail scanner may trigger) resets.
    const result = h("div");
    page.append(h("p", null, params.get("email")), h("button", { id: "confirm-reset", onclick: async (e) => {
      const reply = await api("POST", "/api/user/reset", { email: params.get("email"), token: params.get("token") });
      if (!report(reply)) return;
      e.target.disabled = true;
      result.replaceChildren(h("p", null, t("auth.newPassword")), h("code", { id: "new-password" }, String(reply.data)), " ",
        h("button", { class: "ghost small", onclick: () => copy(String(reply.data)) }, t("common.copy")));
    } }, t("auth.confirmReset")), result);
    return;
  }
  const widget = turnstileWidget();
  const form = authForm([{ name: "email", label: t("auth.email"), type: "email", required: true }], t("auth.sendReset"), async (data) => {
    report(await api("GET", withTurnstile("/api/reset_password?email=" + encodeURIComponent(data.email), widget)), t("auth.resetSent"));
  });
  form.insertBefore(widget, form.lastElementChild);
  page.append(form);
}

export async function setup(page, { navigate }) {
  page.append(pageHeader(t("nav.setup")));
  const state = await api("GET", "/api/setup");
  if (state.success && state.data.status) { page.append(h("p", null, t("setup.done")), h("a", { href: "/login" }, t("nav.login"))); return; }
  const fields = [
    { name: "username", label: t("auth.username"), required: true },
    { name: "password", label: t("auth.password"), type: "password", required: true },
    { name: "confirmPassword", label: t("auth.confirm"), type: "password", required: true },
    { name: "SelfUseModeEnabled", label: t("setup.selfUse"), type: "checkbox", help: t("setup.selfUseHelp") },
    { name: "DemoSiteEnabled", label: t("setup.demo"), type: "checkbox" },
  ];
  page.append(h("p", null, t("setup.intro")), authForm(fields, t("setup.submit"), async (data) => {
    const reply = await api("POST", "/api/setup", data);
    if (!report(reply)) return;
    toast(t("setup.complete"), true);
    session.status = { ...session.status, setup: true };
    navigate("/login");
  }));
}
