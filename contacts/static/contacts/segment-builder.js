/* The segment editor's rule rows: show the inputs a row's kind uses, hide the value box for
   "is filled in" / "is empty", add and remove rows. A static file: the CSP allows no inline script. */
(function () {
  "use strict";
  var NO_VALUE = ["exists", "missing"];
  function sync(row) {
    var kind = row.querySelector(".segment-rule-kind").value;
    var op = row.querySelector(".segment-rule-op");
    row.dataset.kind = kind;
    row.querySelectorAll(".segment-rule-part").forEach(function (part) {
      var shown = part.dataset["for"].split(" ").indexOf(kind) !== -1;
      if (shown && part.classList.contains("segment-rule-value") && kind === "attribute") {
        shown = NO_VALUE.indexOf(op.value) === -1;
      }
      part.hidden = !shown;
    });
  }
  function renumber(row, index) {
    row.querySelectorAll("[name^=rule-], [id^=rule-], label[for^=rule-]").forEach(function (el) {
      ["name", "id", "for"].forEach(function (attr) {
        var v = el.getAttribute(attr);
        if (v) { el.setAttribute(attr, v.replace(/^rule-\d+-/, "rule-" + index + "-")); }
      });
    });
  }
  function start() {
    var box = document.querySelector(".segment-rules");
    if (!box) { return; }
    var list = box.querySelector(".segment-rule-list");
    list.querySelectorAll(".segment-rule").forEach(sync);
    list.addEventListener("change", function (e) {
      var row = e.target.closest(".segment-rule");
      if (row) { sync(row); }
    });
    list.addEventListener("click", function (e) {
      if (!e.target.classList.contains("segment-rule-remove")) { return; }
      var row = e.target.closest(".segment-rule");
      row.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      if (list.querySelectorAll(".segment-rule").length > 1) { row.remove(); }
      box.closest("form").dispatchEvent(new Event("input", {bubbles: true}));
    });
    box.querySelector(".segment-rule-add").addEventListener("click", function () {
      var rows = list.querySelectorAll(".segment-rule");
      var copy = rows[rows.length - 1].cloneNode(true);
      var index = parseInt(box.dataset.nextIndex, 10);
      box.dataset.nextIndex = String(index + 1);
      renumber(copy, index);
      copy.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      copy.querySelector(".segment-rule-kind").value = "attribute";
      list.appendChild(copy);
      sync(copy);
      copy.querySelector("input").focus();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
