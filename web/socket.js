// The WebSocket half: pick a gateway through discovery, authenticate,
// heartbeat, reconnect with jittered backoff (to the next gateway listed
// when one fails). Frames go to `handlers.frame`; the rest of the client
// never touches the socket.

import { state } from './state.js';
import { api } from './api.js';

export const conn = {
  ws: null, attempt: 0, pingTimer: null, lastHeard: 0, interval: 5000, ready: false, stopped: false,
  // The browser said the network is gone: wait for it to come back (or
  // try now and then) instead of burning reconnect attempts.
  offline: false, retryTimer: null,
  // Gateway URLs from discovery, least loaded first; `next` indexes the
  // one to try next (past the end: ask discovery again).
  gateways: [], next: 0, url: null,
  // Set by the app: frame(f), signedOut(reason), status(text).
  handlers: { frame: () => {}, signedOut: () => {}, status: () => {} },

  async start() {
    this.stopped = false;
    const url = await this.pickGateway();
    if (this.stopped) return;
    this.url = url;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {   // refused outright, e.g. by the page's security policy
      this.lost(null);
      return;
    }
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: state.token }));
    ws.onmessage = (e) => { this.lastHeard = Date.now(); this.handlers.frame(JSON.parse(e.data)); };
    ws.onclose = (e) => { if (this.ws === ws) this.lost(e); };
  },

  // The next gateway listed; after the last one, a fresh list from
  // discovery with the one that just failed moved to the end (a dead
  // gateway stays listed for a few seconds). The page's own host when
  // discovery cannot be asked.
  async pickGateway() {
    if (this.next >= this.gateways.length) {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      let urls = [];
      try { urls = (await api('GET', '/v1/discovery')).servers.map((s) => s.ws_url); } catch (_) { /* below */ }
      if (this.url && urls.length > 1 && urls.includes(this.url)) {
        urls = urls.filter((u) => u !== this.url).concat([this.url]);
      }
      this.gateways = urls.length ? urls : [`${scheme}://${location.host}/v1/ws`];
      this.next = 0;
    }
    return this.gateways[this.next++];
  },

  lost(e) {
    this.ready = false;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    // Refused for policy: a token refused or revoked signs out (with the
    // server's reason); too many sockets for this account only waits.
    if (e && e.code === 1008 && !/too many/.test(e.reason)) { this.handlers.signedOut(e.reason); return; }
    if (e && e.code === 1008) this.attempt = Math.max(this.attempt, 4);
    this.handlers.status(this.offline ? 'Offline — waiting for the network…' : 'Connection lost — reconnecting…');
    // Exponential backoff with full jitter; slow polling while offline.
    const delay = this.offline ? 30000 : Math.random() * Math.min(30000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { if (!this.stopped) this.start(); }, delay);
  },

  // The browser's word on the network: going offline closes the socket at
  // once (instead of waiting for the heartbeat to time out); coming back
  // reconnects at once, and `ready` catches up what was missed.
  wentOffline() {
    this.offline = true;
    if (this.stopped) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) { this.ws.close(); return; }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { if (!this.stopped) this.start(); }, 30000);
  },

  cameOnline() {
    this.offline = false;
    if (this.stopped || this.ready) return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.start();
  },

  // Sends a frame when connected and authenticated; false otherwise.
  send(frame) {
    if (this.ready && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(frame)); return true; }
    return false;
  },

  onReady(interval) {
    this.ready = true;
    this.offline = false;
    this.attempt = 0;
    // Once this socket ends, ask discovery afresh.
    this.next = this.gateways.length;
    this.interval = interval;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > 3 * this.interval) { this.abandon(); return; }
      this.send({ type: 'ping' });
    }, interval);
  },

  // A socket that went silent (a stalled network): given up at once.
  // Closing it would wait for a closing handshake that cannot arrive
  // (about a minute in Chromium) before `onclose` fires.
  abandon() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.close();
    }
    this.lost(null);
  },

  stop() { this.stopped = true; clearInterval(this.pingTimer); if (this.ws) this.ws.close(); },
};

window.addEventListener('offline', () => conn.wentOffline());
window.addEventListener('online', () => conn.cameOnline());

// A gateway that joined after this page was loaded is outside the page's
// security policy: while no socket is up, load the page again for a
// policy that names it (the session is kept).
document.addEventListener('securitypolicyviolation', (e) => {
  if (e.effectiveDirective === 'connect-src' && /^wss?:/.test(e.blockedURI) && !conn.ready && !conn.stopped) {
    setTimeout(() => { if (!conn.ready) location.reload(); }, 1000);
  }
});
