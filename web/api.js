// The HTTP half: one `api()` call for every endpoint, errors as ApiError
// carrying the server's error code, and the cache of user profiles.

import { state } from './state.js';

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// Called when the server no longer accepts our token.
export const hooks = { signedOut: () => {} };

export async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: 'http', message: `HTTP ${res.status}` };
    if (res.status === 401 && state.me) hooks.signedOut();
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

// A user's profile, fetched once.
export async function user(id) {
  if (!state.users.has(id)) {
    state.users.set(id, api('GET', `/v1/users/${id}`).then((d) => { state.users.set(id, d.user); return d.user; })
      .catch(() => { state.users.delete(id); return { id, username: `user ${id}`, display_name: `user ${id}` }; }));
  }
  return state.users.get(id);
}

export async function userByName(name) {
  const d = await api('GET', `/v1/users?username=${encodeURIComponent(name.trim())}`);
  state.users.set(d.user.id, d.user);
  return d.user;
}

// Reads the server's limits into `state.limits` (kept as they are when
// the server cannot be asked).
export async function loadLimits() {
  try { Object.assign(state.limits, await api('GET', '/v1/limits')); } catch (_) { /* defaults stand */ }
}
