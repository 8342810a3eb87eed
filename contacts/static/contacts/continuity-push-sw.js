/* Continuity push service worker: shows the notification the server sent, opens its URL. */
self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {body: event.data.text()}; }
  var title = data.title || "News";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || "",
    icon: data.icon || undefined,
    tag: data.tag || undefined,
    data: {url: data.url || "/"}
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(clients.openWindow(url));
});
