/* The segment editor's live count: posts the form as it stands (tags and rule rows), shows the
   audience size per channel. A static file, not an inline script: the CSP allows no inline one. */
(function () {
  "use strict";
  function start() {
    var out = document.getElementById("segment-live-count");
    var form = document.getElementById("segment_form");
    if (!out || !form) { return; }
    var url = out.dataset.url;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    var timer = null;
    function refresh() {
      var body = new URLSearchParams(new FormData(form));
      fetch(url, {method: "POST", headers: {"X-CSRFToken": csrf}, body: body, credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          if (d.error) { out.textContent = out.dataset.invalid + " " + d.detail; return; }
          out.textContent = out.dataset.template
            .replace("{all}", d.all).replace("{email}", d.email).replace("{sms}", d.sms)
            .replace("{push}", d.push).replace("{whatsapp}", d.whatsapp);
        });
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 400); });
    form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 200); });
    refresh();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
