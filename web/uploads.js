// Files attached in the composer. Each uploads as soon as it is picked,
// dropped or pasted, with a progress bar and a cancel button; a failed
// one can be retried. `readyUploads()` are sent with the next message.

import { state } from './state.js';

const $ = (id) => document.getElementById(id);
const tray = []; // {file, xhr, progress, upload, error}

function start(item) {
  if (!tray.includes(item)) tray.push(item);
  Object.assign(item, { error: null, progress: 0, upload: null });
  const xhr = new XMLHttpRequest();
  item.xhr = xhr;
  const name = item.file.name || 'pasted image.png';
  xhr.open('POST', `/v1/uploads?filename=${encodeURIComponent(name)}`);
  xhr.setRequestHeader('Authorization', `Bearer ${state.token}`);
  xhr.setRequestHeader('Content-Type', item.file.type || 'application/octet-stream');
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) { item.progress = e.loaded / e.total; render(); } };
  xhr.onload = () => {
    item.xhr = null;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 201 && body) { item.upload = body.upload; item.progress = 1; }
    else item.error = (body && body.error && body.error.message) || `Upload failed (HTTP ${xhr.status})`;
    render();
  };
  xhr.onerror = () => { item.xhr = null; item.error = 'Upload failed: the server cannot be reached.'; render(); };
  xhr.send(item.file);
  render();
}

function remove(item) {
  if (item.xhr) item.xhr.abort();
  tray.splice(tray.indexOf(item), 1);
  render();
}

export function addFiles(files) {
  for (const file of files) start({ file });
}

export const uploadsBusy = () => tray.some((i) => i.xhr);
export const readyUploads = () => tray.filter((i) => i.upload).map((i) => i.upload);
export function clearUploads() { tray.length = 0; render(); }

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function render() {
  const items = tray.map((item, index) => {
    const li = document.createElement('li');
    li.className = `upload${item.error ? ' failed' : ''}`;
    li.dataset.state = item.error ? 'failed' : (item.upload ? 'ready' : 'uploading');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = item.file.name || 'pasted image';
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = item.progress;
    bar.setAttribute('aria-label', `Uploading ${name.textContent}`);
    const status = document.createElement('span');
    status.className = 'status';
    status.textContent = item.error || (item.upload ? formatSize(item.upload.size) : `${Math.round(item.progress * 100)}%`);
    li.append(name, bar, status);
    if (item.error) {
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.dataset.index = index;
      retry.dataset.action = 'retry';
      retry.textContent = 'Retry';
      li.append(retry);
    }
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.dataset.index = index;
    cancel.dataset.action = 'remove';
    cancel.textContent = '×';
    cancel.setAttribute('aria-label', item.xhr ? `Cancel uploading ${name.textContent}` : `Remove ${name.textContent}`);
    li.append(cancel);
    return li;
  });
  $('uploads').replaceChildren(...items);
  $('uploads').hidden = items.length === 0;
}

// Attach button, drag and drop onto the conversation, pasting into the text.
export function wireUploads() {
  $('attach').addEventListener('click', () => $('attach-input').click());
  $('attach-input').addEventListener('change', () => { addFiles($('attach-input').files); $('attach-input').value = ''; });
  const chat = $('chat');
  chat.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer && [...ev.dataTransfer.types].includes('Files')) { ev.preventDefault(); chat.classList.add('dropping'); }
  });
  chat.addEventListener('dragleave', () => chat.classList.remove('dropping'));
  chat.addEventListener('drop', (ev) => {
    chat.classList.remove('dropping');
    if (ev.dataTransfer && ev.dataTransfer.files.length) { ev.preventDefault(); addFiles(ev.dataTransfer.files); }
  });
  $('composer-text').addEventListener('paste', (ev) => {
    const files = [...((ev.clipboardData && ev.clipboardData.files) || [])];
    if (files.length) { ev.preventDefault(); addFiles(files); }
  });
  $('uploads').addEventListener('click', (ev) => {
    const button = ev.target.closest('button[data-index]');
    if (!button) return;
    const item = tray[Number(button.dataset.index)];
    if (!item) return;
    if (button.dataset.action === 'retry') start(item); else remove(item);
  });
}
