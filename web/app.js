// chinwag web client: plain ES module, no build step.
//
// Safety rule: every piece of user data reaches the page through
// textContent (never innerHTML), so message text and names are shown as
// text, never interpreted as HTML.

const $ = (id) => document.getElementById(id);
const TEXT_MAX = 100000;
const PAGE = 50;

const state = {
  token: localStorage.getItem('chinwag.token'),
  me: null,
  channels: new Map(),   // id -> channel (+ preview)
  users: new Map(),      // id -> user or Promise<user>
  presence: new Map(),   // user id -> {status, last_active_at}
  msgs: new Map(),       // channel id -> {list, ids, tail, hasMoreBefore, loading}
  reads: new Map(),      // channel id -> Map(user id -> message id)
  pending: new Map(),    // client_msg_id -> {channelId, text, state, at, messageId}
  typing: new Map(),     // channel id -> Map(user id -> timer)
  current: null,
  signup: false,
};

// ---------- HTTP ----------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
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
    if (res.status === 401 && state.me) { signedOut(); }
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

async function user(id) {
  if (!state.users.has(id)) {
    state.users.set(id, api('GET', `/v1/users/${id}`).then((d) => { state.users.set(id, d.user); return d.user; })
      .catch(() => { state.users.delete(id); return { id, username: `user ${id}`, display_name: `user ${id}` }; }));
  }
  return state.users.get(id);
}

// Display names are free text, so two people can pick the same one (or
// one can pick another's): where a name is shared, `@username`, which is
// unique, is shown beside it.
function knownName(id) {
  const u = state.users.get(id);
  if (!u || u instanceof Promise) return `user ${id}`;
  const name = u.display_name || u.username;
  const key = name.toLowerCase();
  const others = [...state.users.values()].filter((o) => o && !(o instanceof Promise) && o.id !== id);
  if (state.me && state.me.id !== id) others.push(state.me);
  const shared = others.some((o) => (o.display_name || '').toLowerCase() === key || o.username === key);
  return shared ? `${name} (@${u.username})` : name;
}

// ---------- persistence of unsent messages ----------

function pendingKey() { return `chinwag.pending.${state.me ? state.me.id : 0}`; }
function savePending() {
  const list = [...state.pending.entries()].filter(([, p]) => !p.messageId)
    .map(([cmid, p]) => ({ cmid, channelId: p.channelId, text: p.text, at: p.at }));
  localStorage.setItem(pendingKey(), JSON.stringify(list));
}
function loadPending() {
  try {
    for (const p of JSON.parse(localStorage.getItem(pendingKey()) || '[]')) {
      state.pending.set(p.cmid, { channelId: p.channelId, text: p.text, at: p.at, state: 'pending' });
    }
  } catch (_) { /* a damaged entry is dropped */ }
}

// ---------- WebSocket ----------

const conn = {
  ws: null, attempt: 0, pingTimer: null, lastHeard: 0, interval: 5000, ready: false, stopped: false,

  start() {
    this.stopped = false;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/v1/ws`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: state.token }));
    ws.onmessage = (e) => { this.lastHeard = Date.now(); onFrame(JSON.parse(e.data)); };
    ws.onclose = (e) => this.lost(e);
  },

  lost(e) {
    this.ready = false;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    if (e && e.code === 1008) { signedOut(); return; }   // token refused or revoked
    banner('Connection lost — reconnecting…');
    // Exponential backoff with full jitter.
    const delay = Math.random() * Math.min(30000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    setTimeout(() => { if (!this.stopped) this.start(); }, delay);
  },

  send(frame) {
    if (this.ready && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(frame)); return true; }
    return false;
  },

  onReady(interval) {
    this.ready = true;
    this.attempt = 0;
    this.interval = interval;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > 3 * this.interval) { this.ws.close(); return; }
      this.send({ type: 'ping' });
    }, interval);
  },

  stop() { this.stopped = true; clearInterval(this.pingTimer); if (this.ws) this.ws.close(); },
};

function banner(text) {
  const b = $('banner');
  b.textContent = text || '';
  b.hidden = !text;
}

async function onFrame(f) {
  switch (f.type) {
    case 'ready': return onReady(f);
    case 'ack': return onAck(f);
    case 'message': return addMessages(f.channel_id, [f], true);
    case 'error': return onError(f);
    case 'read': return onRead(f);
    case 'typing': return onTyping(f);
    case 'presence': return onPresence(f);
    case 'channel': return upsertChannel(f.channel, true);
    case 'channel_removed': return removeChannel(f.channel_id);
    default: return undefined;
  }
}

async function onReady(f) {
  state.me = f.user;
  state.users.set(f.user.id, f.user);
  $('me').textContent = f.user.display_name || f.user.username;
  conn.onReady(f.heartbeat_interval_ms);
  const fresh = new Set(f.channels.map((c) => c.id));
  for (const id of [...state.channels.keys()]) if (!fresh.has(id)) removeChannel(id);
  for (const c of f.channels) upsertChannel(c, false);
  renderConversations();
  banner('');
  // Catch up every loaded conversation from where it stopped.
  for (const c of f.channels) {
    const m = state.msgs.get(c.id);
    if (m && c.last_message_id > m.tail) fetchAfter(c.id);
  }
  refreshPresence();
  resendPending();
}

function resendPending() {
  for (const [cmid, p] of state.pending) {
    if (p.state === 'pending' && !p.messageId) {
      conn.send({ type: 'send', client_msg_id: cmid, channel_id: p.channelId, text: p.text });
    }
  }
}

function onAck(f) {
  const p = state.pending.get(f.client_msg_id);
  if (!p) return;
  p.messageId = f.message_id;
  savePending();
  const m = state.msgs.get(f.channel_id);
  if (m && m.ids.has(f.message_id)) state.pending.delete(f.client_msg_id);
  if (f.channel_id === state.current) renderMessages();
}

function onError(f) {
  const p = typeof f.ref === 'string' ? state.pending.get(f.ref) : null;
  if (p) {
    if (f.code === 'rate_limited' || f.code === 'unavailable' || f.code === 'internal') {
      setTimeout(() => { if (p.state === 'pending') conn.send({ type: 'send', client_msg_id: f.ref, channel_id: p.channelId, text: p.text }); },
        f.retry_after_ms || 1000);
      return;
    }
    p.state = 'failed';
    p.error = f.message;
    if (p.channelId === state.current) renderMessages();
  }
}

// ---------- conversations ----------

function upsertChannel(c, announce) {
  const old = state.channels.get(c.id);
  const merged = { ...old, ...c };
  if (old && old.read_up_to > c.read_up_to) merged.read_up_to = old.read_up_to;
  state.channels.set(c.id, merged);
  for (const id of c.member_ids) user(id).then(() => { renderConversations(); if (state.current === c.id) renderHeader(); });
  if (!old) loadPreview(c.id);
  if (announce) { renderConversations(); if (state.current === c.id) renderHeader(); refreshPresence(); }
}

function removeChannel(id) {
  state.channels.delete(id);
  state.msgs.delete(id);
  if (state.current === id) closeChat();
  renderConversations();
}

async function loadPreview(id) {
  try {
    const page = await api('GET', `/v1/channels/${id}/messages?limit=1`);
    const last = page.messages[page.messages.length - 1];
    const c = state.channels.get(id);
    if (c && last && (!c.preview || c.preview.message_id < last.message_id)) c.preview = last;
    renderConversations();
  } catch (_) { /* the preview is cosmetic */ }
}

function peerOf(c) {
  if (c.kind !== 'direct') return null;
  return c.member_ids.find((id) => id !== state.me.id) ?? state.me.id;
}

function channelName(c) {
  if (c.kind === 'group') return c.name;
  const peer = peerOf(c);
  return peer === state.me.id ? 'Note to self' : knownName(peer);
}

function unread(c) { return Math.max(0, c.last_message_id - c.read_up_to); }

function lastSeen(ms) {
  if (!ms) return 'offline';
  const ago = Math.max(0, Date.now() - ms) / 1000;
  if (ago < 60) return 'last seen just now';
  if (ago < 3600) return `last seen ${Math.floor(ago / 60)} min ago`;
  if (ago < 86400) return `last seen ${Math.floor(ago / 3600)} h ago`;
  return `last seen ${new Date(ms).toLocaleDateString()}`;
}

function presenceText(userId) {
  const p = state.presence.get(userId);
  return p && p.status === 'online' ? 'online' : lastSeen(p && p.last_active_at);
}

function renderConversations() {
  if (!state.me) return;
  const list = $('conversations');
  const sorted = [...state.channels.values()].sort((a, b) =>
    ((b.preview && b.preview.created_at) || b.created_at) - ((a.preview && a.preview.created_at) || a.created_at));
  const items = sorted.map((c) => {
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'conv';
    btn.dataset.channelId = c.id;
    if (c.id === state.current) btn.setAttribute('aria-current', 'true');
    const dot = document.createElement('span');
    const peer = peerOf(c);
    dot.className = 'dot';
    if (c.kind === 'group') dot.classList.add('group');
    else if (state.presence.get(peer)?.status === 'online') dot.classList.add('online');
    dot.setAttribute('aria-hidden', 'true');
    const body = document.createElement('span');
    body.className = 'body';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = channelName(c);
    const preview = document.createElement('span');
    preview.className = 'preview';
    preview.textContent = c.preview ? c.preview.text.slice(0, 120) : (c.kind === 'direct' ? presenceText(peer) : 'No messages yet');
    body.append(name, document.createElement('br'), preview);
    btn.append(dot, body);
    const n = unread(c);
    if (n > 0) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = String(n);
      badge.setAttribute('aria-label', `${n} unread`);
      btn.append(badge);
    }
    btn.setAttribute('aria-label', `${channelName(c)}${n ? `, ${n} unread` : ''}`);
    btn.addEventListener('click', () => openChat(c.id));
    li.append(btn);
    return li;
  });
  list.replaceChildren(...items);
}

async function refreshPresence() {
  const ids = new Set();
  for (const c of state.channels.values()) for (const id of c.member_ids) if (id !== state.me.id) ids.add(id);
  if (!ids.size) return;
  const all = [...ids];
  for (let i = 0; i < all.length; i += 200) {
    try {
      const d = await api('GET', `/v1/presence?user_ids=${all.slice(i, i + 200).join(',')}`);
      for (const p of d.presence) state.presence.set(p.user_id, p);
    } catch (_) { return; }
  }
  renderConversations();
  if (state.current) renderHeader();
}

function onPresence(f) {
  state.presence.set(f.user_id, { status: f.status, last_active_at: f.last_active_at });
  renderConversations();
  if (state.current) renderHeader();
}

// ---------- messages ----------

function bucket(channelId) {
  if (!state.msgs.has(channelId)) {
    state.msgs.set(channelId, { list: [], ids: new Set(), tail: 0, hasMoreBefore: true, loading: false });
  }
  return state.msgs.get(channelId);
}

// Adds messages (any order, repeats ignored). `live`: they came over the
// socket, so a hole before them is fetched.
function addMessages(channelId, messages, live) {
  const c = state.channels.get(channelId);
  for (const msg of messages) {
    if (c) {
      if (msg.message_id > c.last_message_id) c.last_message_id = msg.message_id;
      if (!c.preview || c.preview.message_id < msg.message_id) c.preview = msg;
      if (msg.sender_id === state.me.id && msg.message_id > c.read_up_to) c.read_up_to = msg.message_id;
    }
    const pend = msg.sender_id === state.me.id ? state.pending.get(msg.client_msg_id) : null;
    if (pend) { state.pending.delete(msg.client_msg_id); savePending(); }
  }
  const m = state.msgs.get(channelId);
  if (m) {
    let gap = false;
    for (const msg of messages) {
      if (m.ids.has(msg.message_id)) continue;
      if (live && m.tail && msg.message_id > m.tail + 1) { gap = true; continue; }
      m.ids.add(msg.message_id);
      m.list.push(msg);
    }
    m.list.sort((a, b) => a.message_id - b.message_id);
    while (m.ids.has(m.tail + 1)) m.tail += 1;
    if (gap) fetchAfter(channelId);
  }
  renderConversations();
  if (channelId === state.current) { renderMessages(true); markRead(); }
}

async function fetchAfter(channelId) {
  const m = state.msgs.get(channelId);
  if (!m || m.fetching) return;
  m.fetching = true;
  try {
    for (let guard = 0; guard < 100; guard++) {
      const page = await api('GET', `/v1/channels/${channelId}/messages?after=${m.tail}&limit=200`);
      addMessages(channelId, page.messages, false);
      if (!page.has_more || !page.messages.length) break;
    }
  } catch (_) { /* retried at the next ready */ } finally { m.fetching = false; }
}

async function loadOlder() {
  const id = state.current;
  const m = state.msgs.get(id);
  if (!m || m.loading || !m.hasMoreBefore || !m.list.length) return;
  m.loading = true;
  const box = $('messages');
  const before = box.scrollHeight - box.scrollTop;
  try {
    const page = await api('GET', `/v1/channels/${id}/messages?before=${m.list[0].message_id}&limit=${PAGE}`);
    m.hasMoreBefore = page.has_more;
    for (const msg of page.messages) if (!m.ids.has(msg.message_id)) { m.ids.add(msg.message_id); m.list.push(msg); }
    m.list.sort((a, b) => a.message_id - b.message_id);
    renderMessages(false);
    box.scrollTop = box.scrollHeight - before;
  } finally { m.loading = false; }
}

async function openChat(id, jumpTo) {
  const c = state.channels.get(id);
  if (!c) return;
  state.current = id;
  $('app-view').classList.add('chatting');
  $('chat').hidden = false;
  $('members-panel').hidden = true;
  $('composer-error').textContent = '';
  renderHeader();
  renderConversations();
  renderTyping();
  const m = bucket(id);
  if (jumpTo) {
    const page = await api('GET', `/v1/channels/${id}/messages?around=${jumpTo}&limit=${PAGE}`);
    m.list = []; m.ids = new Set(); m.tail = 0;
    m.hasMoreBefore = page.messages.length > 0 && page.messages[0].message_id > 1;
    addMessages(id, page.messages, false);
    m.tail = page.messages.length ? page.messages[page.messages.length - 1].message_id : 0;
    await fetchAfter(id);
  } else if (!m.list.length) {
    const page = await api('GET', `/v1/channels/${id}/messages?limit=${PAGE}`);
    m.hasMoreBefore = page.has_more;
    for (const msg of page.messages) { m.ids.add(msg.message_id); m.list.push(msg); }
    m.tail = page.messages.length ? page.messages[page.messages.length - 1].message_id : c.last_message_id;
    if (c.last_message_id > m.tail) await fetchAfter(id);
  }
  try {
    const r = await api('GET', `/v1/channels/${id}/reads`);
    state.reads.set(id, new Map(r.reads.map((x) => [x.user_id, x.message_id])));
  } catch (_) { /* seen marks come live */ }
  if (state.current !== id) return;
  renderMessages(!jumpTo);
  if (jumpTo) {
    const el = document.getElementById(`m-${id}-${jumpTo}`);
    if (el) { el.classList.add('highlight'); el.scrollIntoView({ block: 'center' }); }
  }
  markRead();
  $('composer-text').focus();
}

function closeChat() {
  state.current = null;
  $('chat').hidden = true;
  $('app-view').classList.remove('chatting');
  renderConversations();
}

function renderHeader() {
  const c = state.channels.get(state.current);
  if (!c) return;
  $('chat-title').textContent = channelName(c);
  $('chat-status').textContent = c.kind === 'direct'
    ? presenceText(peerOf(c))
    : `${c.member_ids.length} members`;
  $('members-open').hidden = c.kind !== 'group';
  renderMembers();
}

function seenBy(channelId, messageId) {
  const reads = state.reads.get(channelId);
  if (!reads) return false;
  for (const [uid, upTo] of reads) if (uid !== state.me.id && upTo >= messageId) return true;
  return false;
}

function messageItem(c, msg, mine, status, extra) {
  const li = document.createElement('li');
  li.className = `msg${mine ? ' mine' : ''}${status === 'failed' ? ' failed' : ''}`;
  if (msg.message_id) { li.id = `m-${c.id}-${msg.message_id}`; li.dataset.id = msg.message_id; }
  li.dataset.cmid = msg.client_msg_id;
  li.dataset.state = status;
  if (!mine && c.kind === 'group') {
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = knownName(msg.sender_id);
    li.append(who);
  }
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = msg.text;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const time = msg.created_at ? new Date(msg.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  meta.textContent = mine ? `${time} · ${status}` : time;
  li.append(text, meta);
  if (extra) meta.append(extra);
  return li;
}

function renderMessages(stickToBottom) {
  const id = state.current;
  const c = state.channels.get(id);
  const m = state.msgs.get(id);
  if (!c || !m) return;
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const items = m.list.map((msg) => {
    const mine = msg.sender_id === state.me.id;
    return messageItem(c, msg, mine, mine ? (seenBy(id, msg.message_id) ? 'seen' : 'sent') : '');
  });
  const pend = [...state.pending.entries()].filter(([, p]) => p.channelId === id)
    .sort((a, b) => a[1].at - b[1].at);
  for (const [cmid, p] of pend) {
    if (p.messageId && m.ids.has(p.messageId)) continue;
    let retry = null;
    if (p.state === 'failed') {
      retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'retry';
      retry.textContent = 'Retry';
      retry.setAttribute('aria-label', `Retry sending: ${p.error || 'failed'}`);
      retry.addEventListener('click', () => {
        p.state = 'pending';
        conn.send({ type: 'send', client_msg_id: cmid, channel_id: p.channelId, text: p.text });
        renderMessages(true);
      });
    }
    const status = p.state === 'failed' ? 'failed' : (p.messageId ? 'sent' : 'pending');
    items.push(messageItem(c, { client_msg_id: cmid, text: p.text, sender_id: state.me.id }, true, status, retry));
  }
  box.replaceChildren(...items);
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

// At most one read marker per quarter second: a busy channel would
// otherwise send one per message (and meet the server's request limit).
let readTimer = null;
let readAgain = false;
function markRead() {
  if (readTimer) { readAgain = true; return; }
  sendRead();
  readTimer = setTimeout(() => {
    readTimer = null;
    if (readAgain) { readAgain = false; markRead(); }
  }, 250);
}

function sendRead() {
  const c = state.channels.get(state.current);
  if (!c || document.visibilityState !== 'visible') return;
  const m = state.msgs.get(c.id);
  const newest = m && m.list.length ? m.list[m.list.length - 1].message_id : 0;
  if (newest > c.read_up_to) {
    c.read_up_to = newest;
    conn.send({ type: 'read', channel_id: c.id, message_id: newest });
    renderConversations();
  }
}

function onRead(f) {
  if (!state.reads.has(f.channel_id)) state.reads.set(f.channel_id, new Map());
  const reads = state.reads.get(f.channel_id);
  reads.set(f.user_id, Math.max(reads.get(f.user_id) || 0, f.message_id));
  const c = state.channels.get(f.channel_id);
  if (c && f.user_id === state.me.id && f.message_id > c.read_up_to) { c.read_up_to = f.message_id; renderConversations(); }
  if (f.channel_id === state.current) renderMessages(false);
}

function onTyping(f) {
  if (!state.typing.has(f.channel_id)) state.typing.set(f.channel_id, new Map());
  const who = state.typing.get(f.channel_id);
  clearTimeout(who.get(f.user_id));
  who.set(f.user_id, setTimeout(() => { who.delete(f.user_id); renderTyping(); }, 4000));
  user(f.user_id).then(renderTyping);
}

function renderTyping() {
  const who = state.typing.get(state.current);
  const names = who ? [...who.keys()].map(knownName) : [];
  $('typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
}

function send() {
  const box = $('composer-text');
  const text = box.value;
  const id = state.current;
  $('composer-error').textContent = '';
  if (!text.trim() || id == null) return;
  if ([...text].length > TEXT_MAX) { $('composer-error').textContent = `A message holds at most ${TEXT_MAX} characters.`; return; }
  const cmid = crypto.randomUUID();
  state.pending.set(cmid, { channelId: id, text, state: 'pending', at: Date.now() });
  savePending();
  conn.send({ type: 'send', client_msg_id: cmid, channel_id: id, text });
  box.value = '';
  renderMessages(true);
}

// ---------- members ----------

function renderMembers() {
  const c = state.channels.get(state.current);
  if (!c || c.kind !== 'group') return;
  const items = c.member_ids.map((uid) => {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = `${knownName(uid)}${uid === c.created_by ? ' (creator)' : ''}`;
    li.append(name);
    if (c.created_by === state.me.id && uid !== state.me.id) {
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.textContent = 'Remove';
      rm.setAttribute('aria-label', `Remove ${knownName(uid)}`);
      rm.addEventListener('click', () => api('DELETE', `/v1/channels/${c.id}/members/${uid}`).catch(showSidebarError));
      li.append(rm);
    }
    return li;
  });
  $('members-list').replaceChildren(...items);
}

async function userByName(name) {
  const d = await api('GET', `/v1/users?username=${encodeURIComponent(name.trim())}`);
  state.users.set(d.user.id, d.user);
  return d.user;
}

// Takes an Error or a plain message.
function showSidebarError(e) { $('sidebar-error').textContent = typeof e === 'string' ? e : e.message; }

// ---------- search ----------

async function search(q) {
  const results = $('search-results');
  if (!q.trim()) { results.hidden = true; return; }
  const d = await api('GET', `/v1/search?q=${encodeURIComponent(q)}`);
  const items = d.messages.map((msg) => {
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'hit';
    const c = state.channels.get(msg.channel_id);
    const where = document.createElement('small');
    where.textContent = `${c ? channelName(c) : 'chat'} · ${knownName(msg.sender_id)}`;
    const text = document.createElement('span');
    text.textContent = msg.text.slice(0, 200);
    btn.append(where, text);
    btn.addEventListener('click', () => { results.hidden = true; openChat(msg.channel_id, msg.message_id); });
    li.append(btn);
    return li;
  });
  if (!items.length) {
    const li = document.createElement('li');
    li.className = 'hit';
    li.textContent = 'No messages found.';
    items.push(li);
  }
  results.replaceChildren(...items);
  results.hidden = false;
}

// ---------- push notifications ----------

function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function b64urlToBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (ch) => ch.charCodeAt(0));
}

// Asks for permission, subscribes this browser with the server's VAPID key
// and registers the subscription for this device.
async function enableNotifications() {
  const button = $('notify');
  try {
    if (await Notification.requestPermission() !== 'granted') { button.textContent = 'Notifications blocked'; return; }
    const registration = await navigator.serviceWorker.register('/sw.js');
    const { public_key: key } = await api('GET', '/v1/push/vapid-public-key');
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlToBytes(key) });
    const { endpoint, keys } = subscription.toJSON();
    await api('PUT', '/v1/devices/current/push', { kind: 'webpush', endpoint, keys });
    button.textContent = 'Notifications on';
    button.disabled = true;
  } catch (e) {
    showSidebarError(`Notifications: ${e.message}`);
  }
}

// ---------- session ----------

function showAuth() {
  $('app-view').hidden = true;
  $('auth-view').hidden = false;
  $('auth-title').textContent = state.signup ? 'Sign up' : 'Log in';
  $('auth-submit').textContent = state.signup ? 'Sign up' : 'Log in';
  $('auth-switch').textContent = state.signup ? 'Have an account? Log in' : 'No account? Sign up';
  $('auth-password').autocomplete = state.signup ? 'new-password' : 'current-password';
  $('auth-username').focus();
}

function showApp() {
  $('auth-view').hidden = true;
  $('app-view').hidden = false;
  $('notify').hidden = !pushSupported() || Notification.permission === 'denied';
  banner('Connecting…');
  conn.start();
}

function signedOut() {
  conn.stop();
  localStorage.removeItem('chinwag.token');
  Object.assign(state, { token: null, me: null, current: null });
  for (const k of ['channels', 'msgs', 'reads', 'pending', 'presence', 'typing']) state[k].clear();
  $('conversations').replaceChildren();
  $('chat').hidden = true;
  banner('');
  showAuth();
}

async function authenticate(ev) {
  ev.preventDefault();
  const username = $('auth-username').value.trim();
  const password = $('auth-password').value;
  $('auth-error').textContent = '';
  try {
    if (state.signup) await api('POST', '/v1/users', { username, password });
    const s = await api('POST', '/v1/sessions', { username, password, device_name: 'web' });
    state.token = s.token;
    state.me = s.user;
    localStorage.setItem('chinwag.token', s.token);
    $('auth-password').value = '';
    loadPending();
    showApp();
  } catch (e) {
    $('auth-error').textContent = e.message;
  }
}

// ---------- wiring ----------

function wire() {
  $('auth-form').addEventListener('submit', authenticate);
  $('auth-switch').addEventListener('click', () => { state.signup = !state.signup; showAuth(); });
  $('logout').addEventListener('click', async () => {
    try { await api('DELETE', '/v1/sessions/current'); } catch (_) { /* signed out locally anyway */ }
    signedOut();
  });
  $('new-direct').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('sidebar-error').textContent = '';
    try {
      const u = await userByName($('new-direct-name').value);
      const d = await api('POST', '/v1/channels/direct', { user_id: u.id });
      upsertChannel(d.channel, true);
      $('new-direct-name').value = '';
      openChat(d.channel.id);
    } catch (e) { showSidebarError(e); }
  });
  $('notify').addEventListener('click', enableNotifications);
  $('new-group-open').addEventListener('click', () => { $('group-error').textContent = ''; $('group-dialog').showModal(); });
  $('group-cancel').addEventListener('click', () => $('group-dialog').close());
  $('group-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const names = $('group-members').value.split(',').map((s) => s.trim()).filter(Boolean);
      const ids = [];
      for (const n of names) ids.push((await userByName(n)).id);
      const d = await api('POST', '/v1/channels', { name: $('group-name').value, member_ids: ids });
      upsertChannel(d.channel, true);
      $('group-dialog').close();
      $('group-name').value = ''; $('group-members').value = '';
      openChat(d.channel.id);
    } catch (e) { $('group-error').textContent = e.message; }
  });
  $('members-open').addEventListener('click', () => { $('members-panel').hidden = !$('members-panel').hidden; renderMembers(); });
  $('add-member').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const u = await userByName($('add-member-name').value);
      const d = await api('POST', `/v1/channels/${state.current}/members`, { user_id: u.id });
      upsertChannel(d.channel, true);
      $('add-member-name').value = '';
    } catch (e) { $('composer-error').textContent = e.message; }
  });
  $('leave').addEventListener('click', async () => {
    const id = state.current;
    try { await api('DELETE', `/v1/channels/${id}/members/${state.me.id}`); removeChannel(id); } catch (e) { $('composer-error').textContent = e.message; }
  });
  $('back').addEventListener('click', closeChat);
  $('composer').addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
  let lastTyping = 0;
  $('composer-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); return; }
    if (Date.now() - lastTyping > 2500 && state.current != null) {
      lastTyping = Date.now();
      conn.send({ type: 'typing', channel_id: state.current });
    }
  });
  $('messages').addEventListener('scroll', () => { if ($('messages').scrollTop < 40) loadOlder(); });
  $('search-form').addEventListener('submit', (ev) => { ev.preventDefault(); search($('search-input').value).catch(showSidebarError); });
  document.addEventListener('visibilitychange', markRead);
  window.addEventListener('focus', markRead);
  // Leaving the page closes the socket at once (others see us go offline
  // now, not after the heartbeat timeout); a page restored from the
  // back/forward cache connects again.
  window.addEventListener('pagehide', () => { if (state.me) conn.stop(); });
  window.addEventListener('pageshow', (ev) => { if (ev.persisted && state.me) { banner('Connecting…'); conn.start(); } });
  // Another tab logged out or in: follow it.
  window.addEventListener('storage', (ev) => { if (ev.key === 'chinwag.token' && !ev.newValue && state.me) signedOut(); });
  setInterval(() => { if (state.me) { renderConversations(); if (state.current) renderHeader(); } }, 30000);
}

wire();
if (state.token) {
  api('GET', '/v1/users/me').then((d) => { state.me = d.user; loadPending(); showApp(); }).catch(() => signedOut());
} else {
  showAuth();
}
