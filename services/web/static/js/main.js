// The console shell: routes with real URLs, navigation by role, language, theme, notice, footer.
import { api, role, session, signedIn, signedOut } from "./api.js";
import { applyStatic, lang, setLang, t } from "./i18n.js";
import { h } from "./ui.js";
import * as pub from "./pages/public.js";
import * as user from "./pages/user.js";
import * as admin from "./pages/admin.js";
import * as taskLogs from "./pages/tasks.js";
import { marked } from "../vendor/marked.esm.js";

const GUEST = 0, USER = 1, ADMIN = 10, ROOT = 100;

// nav: shown in the side navigation; guestOnly: hidden once signed in; when: shown only while
// /api/status says that feature is on (the page itself stays reachable by URL).
const ROUTES = [
  { path: "/", title: "nav.home", role: GUEST, nav: true, render: pub.home },
  { path: "/pricing", title: "nav.pricing", role: GUEST, nav: true, render: pub.pricing },
  { path: "/about", title: "nav.about", role: GUEST, nav: true, render: pub.about },
  { path: "/login", title: "nav.login", role: GUEST, nav: true, guestOnly: true, render: pub.login },
  { path: "/register", title: "nav.register", role: GUEST, nav: true, guestOnly: true, render: pub.register },
  { path: "/reset", title: "nav.reset", role: GUEST, render: pub.reset },
  { path: "/setup", title: "nav.setup", role: GUEST, render: pub.setup },
  { path: "/oauth/github", title: "nav.login", role: GUEST, render: pub.oauthCallback },
  { path: "/oauth/oidc", title: "nav.login", role: GUEST, render: pub.oauthCallback },
  { path: "/oauth/linuxdo", title: "nav.login", role: GUEST, render: pub.oauthCallback },
  { path: "/oauth/idcflare", title: "nav.login", role: GUEST, render: pub.oauthCallback },
  { path: "/console", title: "nav.dashboard", role: USER, nav: true, render: user.dashboard },
  { path: "/console/token", title: "nav.keys", role: USER, nav: true, render: user.keys },
  { path: "/console/log", title: "nav.logs", role: USER, nav: true, render: user.logs },
  { path: "/console/playground", title: "nav.playground", role: USER, nav: true, render: user.playground },
  { path: "/console/midjourney", title: "nav.drawings", role: USER, nav: true, when: "enable_drawing", render: taskLogs.drawings },
  { path: "/console/task", title: "nav.tasks", role: USER, nav: true, when: "enable_task", render: taskLogs.tasks },
  { path: "/console/topup", title: "nav.wallet", role: USER, nav: true, render: user.wallet },
  { path: "/console/inbox", title: "nav.inbox", role: USER, nav: true, render: user.inbox },
  { path: "/console/personal", title: "nav.personal", role: USER, nav: true, render: user.personal },
  { path: "/console/channel", title: "nav.channels", role: ADMIN, nav: true, render: admin.channels },
  { path: "/console/user", title: "nav.users", role: ADMIN, nav: true, render: admin.users },
  { path: "/console/redemption", title: "nav.redemptions", role: ADMIN, nav: true, render: admin.redemptions },
  { path: "/console/message", title: "nav.messages", role: ADMIN, nav: true, render: admin.messages },
  { path: "/console/setting", title: "nav.settings", role: ROOT, nav: true, render: admin.settings },
];

// Upstream Veloera's page paths (e.g. EPay's return URL /log) lead to the same pages.
const ALIASES = {
  "/token": "/console/token", "/log": "/console/log", "/topup": "/console/topup", "/channel": "/console/channel",
  "/user": "/console/user", "/redemption": "/console/redemption", "/setting": "/console/setting",
  "/midjourney": "/console/midjourney", "/task": "/console/task",
  "/chat": "/console/playground", "/detail": "/console", "/dashboard": "/console", "/user/reset": "/reset",
};

const $ = (id) => document.getElementById(id);

let moved = false; // set by a navigation inside the console: the new page then gets focus

export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  moved = true;
  render();
}

function visible(route) {
  return route.nav && route.role <= role() && !(route.guestOnly && session.user)
    && !(route.when && !(session.status || {})[route.when]);
}

function renderNav(current) {
  const groups = [[GUEST, "nav.site"], [USER, "nav.account"], [ADMIN, "nav.admin"]];
  const nav = $("sidebar");
  nav.replaceChildren(...groups.map(([level, label]) => {
    const items = ROUTES.filter((r) => visible(r) && (level === ADMIN ? r.role >= ADMIN : r.role === level));
    if (!items.length) return "";
    return h("div", { class: "nav-group" }, h("div", { class: "nav-label" }, t(label)),
      h("ul", null, items.map((r) => h("li", null, h("a", {
        href: r.path, "aria-current": r === current ? "page" : null, "data-nav": r.path,
      }, t(r.title))))));
  }));
}

async function refreshUnread() {
  const badge = $("unread");
  if (!session.user) { $("inbox-link").hidden = true; return; }
  const reply = await api("GET", "/api/user/messages/unread_count");
  $("inbox-link").hidden = false;
  const count = reply.success ? Number(reply.data) : 0;
  badge.textContent = count ? String(count) : "";
  badge.hidden = !count;
}

function renderShell() {
  const status = session.status || {};
  const name = status.system_name || "Veloera";
  $("system-name").textContent = name;
  const logo = $("logo");
  logo.hidden = !status.logo;
  if (status.logo) logo.src = status.logo;
  $("custom-footer").innerHTML = status.footer_html || "";
  $("logout").hidden = !session.user;
  $("user-name").textContent = session.user ? (session.user.display_name || session.user.username) : "";
  applyStatic();
}

let renderSeq = 0;

export async function render() {
  const seq = ++renderSeq;
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const status = session.status || {};
  if (status.setup === false && path !== "/setup") return navigate("/setup", true);
  if (ALIASES[path]) return navigate(ALIASES[path] + location.search, true);
  const route = ROUTES.find((r) => r.path === path);
  const view = $("view");
  renderShell();
  renderNav(route);
  document.body.classList.remove("nav-open");
  $("nav-toggle").setAttribute("aria-expanded", "false");
  if (!route) {
    document.title = t("page.notFound");
    view.replaceChildren(h("h1", null, t("page.notFound")), h("p", null, h("a", { href: "/" }, t("nav.home"))));
    return;
  }
  if (route.role > GUEST && !session.user) return navigate("/login?next=" + encodeURIComponent(path), true);
  document.title = `${t(route.title)} · ${status.system_name || "Veloera"}`;
  if (route.role > role()) {
    view.replaceChildren(h("h1", null, t("page.forbidden")), h("p", null, t("page.forbiddenText")));
    return;
  }
  view.replaceChildren(h("p", { class: "muted" }, t("common.loading")));
  const page = h("div", { class: "page", "data-page": route.path });
  await route.render(page, { navigate, refreshUser, refreshUnread });
  if (seq !== renderSeq) return; // a later navigation wins
  view.replaceChildren(page);
  if (moved && !page.querySelector("[autofocus]")) view.focus({ preventScroll: true }); // keyboard and screen readers start at the new page
  moved = false;
}

export async function refreshUser() {
  if (!session.userId) return null;
  const reply = await api("GET", "/api/user/self");
  if (!reply.success) { signedOut(); return null; }
  signedIn(reply.data);
  return reply.data;
}

async function loadNotice() {
  const reply = await api("GET", "/api/notice");
  const box = $("notice");
  const text = reply.success ? reply.data : "";
  if (!text || localStorage.getItem("veloera-notice-closed") === text) { box.hidden = true; return; }
  box.replaceChildren(h("div", { class: "md", html: marked.parse(text) }),
    h("button", { class: "ghost", "aria-label": t("common.close"), onclick: () => {
      localStorage.setItem("veloera-notice-closed", text); box.hidden = true;
    } }, "×"));
  box.hidden = false;
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("veloera-theme", theme);
  $("theme-toggle").textContent = theme === "dark" ? "☀" : "☾";
  $("theme-toggle").setAttribute("aria-label", t(theme === "dark" ? "shell.light" : "shell.dark"));
}

function bindShell() {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || link.target || link.origin !== location.origin || event.ctrlKey || event.metaKey) return;
    const url = new URL(link.href);
    if (url.pathname.startsWith("/api/") || url.pathname === "/veloera" || url.pathname.startsWith("/static/")) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", render);
  window.addEventListener("veloera-signed-out", () => {
    const path = location.pathname;
    if (path.startsWith("/console")) navigate("/login?next=" + encodeURIComponent(path), true);
  });
  $("nav-toggle").addEventListener("click", () => {
    const open = document.body.classList.toggle("nav-open");
    $("nav-toggle").setAttribute("aria-expanded", String(open));
  });
  $("lang-toggle").addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    applyTheme(document.documentElement.dataset.theme);
    render();
    loadNotice();
  });
  $("theme-toggle").addEventListener("click", () => {
    applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
    if (document.querySelector(".chart")) render(); // charts take their colours when drawn
  });
  $("logout").addEventListener("click", async () => {
    await api("POST", "/api/user/logout");
    signedOut();
    refreshUnread();
    navigate("/login");
  });
}

async function start() {
  const stored = localStorage.getItem("veloera-theme");
  const prefersDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  bindShell();
  applyTheme(stored || (prefersDark ? "dark" : "light"));
  const reply = await api("GET", "/api/status");
  session.status = reply.success ? reply.data : {};
  await refreshUser();
  loadNotice();
  refreshUnread();
  await render();
}

start();
