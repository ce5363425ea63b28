// Everything the user sees, drawn from `state`. Lists are reconciled by
// key: a row or message is rebuilt only when what it shows changed, so a
// new message adds one element instead of redrawing the conversation.
//
// Safety rule: every piece of user data reaches the page through
// textContent (never innerHTML), so message text and names are shown as
// text, never interpreted as HTML. Clicks are handled by the app through
// data attributes (data-channel-id, data-cmid, data-user-id).

import {
  state, knownName, peerOf, channelName, unread, presenceText, seenBy,
} from './state.js';
import { formatSize } from './uploads.js';

export const $ = (id) => document.getElementById(id);

export function banner(text) {
  const b = $('banner');
  b.textContent = text || '';
  b.hidden = !text;
}

// Makes `parent`'s children match `entries` ({key, sig, build}) in order,
// reusing each element whose key and signature are unchanged.
function reconcile(parent, entries) {
  const existing = new Map();
  for (const el of parent.children) existing.set(el.dataset.key, el);
  let cursor = parent.firstElementChild;
  for (const { key, sig, build } of entries) {
    let el = existing.get(key);
    existing.delete(key);
    if (el && el.dataset.sig !== sig) {
      if (el === cursor) cursor = el.nextElementSibling;
      el.remove();
      el = null;
    }
    if (!el) {
      el = build();
      el.dataset.key = key;
      el.dataset.sig = sig;
    }
    if (el === cursor) cursor = el.nextElementSibling;
    else parent.insertBefore(el, cursor);
  }
  for (const el of existing.values()) el.remove();
}

// ---------- conversations ----------

// A message in one line: its files, then its text.
function previewText(msg) {
  const files = (msg.attachments || []).map((f) => (f.width ? '📷 Photo' : `📎 ${f.name}`));
  return [...files, msg.text].filter(Boolean).join(' ').slice(0, 120);
}

function lastActivity(c) { return (c.preview && c.preview.created_at) || c.created_at; }

function conversationRow(c, shown) {
  const li = document.createElement('li');
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'conv';
  btn.dataset.channelId = c.id;
  if (shown.current) btn.setAttribute('aria-current', 'true');
  const dot = document.createElement('span');
  dot.className = 'dot';
  if (c.kind === 'group') dot.classList.add('group');
  else if (shown.online) dot.classList.add('online');
  dot.setAttribute('aria-hidden', 'true');
  const body = document.createElement('span');
  body.className = 'body';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = shown.name;
  const preview = document.createElement('span');
  preview.className = 'preview';
  preview.textContent = shown.preview;
  body.append(name, document.createElement('br'), preview);
  btn.append(dot, body);
  if (shown.unread > 0) {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = String(shown.unread);
    badge.setAttribute('aria-label', `${shown.unread} unread`);
    btn.append(badge);
  }
  btn.setAttribute('aria-label', `${shown.name}${shown.unread ? `, ${shown.unread} unread` : ''}`);
  li.append(btn);
  return li;
}

export function renderConversations() {
  if (!state.me) return;
  const sorted = [...state.channels.values()].sort((a, b) => lastActivity(b) - lastActivity(a));
  reconcile($('conversations'), sorted.map((c) => {
    const peer = peerOf(c);
    const shown = {
      name: channelName(c),
      preview: c.preview ? previewText(c.preview) : (c.kind === 'direct' ? presenceText(peer) : 'No messages yet'),
      unread: unread(c),
      online: c.kind === 'direct' && state.presence.get(peer)?.status === 'online',
      current: c.id === state.current,
    };
    return { key: String(c.id), sig: JSON.stringify(shown), build: () => conversationRow(c, shown) };
  }));
}

// ---------- the open conversation ----------

export function renderHeader() {
  const c = state.channels.get(state.current);
  if (!c) return;
  $('chat-title').textContent = channelName(c);
  $('chat-status').textContent = c.kind === 'direct' ? presenceText(peerOf(c)) : `${c.member_ids.length} members`;
  $('members-open').hidden = c.kind !== 'group';
  renderMembers();
}

export function renderMembers() {
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
      rm.className = 'remove-member';
      rm.dataset.userId = uid;
      rm.textContent = 'Remove';
      rm.setAttribute('aria-label', `Remove ${knownName(uid)}`);
      li.append(rm);
    }
    return li;
  });
  $('members-list').replaceChildren(...items);
}

function messageItem(c, msg, shown) {
  const li = document.createElement('li');
  li.className = `msg${shown.mine ? ' mine' : ''}${shown.status === 'failed' ? ' failed' : ''}`;
  if (msg.message_id) { li.id = `m-${c.id}-${msg.message_id}`; li.dataset.id = msg.message_id; }
  li.dataset.cmid = msg.client_msg_id;
  li.dataset.state = shown.status;
  if (shown.who) {
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = shown.who;
    li.append(who);
  }
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = msg.text;
  text.hidden = !msg.text;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const time = msg.created_at ? new Date(msg.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  meta.textContent = shown.mine ? `${time} · ${shown.status}` : time;
  li.append(text);
  if (msg.attachments && msg.attachments.length) li.append(filesOf(msg.attachments));
  li.append(meta);
  if (shown.status === 'failed') {
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'retry';
    retry.dataset.cmid = msg.client_msg_id;
    retry.textContent = 'Retry';
    retry.setAttribute('aria-label', `Retry sending: ${shown.error || 'failed'}`);
    meta.append(retry);
  }
  return li;
}

// Images as their thumbnails, at their final size from the start (the
// list does not jump as they load), opening the full image; other files
// as cards with name, size and a download link.
function filesOf(files) {
  const box = document.createElement('div');
  box.className = 'files';
  for (const f of files) {
    if (f.thumbnail_url && f.width && f.height) {
      const link = document.createElement('a');
      link.className = 'photo';
      link.href = f.url;
      link.dataset.full = f.url;
      const img = document.createElement('img');
      const scale = Math.min(1, 320 / Math.max(f.width, f.height));
      img.width = Math.max(1, Math.round(f.width * scale));
      img.height = Math.max(1, Math.round(f.height * scale));
      img.alt = f.name;
      img.src = f.thumbnail_url;
      link.append(img);
      box.append(link);
    } else {
      const card = document.createElement(f.url ? 'a' : 'span');
      card.className = 'file';
      if (f.url) { card.href = f.url; card.download = f.name; }
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = `📎 ${f.name}`;
      const size = document.createElement('span');
      size.className = 'size';
      size.textContent = formatSize(f.size);
      card.append(name, size);
      box.append(card);
    }
  }
  return box;
}

function messageEntry(c, msg, shown) {
  // Keyed by sender and client id, so a pending message becomes the
  // stored one in place.
  const key = `${msg.sender_id}:${msg.client_msg_id}`;
  const sig = JSON.stringify([msg.message_id || 0, shown]);
  return { key, sig, build: () => messageItem(c, msg, shown) };
}

export function renderMessages(stickToBottom) {
  const id = state.current;
  const c = state.channels.get(id);
  const m = state.msgs.get(id);
  if (!c || !m) return;
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const entries = m.list.map((msg) => {
    const mine = msg.sender_id === state.me.id;
    const status = mine ? (seenBy(id, msg.message_id) ? 'seen' : 'sent') : '';
    const who = !mine && c.kind === 'group' ? knownName(msg.sender_id) : '';
    return messageEntry(c, msg, { mine, status, who });
  });
  const pend = [...state.pending.entries()].filter(([, p]) => p.channelId === id).sort((a, b) => a[1].at - b[1].at);
  for (const [cmid, p] of pend) {
    if (p.messageId && m.ids.has(p.messageId)) continue;
    const status = p.state === 'failed' ? 'failed' : (p.messageId ? 'sent' : 'pending');
    const msg = { client_msg_id: cmid, text: p.text, sender_id: state.me.id, attachments: p.files || [] };
    entries.push(messageEntry(c, msg, { mine: true, status, who: '', error: p.error }));
  }
  reconcile(box, entries);
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

export function renderTyping() {
  const who = state.typing.get(state.current);
  const names = who ? [...who.keys()].map(knownName) : [];
  $('typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
}

// ---------- search ----------

export function renderSearch(messages) {
  const results = $('search-results');
  const items = messages.map((msg) => {
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'hit';
    btn.dataset.channelId = msg.channel_id;
    btn.dataset.messageId = msg.message_id;
    const c = state.channels.get(msg.channel_id);
    const where = document.createElement('small');
    where.textContent = `${c ? channelName(c) : 'chat'} · ${knownName(msg.sender_id)}`;
    const text = document.createElement('span');
    text.textContent = msg.text.slice(0, 200);
    btn.append(where, text);
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

// ---------- sign-in form ----------

export function renderAuth() {
  $('app-view').hidden = true;
  $('auth-view').hidden = false;
  $('auth-title').textContent = state.signup ? 'Sign up' : 'Log in';
  $('auth-submit').textContent = state.signup ? 'Sign up' : 'Log in';
  $('auth-switch').textContent = state.signup ? 'Have an account? Log in' : 'No account? Sign up';
  $('auth-password').autocomplete = state.signup ? 'new-password' : 'current-password';
  applyLimits();
  $('auth-username').focus();
}

// Gives the form fields the server's limits.
export function applyLimits() {
  const { username_min: min, username_max: max, password_min: pmin } = state.limits;
  Object.assign($('auth-username'), { minLength: min, maxLength: max });
  $('auth-password').minLength = pmin;
}
