// What the client knows: the signed-in user, channels, messages, people,
// presence, unsent messages; and the questions asked of it (names,
// unread counts). No DOM and no network here.

export const state = {
  token: localStorage.getItem('chinwag.token'),
  me: null,
  channels: new Map(),   // id -> channel (+ preview)
  users: new Map(),      // id -> user or Promise<user>
  presence: new Map(),   // user id -> {status, last_active_at}
  msgs: new Map(),       // channel id -> {list, ids, tail, hasMoreBefore, loading}
  reads: new Map(),      // channel id -> Map(user id -> message id)
  pending: new Map(),    // client_msg_id -> {channelId, text, state, at, messageId}
  typing: new Map(),     // channel id -> Map(user id -> timer)
  changes: new Map(),    // channel id -> newest change_seq applied
  replyTo: null,         // {channelId, messageId} the composer answers
  editing: null,         // {channelId, messageId} the composer edits
  current: null,
  signup: false,
  // The server's limits (GET /v1/limits); these stand in until it answers.
  limits: { text_max_chars: 100000, username_min: 3, username_max: 32, password_min: 8 },
};

// Forgets everything about the signed-in user.
export function clearSession() {
  Object.assign(state, { token: null, me: null, current: null, replyTo: null, editing: null });
  for (const k of ['channels', 'msgs', 'reads', 'pending', 'presence', 'typing', 'changes']) state[k].clear();
}

// Display names are free text, so two people can pick the same one (or
// one can pick another's): where a name is shared, `@username`, which is
// unique, is shown beside it.
export function knownName(id) {
  const u = state.users.get(id);
  if (!u || u instanceof Promise) return `user ${id}`;
  const name = u.display_name || u.username;
  const key = name.toLowerCase();
  const others = [...state.users.values()].filter((o) => o && !(o instanceof Promise) && o.id !== id);
  if (state.me && state.me.id !== id) others.push(state.me);
  const shared = others.some((o) => (o.display_name || '').toLowerCase() === key || o.username === key);
  return shared ? `${name} (@${u.username})` : name;
}

// ---------- unsent messages survive a reload ----------

function pendingKey() { return `chinwag.pending.${state.me ? state.me.id : 0}`; }

export function savePending() {
  const list = [...state.pending.entries()].filter(([, p]) => !p.messageId)
    .map(([cmid, p]) => ({ cmid, channelId: p.channelId, text: p.text, at: p.at, replyTo: p.replyTo }));
  localStorage.setItem(pendingKey(), JSON.stringify(list));
}

export function loadPending() {
  try {
    for (const p of JSON.parse(localStorage.getItem(pendingKey()) || '[]')) {
      state.pending.set(p.cmid, { channelId: p.channelId, text: p.text, at: p.at, replyTo: p.replyTo, state: 'pending' });
    }
  } catch (_) { /* a damaged entry is dropped */ }
}

// ---------- questions about channels ----------

// The loaded messages of a channel, created empty on first use.
export function bucket(channelId) {
  if (!state.msgs.has(channelId)) {
    state.msgs.set(channelId, { list: [], ids: new Set(), tail: 0, hasMoreBefore: true, loading: false });
  }
  return state.msgs.get(channelId);
}

// A loaded message of a channel, if it is loaded.
export function loadedMessage(channelId, messageId) {
  const m = state.msgs.get(channelId);
  return m ? m.list.find((x) => x.message_id === messageId) : undefined;
}

export function peerOf(c) {
  if (c.kind !== 'direct') return null;
  return c.member_ids.find((id) => id !== state.me.id) ?? state.me.id;
}

export function channelName(c) {
  if (c.kind === 'group') return c.name;
  const peer = peerOf(c);
  return peer === state.me.id ? 'Note to self' : knownName(peer);
}

export function unread(c) { return Math.max(0, c.last_message_id - c.read_up_to); }

function lastSeen(ms) {
  if (!ms) return 'offline';
  const ago = Math.max(0, Date.now() - ms) / 1000;
  if (ago < 60) return 'last seen just now';
  if (ago < 3600) return `last seen ${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `last seen ${Math.floor(ago / 3600)} h ago`;
  return `last seen ${new Date(ms).toLocaleDateString()}`;
}

export function presenceText(userId) {
  const p = state.presence.get(userId);
  return p && p.status === 'online' ? 'online' : lastSeen(p && p.last_active_at);
}

// The other members who have read up to `messageId`, and how many others
// there are.
export function seenBy(channelId, messageId) {
  const c = state.channels.get(channelId);
  const others = c ? c.member_ids.filter((id) => id !== state.me.id) : [];
  const reads = state.reads.get(channelId);
  const readers = reads ? others.filter((id) => (reads.get(id) || 0) >= messageId) : [];
  return { readers, of: others.length };
}

// A message in a few words, for quotes and previews.
export function excerpt(msg) {
  if (!msg) return 'a message';
  if (msg.deleted) return 'Message deleted';
  const files = (msg.attachments || []).map((f) => (f.width ? '📷 Photo' : `📎 ${f.name}`));
  return [...files, msg.text].filter(Boolean).join(' ').slice(0, 120);
}
