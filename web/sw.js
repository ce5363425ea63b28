// chinwag service worker: shows push notifications (decrypted by the
// browser) and opens the chat when one is clicked.

self.addEventListener('push', (event) => {
  let note = {};
  try { note = event.data ? event.data.json() : {}; } catch (_) { note = {}; }
  const more = note.count > 1 ? ` (+${note.count - 1} more)` : '';
  const title = note.sender_name ? `${note.sender_name}${more}` : 'New message';
  event.waitUntil(self.registration.showNotification(title, {
    body: note.preview || '',
    tag: `channel-${note.channel_id}`,
    data: { channel_id: note.channel_id },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    if (windows.length) return windows[0].focus();
    return self.clients.openWindow('/');
  })());
});
