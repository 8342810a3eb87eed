"""The campaign page's live SMS counter (campaigns/static/campaigns/sms-counter.js) counts
segments and encoding exactly as delivery/sms_segments.py does, fed the server's GSM tables.
Runs the script under node when the machine has it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from delivery.sms_segments import GSM7_BASIC, GSM7_EXTENSION, sms_segments_count

SCRIPT = (
    Path(__file__).resolve().parents[2] / "campaigns" / "static" / "campaigns" / "sms-counter.js"
)
TEXTS = [
    "",
    "Ciao Anna: i saldi sono già qui, più sconti. Perché aspettare?",
    "È il giorno dei saldi",
    "Prezzo: 5€ [promo] {oggi}",
    "a" * 160,
    "a" * 161,
    "a" * 152 + "€" + "b" * 152,
    "È" + "a" * 69,
    "È" + "a" * 70,
    "😀" * 35,
    "😀" * 36,
    "\u0131" * 66 + "😀" + "\u0131" * 66,
    "àèéìòù" * 30,
    "á" * 10,
]

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def test_the_js_counter_agrees_with_the_server_on_every_sample() -> None:
    harness = (
        f"const c = require({json.dumps(str(SCRIPT))});"
        f"const basic = new Set(Array.from({json.dumps(''.join(sorted(GSM7_BASIC)))}));"
        f"const ext = new Set(Array.from({json.dumps(''.join(sorted(GSM7_EXTENSION)))}));"
        f"const texts = {json.dumps(TEXTS)};"
        "process.stdout.write(JSON.stringify(texts.map(t => c.count(t, basic, ext))));"
    )
    node = shutil.which("node") or "node"
    out = subprocess.run(
        [node, "-e", harness], capture_output=True, text=True, check=True, timeout=30
    )
    got = json.loads(out.stdout)
    expected = [
        {"encoding": r.encoding, "segments": r.segments}
        for r in (sms_segments_count(text=t) for t in TEXTS)
    ]
    assert got == expected
