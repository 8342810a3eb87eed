/* The segment editor's live count: posts the definition being edited, shows the audience size.
   A static file, not an inline script, so the admin runs under a CSP without 'unsafe-inline'. */
(function () {
  "use strict";
  function start() {
    var out = document.getElementById("segment-live-count");
    var form = document.getElementById("segment_form");
    if (!out || !form) { return; }
    var url = out.dataset.url;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var timer = null;
    function value(name) {
      var el = form.querySelector("[name=" + name + "]");
      if (!el || !el.value.trim()) { return []; }
      try { return JSON.parse(el.value); } catch (e) { return "__invalid__"; }
    }
    function refresh() {
      var body = {};
      ["tags_any", "tags_all", "tags_none", "attribute_filters"].forEach(function (n) { body[n] = value(n); });
      fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
                  body: JSON.stringify(body), credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          if (d.error) { out.textContent = "invalid: " + JSON.stringify(d.detail); return; }
          out.textContent = d.all + " contacts; may be sent marketing by email " + d.email +
            ", SMS " + d.sms + ", push " + d.push + ", WhatsApp " + d.whatsapp;
        });
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 400); });
    refresh();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
