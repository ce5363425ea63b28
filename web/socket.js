// The WebSocket half: authenticate, heartbeat, reconnect with jittered
// backoff. Frames go to `handlers.frame`; the rest of the client never
// touches the socket.

import { state } from './state.js';

export const conn = {
  ws: null, attempt: 0, pingTimer: null, lastHeard: 0, interval: 5000, ready: false, stopped: false,
  // Set by the app: frame(f), signedOut(), status(text).
  handlers: { frame: () => {}, signedOut: () => {}, status: () => {} },

  start() {
    this.stopped = false;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/v1/ws`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: state.token }));
    ws.onmessage = (e) => { this.lastHeard = Date.now(); this.handlers.frame(JSON.parse(e.data)); };
    ws.onclose = (e) => this.lost(e);
  },

  lost(e) {
    this.ready = false;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    if (e && e.code === 1008) { this.handlers.signedOut(); return; }   // token refused or revoked
    this.handlers.status('Connection lost — reconnecting…');
    // Exponential backoff with full jitter.
    const delay = Math.random() * Math.min(30000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    setTimeout(() => { if (!this.stopped) this.start(); }, delay);
  },

  // Sends a frame when connected and authenticated; false otherwise.
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
