/* The campaign composer: merge tags inserted at the cursor, fallback channels moved up, the
   contact picker and previews, the audience count and "send me a test". A static file: the
   CSP allows no inline script. */
(function () {
  "use strict";
  function csrf() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  var lastText = null;
  var pickedContact = "";
  /* The preview's and the test's language selects say the same: one choice, shown twice. */
  function pickedLanguage() {
    var select = document.querySelector(".composer-language");
    return select ? select.value : "";
  }
  function languages(onChange) {
    var selects = document.querySelectorAll(".composer-language");
    selects.forEach(function (select) {
      select.addEventListener("change", function () {
        selects.forEach(function (other) { other.value = select.value; });
        onChange();
      });
    });
  }
  function mergeTags(form) {
    form.addEventListener("focusin", function (e) {
      var t = e.target;
      if ((t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text")) &&
          !t.classList.contains("composer-contact") && !t.classList.contains("composer-test-address")) {
        lastText = t;
      }
    });
    document.querySelectorAll(".composer-merge-tag").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = lastText || document.getElementById("id_text");
        if (!target) { return; }
        var tag = button.dataset.tag;
        var start = target.selectionStart || target.value.length;
        var end = target.selectionEnd || start;
        target.value = target.value.slice(0, start) + tag + target.value.slice(end);
        target.focus();
        target.selectionStart = target.selectionEnd = start + tag.length;
        target.dispatchEvent(new Event("input", {bubbles: true}));
      });
    });
  }
  function channels() {
    document.querySelectorAll(".composer-channel-up").forEach(function (button) {
      button.addEventListener("click", function () {
        var item = button.closest("li");
        var before = item.previousElementSibling;
        if (before) { item.parentNode.insertBefore(item, before); button.focus(); }
      });
    });
  }
  function previews(form) {
    var input = document.querySelector(".composer-contact");
    if (!input) { return; }
    var list = document.getElementById("composer-contact-list");
    var out = document.getElementById("composer-previews");
    var found = {};
    var timer = null;
    function contactId() {
      if (found[input.value]) { return found[input.value]; }
      return /^\d+$/.test(input.value.trim()) ? input.value.trim() : "";
    }
    function refresh() {
      var body = new URLSearchParams(new FormData(form));
      pickedContact = contactId();
      body.set("contact", pickedContact);
      body.set("language", pickedLanguage());
      fetch(input.dataset.previewUrl, {method: "POST", credentials: "same-origin",
                                       headers: {"X-CSRFToken": csrf()}, body: body})
        .then(function (r) { return r.text(); })
        .then(function (html) { out.innerHTML = html; });
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      if (found[input.value]) { refresh(); return; }
      timer = setTimeout(function () {
        fetch(input.dataset.searchUrl + "?q=" + encodeURIComponent(input.value), {credentials: "same-origin"})
          .then(function (r) { return r.json(); })
          .then(function (d) {
            list.textContent = "";
            (d.results || []).forEach(function (c) {
              found[c.label] = String(c.id);
              var option = document.createElement("option");
              option.value = c.label;
              list.appendChild(option);
            });
          });
      }, 250);
    });
    input.addEventListener("change", function () { if (contactId()) { refresh(); } });
    document.querySelector(".composer-preview-refresh").addEventListener("click", refresh);
    languages(refresh);
  }
  function audience() {
    var box = document.getElementById("composer-audience");
    if (!box) { return; }
    fetch(box.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { box.innerHTML = html; })
      .catch(function () {});
  }
  function testSend() {
    var box = document.querySelector(".composer-test-send");
    if (!box) { return; }
    var result = box.querySelector(".composer-test-result");
    box.querySelector(".composer-test-button").addEventListener("click", function () {
      var body = new URLSearchParams();
      body.set("channel", box.querySelector(".composer-test-channel").value);
      body.set("address", box.querySelector(".composer-test-address").value);
      body.set("contact", pickedContact);
      body.set("language", pickedLanguage());
      result.textContent = "…";
      fetch(box.dataset.url, {method: "POST", credentials: "same-origin",
                              headers: {"X-CSRFToken": csrf()}, body: body})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          result.textContent = d.detail;
          result.classList.toggle("composer-ok", !!d.ok);
          result.classList.toggle("composer-error", !d.ok);
        });
    });
  }
  /* The waits only apply to their policy: show each with it. */
  function policyFields(form) {
    var rows = {
      hold_then_reroute: document.querySelector(".form-row.field-hold_then_reroute_minutes"),
      hold: document.querySelector(".form-row.field-max_hold_minutes")
    };
    function sync() {
      var chosen = form.querySelector("input[name=outage_policy]:checked");
      var value = chosen ? chosen.value : "";
      Object.keys(rows).forEach(function (policy) {
        if (rows[policy]) { rows[policy].hidden = value !== policy; }
      });
    }
    form.querySelectorAll("input[name=outage_policy]").forEach(function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  }
  function start() {
    var form = document.getElementById("campaign_form");
    if (!form) { return; }
    policyFields(form);
    mergeTags(form);
    channels();
    previews(form);
    audience();
    testSend();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
