"""What the hostile-input defences cost and save, against what ran before them, in one run.

1. A safety regex rule on a hostile caption: ``(a+)+$`` on ``"a" * n + "!"`` with Python's ``re``
   (what the rules used before: exponential) and with :func:`brandstudio.textmatch.compile_pattern`
   (RE2: linear), for growing ``n``.
2. The text rules of the demo profile on an ordinary prompt and on a 16 000-character one (the
   cost the folding adds to every render).
3. A music track whose bytes decode to 20 minutes (a steady tone compresses to almost nothing): peak memory and time of decoding what a 5 s clip needs (``load_audio(seconds=...)``,
   what a render does now) against decoding the whole track (what it did before), each in a
   fresh process.

    python bench/hostile.py
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

import imageio_ffmpeg

from brandstudio.audio.music import music_seconds
from brandstudio.profile import load_profile
from brandstudio.safety import rules_of
from brandstudio.textmatch import compile_pattern

REPO = Path(__file__).resolve().parent.parent


def regex_rows() -> list[str]:
    rows = []
    bomb_re, bomb_re2 = re.compile(r"(a+)+$"), compile_pattern(r"(a+)+$")
    for n in (18, 20, 22, 24):
        text = "a" * n + "!"
        t0 = time.perf_counter()
        bomb_re.search(text)
        t_re = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(100):
            bomb_re2.search(text)
        t_re2 = (time.perf_counter() - t0) / 100
        rows.append(f"| {n + 1} | {t_re * 1000:.1f} | {t_re2 * 1000:.4f} | {t_re / t_re2:,.0f} |")
    return rows


def rules_rows() -> list[str]:
    rules = rules_of(load_profile(REPO / "brand_profiles" / "aurora-coffee"))
    prompt = ("A steaming cup of Night Roast on a rustic wooden table, warm morning light, amber and cream "
              "tones, 35mm film grain, cinematic, inviting, ")  # fmt: skip
    rows = []
    for text in (prompt * 3, prompt * 120):
        rules.check(text, where="prompt")
        t0 = time.perf_counter()
        for _ in range(20):
            rules.check(text, where="prompt")
        rows.append(f"| {len(text)} | {(time.perf_counter() - t0) / 20 * 1000:.2f} |")
    return rows


_DECODE = textwrap.dedent(
    """
    import json, resource, sys, time
    from brandstudio.audio.music import load_audio
    t0 = time.perf_counter()
    audio = load_audio(sys.argv[1], 48000, seconds=float(sys.argv[2]))
    print(json.dumps({"seconds": time.perf_counter() - t0, "samples": len(audio),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def audio_rows(folder: Path) -> list[str]:
    track = folder / "long.flac"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=220:duration=1200:sample_rate=48000", "-ac", "2", str(track)], check=True)  # fmt: skip
    rows = []
    for label, seconds in (("what a 5 s clip needs (now)", music_seconds(5.0)), ("the whole track (before)", 1200)):
        out = subprocess.run([sys.executable, "-c", _DECODE, str(track), str(seconds)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        got = json.loads(out)
        rows.append(f"| {label} | {got['samples'] / 48000:.0f} | {got['seconds']:.2f} | {got['peak_mb']:.0f} |")
    size = track.stat().st_size / 2**20
    rows.append(f"\n(the track: {size:.1f} MB of FLAC; peak is the process's maximum RSS, imports included)")
    return rows


def main() -> None:
    print(f"### Hostile input ({date.today()}, {platform.processor() or platform.machine()})\n")
    print("Regex rule `(a+)+$` on `'a' * n + '!'`:\n")
    print("| text length | Python `re` ms | RE2 ms | × |\n|---|---|---|---|")
    print("\n".join(regex_rows()))
    print("\nThe demo profile's text rules (3 blocked terms, 4 competitors, 2 regex rules) on one text:\n")
    print("| characters | ms per check |\n|---|---|")
    print("\n".join(rules_rows()))
    with tempfile.TemporaryDirectory() as tmp:
        print("\nA track that decodes to 20 minutes, decoded in a fresh process:\n")
        print("| decoded | audio s | time s | peak MB |\n|---|---|---|---|")
        print("\n".join(audio_rows(Path(tmp))))


if __name__ == "__main__":
    main()
