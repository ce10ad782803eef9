// Drawing logs (Midjourney) and task logs (Suno, video): one's own, or everyone's for admins,
// read through /api/mj and /api/task (upstream's midjourney and task log pages).
import { api, role } from "../api.js";
import { t } from "../i18n.js";
import { fieldRow, fromLocalInput, h, money, pageHeader, pager, readForm, report, table, when } from "../ui.js";

const STATUSES = ["", "NOT_START", "SUBMITTED", "QUEUED", "IN_PROGRESS", "SUCCESS", "FAILURE", "UNKNOWN"];

function statusBadge(status) {
  const kind = status === "SUCCESS" ? "s1" : status === "FAILURE" ? "s2" : "s0";
  return h("span", { class: "badge " + kind }, t("task.status." + status));
}

function cost(item) {
  return item.refunded ? h("span", null, money(item.quota), " ", h("small", null, t("task.refunded"))) : money(item.quota);
}

// A filter form, a table and a pager over one log endpoint; `rows` says what each row shows.
async function logPage(page, { title, path, fields, columns, seconds }) {
  const admin = role() >= 10;
  const all = [...fields, { name: "start", label: t("log.from"), type: "datetime-local" },
    { name: "end", label: t("log.to"), type: "datetime-local" },
    ...(admin ? [{ name: "channel_id", label: t("log.channel"), type: "number" }] : [])];
  const form = h("form", { class: "filters" }, all.map((f) => fieldRow(f)),
    h("div", { class: "field" }, h("button", { type: "submit" }, t("common.search"))));
  const list = h("div");
  let current = 1;
  const load = async () => {
    const d = readForm(form, all);
    const params = new URLSearchParams({ p: String(current), page_size: "20",
      start_timestamp: String(fromLocalInput(d.start)), end_timestamp: String(fromLocalInput(d.end)) });
    for (const f of fields) if (d[f.name]) params.set(f.name, d[f.name]);
    if (admin && d.channel_id) params.set("channel_id", String(d.channel_id));
    const reply = await api("GET", `${admin ? path + "/" : path + "/self"}?${params}`);
    if (!report(reply)) return;
    const time = (v) => when(seconds ? v : Math.floor(v / 1000));
    list.replaceChildren(table([
      { label: t("task.submitted"), cell: (r) => time(r.submit_time) },
      ...(admin ? [{ label: t("log.user"), cell: (r) => "#" + r.user_id }, { label: t("log.channel"), cell: (r) => String(r.channel_id) }] : []),
      ...columns,
      { label: t("common.status"), cell: (r) => statusBadge(r.status) },
      { label: t("task.progress"), cell: (r) => r.progress },
      { label: t("log.cost"), cell: cost },
      { label: t("task.failReason"), cell: (r) => r.fail_reason || "" },
    ], reply.data.items, t("task.none")), pager(current, 20, reply.data.total, (p) => { current = p; load(); }));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); current = 1; load(); });
  page.append(pageHeader(title), form, list);
  await load();
}

export async function drawings(page) {
  await logPage(page, {
    title: t("nav.drawings"), path: "/api/mj", seconds: false,
    fields: [{ name: "mj_id", label: t("task.id") }],
    columns: [
      { label: t("task.id"), cell: (r) => h("code", null, r.mj_id) },
      { label: t("task.action"), cell: (r) => r.action },
      { label: t("task.prompt"), cell: (r) => h("span", { class: "clip", title: r.prompt }, r.prompt) },
      { label: t("task.image"), cell: (r) => (r.image_url ? h("a", { href: r.image_url, target: "_blank", rel: "noopener" }, t("task.open")) : "") },
    ],
  });
}

export async function tasks(page) {
  await logPage(page, {
    title: t("nav.tasks"), path: "/api/task", seconds: true,
    fields: [
      { name: "task_id", label: t("task.id") },
      { name: "platform", label: t("task.platform"), type: "select", options: [["", t("log.all")], ["suno", "Suno"], ["video", t("task.video")]] },
      { name: "status", label: t("common.status"), type: "select", options: STATUSES.map((s) => [s, s ? t("task.status." + s) : t("log.all")]) },
    ],
    columns: [
      { label: t("task.id"), cell: (r) => h("code", null, r.task_id) },
      { label: t("task.platform"), cell: (r) => (r.platform === "video" ? t("task.video") : "Suno") },
      { label: t("task.action"), cell: (r) => r.action },
    ],
  });
}
