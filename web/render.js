// Everything the user sees, drawn from `state`. Lists are reconciled by
// key: a row or message is rebuilt only when what it shows changed, so a
// new message adds one element instead of redrawing the conversation.
//
// Safety rule: every piece of user data reaches the page through
// textContent (never innerHTML), so message text and names are shown as
// text, never interpreted as HTML. Clicks are handled by the app through
// data attributes (data-channel-id, data-cmid, data-user-id).

import {
  state, knownName, peerOf, channelName, unread, presenceText, seenBy, loadedMessage, excerpt,
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

// The reactions a picker offers.
export const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🎉', '🙏', '👀'];

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
  body.append(name, preview);
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
      preview: c.preview ? excerpt(c.preview) : (c.kind === 'direct' ? presenceText(peer) : 'No messages yet'),
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
  li.className = `msg${shown.mine ? ' mine' : ''}${shown.status === 'failed' ? ' failed' : ''}${msg.deleted ? ' deleted' : ''}`;
  if (msg.message_id) { li.id = `m-${c.id}-${msg.message_id}`; li.dataset.id = msg.message_id; }
  li.dataset.cmid = msg.client_msg_id;
  li.dataset.state = shown.status;
  if (shown.who) {
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = shown.who;
    li.append(who);
  }
  if (msg.reply_to) {
    const quote = document.createElement('button');
    quote.type = 'button';
    quote.className = 'quote';
    quote.dataset.jump = msg.reply_to;
    quote.textContent = shown.quote;
    quote.setAttribute('aria-label', `In reply to ${shown.quote}. Show it.`);
    li.append(quote);
  }
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = msg.deleted ? 'Message deleted' : msg.text;
  text.hidden = !msg.text && !msg.deleted;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const time = msg.created_at ? new Date(msg.created_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  const edited = msg.edited_at && !msg.deleted ? ' · edited' : '';
  meta.textContent = shown.mine ? `${time}${edited} · ${shown.seenText || shown.status}` : `${time}${edited}`;
  if (shown.seenNames) meta.title = `Seen by ${shown.seenNames}`;
  li.append(text);
  if (msg.attachments && msg.attachments.length) li.append(filesOf(msg.attachments));
  if (shown.reactions.length) li.append(reactionsOf(shown.reactions));
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
  if (msg.message_id && !msg.deleted) li.append(actionsOf(shown));
  return li;
}

// Each emoji with its count; pressed when it is the user's own; who
// reacted in its tooltip and label.
function reactionsOf(reactions) {
  const box = document.createElement('div');
  box.className = 'reactions';
  for (const r of reactions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'reaction';
    b.dataset.emoji = r.emoji;
    b.setAttribute('aria-pressed', String(r.mine));
    b.textContent = `${r.emoji} ${r.count}`;
    b.title = r.names;
    b.setAttribute('aria-label', `${r.emoji} from ${r.names}${r.mine ? ' (press to take yours back)' : ''}`);
    box.append(b);
  }
  return box;
}

// Reply, react, edit and delete: shown on hover or focus, or after a
// long press (touch) on the message.
function actionsOf(shown) {
  const bar = document.createElement('div');
  bar.className = 'actions';
  bar.setAttribute('role', 'toolbar');
  bar.setAttribute('aria-label', 'Message actions');
  const add = (cls, label, icon) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = cls;
    b.textContent = icon;
    b.title = label;
    b.setAttribute('aria-label', label);
    bar.append(b);
  };
  add('act-reply', 'Reply', '↩');
  add('act-react', 'React', '☺');
  if (shown.canEdit) add('act-edit', 'Edit', '✎');
  if (shown.canDelete) add('act-delete', 'Delete', '🗑');
  return bar;
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

// How far one's own message was read: `seen` once every other member
// read it; in a group, "seen by 2 of 4" before that, with who in the
// tooltip.
function readState(c, msg) {
  const { readers, of } = seenBy(c.id, msg.message_id);
  const status = of > 0 && readers.length === of ? 'seen' : 'sent';
  if (c.kind !== 'group' || !readers.length) return { status };
  const seenNames = readers.map(knownName).join(', ');
  const seenText = readers.length === of ? 'seen by all' : `seen by ${readers.length} of ${of}`;
  return { status, seenText, seenNames };
}

// What a message shows of its changes: the quote it answers, its
// reactions, and which actions the user may take on it.
function changeable(c, msg) {
  const mine = msg.sender_id === state.me.id;
  const reactions = (msg.reactions || []).map((r) => ({
    emoji: r.emoji,
    count: r.user_ids.length,
    mine: r.user_ids.includes(state.me.id),
    names: r.user_ids.map((u) => (u === state.me.id ? 'you' : knownName(u))).join(', '),
  }));
  let quote = '';
  if (msg.reply_to) {
    const target = loadedMessage(c.id, msg.reply_to);
    quote = target ? `${knownName(target.sender_id)}: ${excerpt(target)}` : 'an earlier message';
  }
  return {
    change: msg.change_seq || 0,
    quote,
    reactions,
    canEdit: mine,
    canDelete: mine || (c.kind === 'group' && c.created_by === state.me.id),
  };
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
    const who = !mine && c.kind === 'group' ? knownName(msg.sender_id) : '';
    return messageEntry(c, msg, { mine, who, ...(mine ? readState(c, msg) : { status: '' }), ...changeable(c, msg) });
  });
  const pend = [...state.pending.entries()].filter(([, p]) => p.channelId === id).sort((a, b) => a[1].at - b[1].at);
  for (const [cmid, p] of pend) {
    if (p.messageId && m.ids.has(p.messageId)) continue;
    const status = p.state === 'failed' ? 'failed' : (p.messageId ? 'sent' : 'pending');
    const msg = { client_msg_id: cmid, text: p.text, sender_id: state.me.id, attachments: p.files || [], reply_to: p.replyTo };
    entries.push(messageEntry(c, msg, { mine: true, status, who: '', error: p.error, ...changeable(c, msg) }));
  }
  reconcile(box, entries);
  if (stickToBottom || atBottom) box.scrollTop = box.scrollHeight;
}

// The bar above the composer while it answers or edits a message.
export function renderComposerContext() {
  const bar = $('composer-context');
  const ctx = state.editing || state.replyTo;
  if (!ctx || ctx.channelId !== state.current) { bar.hidden = true; return; }
  const target = loadedMessage(ctx.channelId, ctx.messageId);
  $('composer-context-text').textContent = state.editing
    ? 'Editing your message (Esc cancels)'
    : `Replying to ${target ? `${knownName(target.sender_id)}: ${excerpt(target)}` : 'a message'}`;
  bar.hidden = false;
}

export function renderTyping() {
  const who = state.typing.get(state.current);
  const names = who ? [...who.keys()].map(knownName) : [];
  $('typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
}

// ---------- search ----------

// `more`: the server has further (older) results.
export function renderSearch(messages, more) {
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
  if (more) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'more-results wide';
    button.textContent = 'More results';
    li.append(button);
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
