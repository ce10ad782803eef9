// Two-factor authentication (TOTP) and passkeys (WebAuthn): the login's second step, passkey
// sign-in, and the personal-settings sections. The QR code is an SVG the server draws.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { confirmDialog, copy, h, report, section, table, when } from "../ui.js";

// WebAuthn's binary fields travel as unpadded base64url in the server's JSON.
function fromB64url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function credentialJSON(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
  }
  return { id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response, clientExtensionResults: {} };
}

export function passkeysSupported() {
  return Boolean(window.PublicKeyCredential && navigator.credentials);
}

// Signs in with a passkey the browser offers for this site (no username needed).
export async function passkeySignIn() {
  const options = await api("POST", "/api/user/passkey/login/options");
  if (!report(options)) return null;
  const o = options.data;
  let cred;
  try {
    cred = await navigator.credentials.get({ publicKey: {
      ...o, challenge: fromB64url(o.challenge),
      allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
    } });
  } catch (err) {
    report({ success: false, message: t("sec.passkeyCancelled") });
    return null;
  }
  const reply = await api("POST", "/api/user/passkey/login", { credential: credentialJSON(cred) });
  return report(reply) ? reply.data : null;
}

// The login's second step: a TOTP or a backup code; `done` gets the signed-in user.
export function twoFactorStep(done) {
  const input = h("input", { id: "twofa-code", name: "code", autocomplete: "one-time-code", inputmode: "text", required: true });
  const form = h("form", { class: "stack narrow", id: "twofa-form" },
    h("p", null, t("sec.enterCode")),
    h("label", null, t("sec.code"), input),
    h("button", { type: "submit" }, t("sec.verify")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await api("POST", "/api/user/login/2fa", { code: input.value.trim() });
    if (!report(reply)) { input.select(); return; }
    await done(reply.data);
  });
  setTimeout(() => input.focus(), 0);
  return form;
}

function codeForm(id, label, onSubmit) {
  const input = h("input", { id: id + "-code", autocomplete: "one-time-code", placeholder: t("sec.code") });
  const form = h("form", { class: "inline", id }, input, " ", h("button", { type: "submit" }, label));
  form.addEventListener("submit", async (event) => { event.preventDefault(); await onSubmit(input.value.trim()); });
  return form;
}

function backupCodesBox(codes) {
  return h("div", { id: "backup-codes" },
    h("p", null, t("sec.backupOnce")),
    h("pre", null, codes.join("\n")),
    h("button", { class: "ghost small", type: "button", onclick: () => copy(codes.join("\n")) }, t("common.copy")));
}

// Personal settings: enrol (QR, secret, first code), backup codes shown once, disable.
export function twoFactorSection() {
  const box = h("div", { id: "twofa" });
  const render = async (extra) => {
    const status = await api("GET", "/api/user/2fa/status");
    if (!status.success) { box.replaceChildren(h("p", null, status.message)); return; }
    if (status.data.enabled) {
      box.replaceChildren(
        h("p", null, t("sec.on", { left: status.data.backup_codes_left })),
        extra || "",
        codeForm("twofa-disable", t("sec.disable"), async (code) => {
          if (report(await api("POST", "/api/user/2fa/disable", { code }), t("sec.disabled"))) render();
        }),
        codeForm("twofa-regenerate", t("sec.newBackup"), async (code) => {
          const reply = await api("POST", "/api/user/2fa/backup_codes", { code });
          if (report(reply)) render(backupCodesBox(reply.data.backup_codes));
        }));
      return;
    }
    box.replaceChildren(h("p", null, t("sec.off")), h("button", { id: "twofa-setup", type: "button", onclick: async () => {
      const setup = await api("POST", "/api/user/2fa/setup");
      if (!report(setup)) return;
      box.replaceChildren(
        h("p", null, t("sec.scan")),
        h("img", { id: "twofa-qr", src: setup.data.qr_code, alt: t("sec.qrAlt"), width: 200, height: 200 }),
        h("p", null, t("sec.secret"), " ", h("code", { id: "twofa-secret" }, setup.data.secret)),
        codeForm("twofa-enable", t("sec.enable"), async (code) => {
          const reply = await api("POST", "/api/user/2fa/enable", { code });
          if (report(reply, t("sec.enabled"))) render(backupCodesBox(reply.data.backup_codes));
        }));
    } }, t("sec.setup")));
  };
  render();
  return section(t("sec.twoFactor"), box);
}

// Personal settings: the user's passkeys, and adding one on this device.
export function passkeysSection() {
  const box = h("div", { id: "passkeys" });
  const name = h("input", { id: "passkey-name", placeholder: t("sec.passkeyName"), maxlength: 64 });
  const add = h("button", { type: "button", id: "passkey-add", onclick: async () => {
    const options = await api("POST", "/api/user/passkey/register/options");
    if (!report(options)) return;
    const o = options.data;
    let cred;
    try {
      cred = await navigator.credentials.create({ publicKey: {
        ...o, challenge: fromB64url(o.challenge), user: { ...o.user, id: fromB64url(o.user.id) },
        excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
      } });
    } catch (err) {
      report({ success: false, message: t("sec.passkeyCancelled") });
      return;
    }
    const reply = await api("POST", "/api/user/passkey/register", { credential: credentialJSON(cred), name: name.value.trim() });
    if (report(reply, t("sec.passkeyAdded"))) { name.value = ""; render(); }
  } }, t("sec.addPasskey"));
  const list = h("div");
  const render = async () => {
    const reply = await api("GET", "/api/user/passkey");
    if (!reply.success) { list.replaceChildren(h("p", null, reply.message)); return; }
    list.replaceChildren(table([
      { label: t("sec.passkeyName"), cell: (p) => p.name },
      { label: t("sec.created"), cell: (p) => when(p.created_at) },
      { label: t("sec.lastUsed"), cell: (p) => (p.last_used_at ? when(p.last_used_at) : "-") },
      { label: t("common.actions"), cell: (p) => h("button", { class: "ghost small", onclick: async () => {
        if (!(await confirmDialog(t("sec.deletePasskey", { name: p.name })))) return;
        if (report(await api("DELETE", `/api/user/passkey/${p.id}`), t("common.deleted"))) render();
      } }, t("common.delete")) },
    ], reply.data));
  };
  render();
  box.append(list, passkeysSupported() ? h("p", { class: "inline" }, name, " ", add) : h("p", { class: "help" }, t("sec.noWebAuthn")));
  return section(t("sec.passkeys"), box);
}
