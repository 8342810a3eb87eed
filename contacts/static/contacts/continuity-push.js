/*
 * Continuity web push snippet. Embed on your site:
 *   <script src="https://crm.example.com/static/contacts/continuity-push.js"
 *     data-endpoint="https://crm.example.com/push/<workspace slug>/subscribe/"
 *     data-service-worker="/continuity-push-sw.js"   (a copy served from YOUR origin)
 *     data-vapid-public-key="<VAPID public key, base64url>"
 *     data-token="<optional signed contact token from the CRM>"
 *     data-button="<id of the button that asks for permission>"></script>
 * Permission is only requested from a click, as browsers require. The status texts are English
 * unless the page passes its own (data-msg-unsupported, -unconfigured, -denied, -on, -not-saved,
 * -failed), as the preference centre does in the visitor's language.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var cfg = script.dataset;

  function msg(name, english) { return cfg[name] || english; }

  function status(text) {
    var el = cfg.status && document.getElementById(cfg.status);
    if (el) { el.textContent = text; }
  }

  function keyBytes(base64url) {
    var padded = (base64url + "===".slice((base64url.length + 3) % 4))
      .replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }

  async function subscribe() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      status(msg("msgUnsupported", "This browser does not support push notifications."));
      return;
    }
    if (!cfg.vapidPublicKey) { status(msg("msgUnconfigured", "Push is not configured on this site.")); return; }
    var permission = await Notification.requestPermission();
    if (permission !== "granted") { status(msg("msgDenied", "Notifications were not allowed.")); return; }
    var registration = await navigator.serviceWorker.register(cfg.serviceWorker);
    await navigator.serviceWorker.ready;
    var subscription = await registration.pushManager.getSubscription();
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(cfg.vapidPublicKey)
      });
    }
    var response = await fetch(cfg.endpoint, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({subscription: subscription.toJSON(), token: cfg.token || null})
    });
    status(response.ok ? msg("msgOn", "Notifications are on in this browser.") :
      msg("msgNotSaved", "We could not save the subscription (HTTP status):") + " " + response.status);
  }

  var button = cfg.button && document.getElementById(cfg.button);
  if (button) {
    button.addEventListener("click", function () {
      subscribe().catch(function (err) { status(msg("msgFailed", "Push failed:") + " " + err); });
    });
  }
  window.ContinuityPush = {subscribe: subscribe};
})();
