// The console's only way to the server: the /api/* JSON envelope {success, message, data}.
const USER_KEY = "veloera-user";

export const session = {
  userId: Number(localStorage.getItem(USER_KEY) || 0),
  user: null, // GET /api/user/self once signed in
  status: null, // GET /api/status
};

export function signedIn(user) {
  session.userId = user.id;
  session.user = user;
  localStorage.setItem(USER_KEY, String(user.id));
}

export function signedOut() {
  session.userId = 0;
  session.user = null;
  localStorage.removeItem(USER_KEY);
}

export async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (session.userId) headers["Veloera-User"] = String(session.userId);
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    return { success: false, message: String(err) };
  }
  let payload;
  try { payload = await res.json(); } catch { payload = { success: false, message: res.statusText }; }
  if (res.status === 401 && session.userId) {
    signedOut();
    payload.unauthorized = true;
    window.dispatchEvent(new Event("veloera-signed-out")); // the shell sends the user to sign in
  }
  return payload;
}

export function role() {
  return session.user ? session.user.role : 0;
}

// The relay's OpenAI-compatible base URL: ServerAddress (or RELAY_PUBLIC_URL) plus /v1.
export function relayBase() {
  const address = ((session.status && session.status.server_address) || location.origin);
  return address.replace(/\/+$/, "") + "/v1";
}
