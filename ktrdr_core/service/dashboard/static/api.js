// fetch() wrappers: every answer is {ok, status, body}; a network failure is status 0.

export async function getJSON(path) {
  try {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, body };
  } catch (error) {
    return { ok: false, status: 0, body: { message: `the server did not answer (${error.message})` } };
  }
}

export async function post(path, token) {
  try {
    const response = await fetch(path, { method: "POST", headers: { Accept: "application/json", Authorization: `Bearer ${token}` } });
    const body = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, body };
  } catch (error) {
    return { ok: false, status: 0, body: { message: `the server did not answer (${error.message})` } };
  }
}

export function message(answer) {
  return (answer.body && (answer.body.message || answer.body.detail)) || `HTTP ${answer.status}`;
}
