// chinwag web client: native ES modules, no build step. This module is
// the controller: it turns frames and user actions into changes of
// `state` (state.js) and asks render.js to show them; api.js and
// socket.js talk to the server.

import { wireUploads, uploadsBusy, readyUploads, clearUploads } from './uploads.js';
import { state, clearSession, savePending, loadPending, bucket, loadedMessage } from './state.js';
import { api, hooks, user, userByName, loadLimits } from './api.js';
import { conn } from './socket.js';
import {
  $, banner, renderConversations, renderHeader, renderMembers, renderMessages, renderTyping, renderSearch, renderAuth,
  applyLimits, renderComposerContext, REACTIONS,
} from './render.js';

const PAGE = 50;

// ---------- frames ----------

async function onFrame(f) {
  switch (f.type) {
    case 'ready': return onReady(f);
    case 'ack': return onAck(f);
    case 'message': return addMessages(f.channel_id, [f], true);
    case 'message_updated': return applyChanges(f.message.channel_id, [f.message], 'live');
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
  // Catch up every loaded conversation from where it stopped, and the
  // changes (edits, deletes, reactions) made meanwhile.
  for (const c of f.channels) {
    const m = state.msgs.get(c.id);
    if (m && c.last_message_id > m.tail) fetchAfter(c.id);
    if ((c.last_change_seq || 0) > (state.changes.get(c.id) ?? c.last_change_seq)) catchUpChanges(c.id);
  }
  refreshPresence();
  resendPending();
}

function sendFrame(cmid, p) {
  const frame = { type: 'send', client_msg_id: cmid, channel_id: p.channelId, text: p.text };
  if (p.files && p.files.length) frame.attachments = p.files.map((f) => f.id);
  if (p.replyTo) frame.reply_to = p.replyTo;
  return conn.send(frame);
}

function resendPending() {
  for (const [cmid, p] of state.pending) {
    if (p.state === 'pending' && !p.messageId) sendFrame(cmid, p);
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
  if (!p) return;
  if (f.code === 'rate_limited' || f.code === 'unavailable' || f.code === 'internal') {
    setTimeout(() => { if (p.state === 'pending') sendFrame(f.ref, p); }, f.retry_after_ms || 1000);
    return;
  }
  p.state = 'failed';
  p.error = f.message;
  if (p.channelId === state.current) renderMessages();
}

// ---------- conversations ----------

function upsertChannel(c, announce) {
  const old = state.channels.get(c.id);
  const merged = { ...old, ...c };
  if (old && old.read_up_to > c.read_up_to) merged.read_up_to = old.read_up_to;
  state.channels.set(c.id, merged);
  if (!state.changes.has(c.id)) state.changes.set(c.id, c.last_change_seq || 0);
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
    // Their message is here: they are no longer typing it.
    if (live) stoppedTyping(channelId, msg.sender_id);
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

// ---------- edits, deletes, reactions ----------

// Takes changed messages (`how`: 'live' from a `message_updated`,
// 'caught' from a catch-up page, 'own' from the answer to this device's
// change): each replaces the copy held when it is newer. A live change
// more than one past the newest applied means some were missed: they are
// read. An answer moves no cursor (changes before it may still be coming).
function applyChanges(channelId, messages, how) {
  let missed = false;
  for (const msg of messages) {
    const known = state.changes.get(channelId) || 0;
    if (how === 'live' && msg.change_seq > known + 1) missed = true;
    else if (how !== 'own' && msg.change_seq > known) state.changes.set(channelId, msg.change_seq);
    const m = state.msgs.get(channelId);
    const i = m ? m.list.findIndex((x) => x.message_id === msg.message_id) : -1;
    if (i >= 0 && (m.list[i].change_seq || 0) < msg.change_seq) m.list[i] = msg;
    const c = state.channels.get(channelId);
    if (c && c.preview && c.preview.message_id === msg.message_id && (c.preview.change_seq || 0) < msg.change_seq) c.preview = msg;
  }
  if (missed) catchUpChanges(channelId);
  renderConversations();
  if (channelId === state.current) { renderMessages(false); renderComposerContext(); }
}

const catchingUp = new Set();
async function catchUpChanges(channelId) {
  if (catchingUp.has(channelId)) return;
  catchingUp.add(channelId);
  try {
    for (let guard = 0; guard < 100; guard++) {
      const after = state.changes.get(channelId) || 0;
      const page = await api('GET', `/v1/channels/${channelId}/messages?changed_after=${after}&limit=${state.limits.history_limit_max || 200}`);
      applyChanges(channelId, page.messages, 'caught');
      if (!page.has_more || !page.messages.length) break;
    }
  } catch (_) { /* retried at the next ready */ } finally { catchingUp.delete(channelId); }
}

function messagePath(channelId, messageId) { return `/v1/channels/${channelId}/messages/${messageId}`; }

// Applies the answer of a change at once (its event may come later).
function changed(message) { if (message) applyChanges(message.channel_id, [message], 'own'); }

async function react(messageId, emoji) {
  const id = state.current;
  const msg = loadedMessage(id, messageId);
  const mine = msg && (msg.reactions || []).some((r) => r.emoji === emoji && r.user_ids.includes(state.me.id));
  try {
    await api(mine ? 'DELETE' : 'PUT', `${messagePath(id, messageId)}/reactions/${encodeURIComponent(emoji)}`);
  } catch (e) { $('composer-error').textContent = e.message; }
}

function startReply(messageId) {
  state.editing = null;
  state.replyTo = { channelId: state.current, messageId };
  renderComposerContext();
  $('composer-text').focus();
}

function startEdit(messageId) {
  const msg = loadedMessage(state.current, messageId);
  if (!msg || msg.deleted || msg.sender_id !== state.me.id) return;
  state.replyTo = null;
  state.editing = { channelId: state.current, messageId };
  $('composer-text').value = msg.text;
  growComposer();
  renderComposerContext();
  $('composer-text').focus();
}

function cancelComposerContext() {
  if (state.editing) { $('composer-text').value = ''; growComposer(); }
  state.editing = null;
  state.replyTo = null;
  renderComposerContext();
}

// The newest message of the user's own in the open conversation.
function lastOwnMessage() {
  const m = state.msgs.get(state.current);
  const own = m ? m.list.filter((x) => x.sender_id === state.me.id && !x.deleted) : [];
  return own.length ? own[own.length - 1].message_id : null;
}

async function saveEdit(text) {
  const { channelId, messageId } = state.editing;
  try {
    const d = await api('PATCH', messagePath(channelId, messageId), { text });
    changed(d.message);
    state.editing = null;
    $('composer-text').value = '';
    growComposer();
    renderComposerContext();
  } catch (e) { $('composer-error').textContent = e.message; }
}

// A first click asks; the second one deletes.
async function deleteMessage(button, messageId) {
  if (!button.dataset.confirm) {
    button.dataset.confirm = '1';
    button.textContent = 'Delete?';
    button.setAttribute('aria-label', 'Press again to delete for everyone');
    return;
  }
  try { await api('DELETE', messagePath(state.current, messageId)); } catch (e) { $('composer-error').textContent = e.message; }
}

// Shows the replied-to message: in place when loaded, else its part of
// the history.
function jumpTo(messageId) {
  const el = document.getElementById(`m-${state.current}-${messageId}`);
  if (!el) { openChat(state.current, messageId); return; }
  for (const old of document.querySelectorAll('#messages .highlight')) old.classList.remove('highlight');
  el.classList.add('highlight');
  el.scrollIntoView({ block: 'center' });
}

function openPicker(anchor, messageId) {
  const picker = $('emoji-picker');
  picker.replaceChildren(...REACTIONS.map((emoji) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'emoji-choice';
    b.setAttribute('role', 'menuitem');
    b.dataset.emoji = emoji;
    b.textContent = emoji;
    b.setAttribute('aria-label', `React with ${emoji}`);
    return b;
  }));
  picker.dataset.messageId = messageId;
  const r = anchor.getBoundingClientRect();
  picker.style.top = `${Math.max(4, r.top - 44)}px`;
  picker.style.left = `${Math.max(4, Math.min(window.innerWidth - 300, r.left - 120))}px`;
  picker.hidden = false;
  picker.querySelector('button').focus();
}

function closePicker() { $('emoji-picker').hidden = true; }

async function fetchAfter(channelId) {
  const m = state.msgs.get(channelId);
  if (!m || m.fetching) return;
  m.fetching = true;
  try {
    for (let guard = 0; guard < 100; guard++) {
      const page = await api('GET', `/v1/channels/${channelId}/messages?after=${m.tail}&limit=${state.limits.history_limit_max || 200}`);
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
  renderComposerContext();
  // Another conversation's messages leave the list at once.
  $('messages').replaceChildren();
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

function stoppedTyping(channelId, userId) {
  const who = state.typing.get(channelId);
  if (!who || !who.has(userId)) return;
  clearTimeout(who.get(userId));
  who.delete(userId);
  renderTyping();
}

function onTyping(f) {
  if (!state.typing.has(f.channel_id)) state.typing.set(f.channel_id, new Map());
  const who = state.typing.get(f.channel_id);
  clearTimeout(who.get(f.user_id));
  who.set(f.user_id, setTimeout(() => { who.delete(f.user_id); renderTyping(); }, 4000));
  user(f.user_id).then(renderTyping);
}

function send() {
  const box = $('composer-text');
  const text = box.value;
  const id = state.current;
  const max = state.limits.text_max_chars;
  $('composer-error').textContent = '';
  if (state.editing) {
    if (state.editing.channelId === id && text.trim()) saveEdit(text);
    return;
  }
  if (uploadsBusy()) { $('composer-error').textContent = 'Wait for the uploads to finish, or cancel them.'; return; }
  const files = readyUploads();
  if ((!text.trim() && !files.length) || id == null) return;
  if ([...text].length > max) { $('composer-error').textContent = `A message holds at most ${max} characters.`; return; }
  const cmid = newClientMsgId();
  const replyTo = state.replyTo && state.replyTo.channelId === id ? state.replyTo.messageId : undefined;
  const p = { channelId: id, text: files.length && !text.trim() ? '' : text, files, replyTo, state: 'pending', at: Date.now() };
  state.pending.set(cmid, p);
  savePending();
  sendFrame(cmid, p);
  box.value = '';
  growComposer();
  clearUploads();
  state.replyTo = null;
  renderComposerContext();
  renderMessages(true);
}

// The composer grows with its text, up to its maximum height (then it
// scrolls).
function growComposer() {
  const box = $('composer-text');
  box.style.height = 'auto';
  box.style.height = `${box.scrollHeight + 2}px`;
}

// A random id for a message (its `client_msg_id`): 128 bits as hex.
// (`crypto.randomUUID` exists only in secure contexts, HTTPS or
// localhost; `getRandomValues` everywhere, plain HTTP on a LAN included.)
function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function retry(cmid) {
  const p = state.pending.get(cmid);
  if (!p) return;
  p.state = 'pending';
  sendFrame(cmid, p);
  renderMessages(true);
}

// Takes an Error or a plain message.
function showSidebarError(e) { $('sidebar-error').textContent = typeof e === 'string' ? e : e.message; }

// ---------- search ----------

// The search shown: its query, what was found so far, and where the next
// page starts (none when that was all).
const found = { q: '', messages: [], next: null };

async function search(q, more) {
  if (!q.trim()) { $('search-results').hidden = true; return; }
  const before = more && found.next ? `&before=${found.next}` : '';
  const d = await api('GET', `/v1/search?q=${encodeURIComponent(q)}${before}`);
  found.messages = more ? found.messages.concat(d.messages) : d.messages;
  found.q = q;
  found.next = d.next_before ?? null;
  renderSearch(found.messages, found.next !== null);
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

function showApp() {
  $('auth-view').hidden = true;
  $('app-view').hidden = false;
  $('notify').hidden = false;
  if (!window.isSecureContext) {
    // Browsers offer push only to HTTPS pages (and localhost).
    Object.assign($('notify'), { textContent: 'Notifications need HTTPS', disabled: true });
    $('notify').title = 'Open this site over HTTPS to get notifications';
  } else if (!pushSupported()) {
    Object.assign($('notify'), { textContent: 'No notifications in this browser', disabled: true });
  } else if (Notification.permission === 'denied') {
    Object.assign($('notify'), { textContent: 'Notifications blocked', disabled: true });
    $('notify').title = 'Allow notifications for this site in the browser settings';
  }
  banner('Connecting…');
  conn.start();
}

// `why`: what the user is told on the login form (a forced sign-out
// says why; logging out oneself says nothing).
function signedOut(why) {
  conn.stop();
  localStorage.removeItem('chinwag.token');
  clearSession();
  $('conversations').replaceChildren();
  $('messages').replaceChildren();
  $('chat').hidden = true;
  banner('');
  state.signup = false;
  renderAuth();
  if (why) $('auth-error').textContent = why;
}

// What a forced sign-out tells the user, from the socket's close reason.
function signOutReason(reason) {
  if (/revoked|disabled/.test(reason || '')) {
    return 'You were signed out: this device\'s session was ended, or the account was disabled.';
  }
  return `You were signed out${reason ? ` (${reason})` : ''}. Log in again.`;
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
  hooks.signedOut = () => signedOut('Your session has ended. Log in again.');
  conn.handlers = { frame: onFrame, signedOut: (reason) => signedOut(signOutReason(reason)), status: banner };
  $('auth-form').addEventListener('submit', authenticate);
  $('auth-switch').addEventListener('click', () => { state.signup = !state.signup; renderAuth(); });
  $('logout').addEventListener('click', async () => {
    try { await api('DELETE', '/v1/sessions/current'); } catch (_) { /* signed out locally anyway */ }
    signedOut();
  });
  $('conversations').addEventListener('click', (ev) => {
    const row = ev.target.closest('.conv');
    if (row) openChat(Number(row.dataset.channelId));
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
  $('members-list').addEventListener('click', (ev) => {
    const rm = ev.target.closest('.remove-member');
    if (rm) api('DELETE', `/v1/channels/${state.current}/members/${rm.dataset.userId}`).catch(showSidebarError);
  });
  $('add-member').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const u = await userByName($('add-member-name').value);
      const d = await api('POST', `/v1/channels/${state.current}/members`, { user_id: u.id });
      if (d.channel) upsertChannel(d.channel, true);
      else $('composer-error').textContent = `${u.username} left this group before; they were invited back.`;
      $('add-member-name').value = '';
    } catch (e) { $('composer-error').textContent = e.message; }
  });
  $('leave').addEventListener('click', async () => {
    const id = state.current;
    try { await api('DELETE', `/v1/channels/${id}/members/${state.me.id}`); removeChannel(id); } catch (e) { $('composer-error').textContent = e.message; }
  });
  $('back').addEventListener('click', closeChat);
  $('composer').addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
  $('composer-text').addEventListener('input', growComposer);
  let lastTyping = 0;
  $('composer-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); return; }
    if (ev.key === 'Escape' && (state.editing || state.replyTo)) { ev.preventDefault(); cancelComposerContext(); return; }
    if (ev.key === 'ArrowUp' && !$('composer-text').value && !state.editing) {
      const last = lastOwnMessage();
      if (last) { ev.preventDefault(); startEdit(last); }
      return;
    }
    if (Date.now() - lastTyping > 2500 && state.current != null) {
      lastTyping = Date.now();
      conn.send({ type: 'typing', channel_id: state.current });
    }
  });
  $('messages').addEventListener('click', (ev) => {
    const button = ev.target.closest('.retry');
    if (button) retry(button.dataset.cmid);
    const item = ev.target.closest('.msg[data-id]');
    const id = item && Number(item.dataset.id);
    const act = ev.target.closest('.actions button, .reaction, .quote');
    if (act && item) {
      if (act.classList.contains('act-reply')) startReply(id);
      else if (act.classList.contains('act-edit')) startEdit(id);
      else if (act.classList.contains('act-delete')) deleteMessage(act, id);
      else if (act.classList.contains('act-react')) openPicker(act, id);
      else if (act.classList.contains('reaction')) react(id, act.dataset.emoji);
      else if (act.classList.contains('quote')) jumpTo(Number(act.dataset.jump));
      return;
    }
    const photo = ev.target.closest('.photo[data-full]');
    if (photo) {
      ev.preventDefault();
      $('viewer-image').src = photo.dataset.full;
      $('viewer-image').alt = photo.querySelector('img').alt;
      $('viewer').showModal();
    }
  });
  // A long press (touch) or right click shows a message's actions.
  $('messages').addEventListener('contextmenu', (ev) => {
    const item = ev.target.closest('.msg[data-id]');
    if (!item || item.classList.contains('deleted')) return;
    ev.preventDefault();
    for (const other of document.querySelectorAll('#messages .show-actions')) if (other !== item) other.classList.remove('show-actions');
    item.classList.toggle('show-actions');
  });
  $('emoji-picker').addEventListener('click', (ev) => {
    const choice = ev.target.closest('.emoji-choice');
    if (!choice) return;
    react(Number($('emoji-picker').dataset.messageId), choice.dataset.emoji);
    closePicker();
  });
  $('emoji-picker').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closePicker(); });
  document.addEventListener('click', (ev) => {
    if (!$('emoji-picker').hidden && !ev.target.closest('#emoji-picker, .act-react')) closePicker();
  });
  $('composer-context-cancel').addEventListener('click', cancelComposerContext);
  $('viewer-close').addEventListener('click', () => $('viewer').close());
  $('viewer').addEventListener('click', (ev) => { if (ev.target === $('viewer')) $('viewer').close(); });
  wireUploads();
  $('messages').addEventListener('scroll', () => { if ($('messages').scrollTop < 40) loadOlder(); });
  $('search-form').addEventListener('submit', (ev) => { ev.preventDefault(); search($('search-input').value).catch(showSidebarError); });
  $('search-results').addEventListener('click', (ev) => {
    if (ev.target.closest('.more-results')) { search(found.q, true).catch(showSidebarError); return; }
    const hit = ev.target.closest('.hit[data-channel-id]');
    if (!hit) return;
    $('search-results').hidden = true;
    openChat(Number(hit.dataset.channelId), Number(hit.dataset.messageId));
  });
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
loadLimits().then(applyLimits);
if (state.token) {
  api('GET', '/v1/users/me').then((d) => { state.me = d.user; loadPending(); showApp(); }).catch(() => signedOut());
} else {
  renderAuth();
}
