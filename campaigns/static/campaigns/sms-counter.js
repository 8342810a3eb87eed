/* The live SMS counter under each SMS text of the campaign page: characters, encoding,
 * segments and an estimated cost, as delivery/sms_segments.py counts them (GSM 03.38: 160
 * septets, 153 a part when concatenated, extension characters take two and never straddle a
 * part; else UCS-2: 70 UTF-16 units, 67 a part, a surrogate pair never straddles a part).
 * The character sets and the translated sentence come from the textarea's data attributes:
 * the server's table is the only one. Merge fields count as written (their values are unknown). */
(function () {
  "use strict";

  function pack(widths, single, part) {
    var total = 0;
    widths.forEach(function (w) { total += w; });
    if (total <= single) { return total ? 1 : 0; }
    var segments = 1, used = 0;
    widths.forEach(function (w) {
      if (used + w > part) { segments += 1; used = 0; }
      used += w;
    });
    return segments;
  }

  function count(text, basic, extension) {
    var chars = Array.from(text);
    var gsm = chars.every(function (ch) { return basic.has(ch) || extension.has(ch); });
    if (gsm) {
      return {
        encoding: "GSM-7",
        segments: pack(chars.map(function (ch) { return extension.has(ch) ? 2 : 1; }), 160, 153),
      };
    }
    return {
      encoding: "UCS-2",
      segments: pack(chars.map(function (ch) { return ch.codePointAt(0) > 0xffff ? 2 : 1; }), 70, 67),
    };
  }

  function attach(area) {
    if (area.dataset.smsCounterReady) { return; }
    area.dataset.smsCounterReady = "1";
    var basic = new Set(Array.from(area.dataset.gsm7Basic || ""));
    var extension = new Set(Array.from(area.dataset.gsm7Extension || ""));
    var cost = parseFloat(area.dataset.segmentCost || "0");
    var out = document.createElement("p");
    out.className = "help continuity-sms-counter";
    out.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", out);
    function update() {
      var text = area.value.replace(/\r\n/g, "\n");
      var result = count(text, basic, extension);
      out.textContent = (area.dataset.sentence || "")
        .replace("{characters}", String(Array.from(text).length))
        .replace("{encoding}", result.encoding)
        .replace("{segments}", String(result.segments))
        .replace("{cost}", (result.segments * cost).toFixed(4));
    }
    area.addEventListener("input", update);
    update();
  }

  function scan() {
    document.querySelectorAll("textarea[data-sms-counter]").forEach(function (area) {
      // The admin's empty "add another" template is copied, not shown: skip it.
      if (area.name && area.name.indexOf("__prefix__") === -1) { attach(area); }
    });
  }

  if (typeof document === "undefined") {
    // Outside a browser (tests/campaigns/test_sms_counter_js.py runs it under node): the
    // counter alone, to check it against delivery/sms_segments.py.
    module.exports = { count: count };
    return;
  }
  document.addEventListener("DOMContentLoaded", scan);
  // Rows added with "Add another" arrive after load.
  document.addEventListener("formset:added", scan);
})();
