"""Benchmark: the whole post stage for an 81-frame clip to 1280×720, streamed, vs one ffmpeg command line.

The clip is what Wan2.2 A14B makes at 480p: **81 frames of 832×480 at 16 fps** (synthetic
footage: moving gradients, shapes and grain, so the encoder has real work). It is delivered
as a 5 s **16:9 1280×720** clip (80 frames) of the aurora-coffee profile: the 33-point LUT at
strength 0.85 (tetrahedral), centre crop to 16:9, Lanczos upscale, two timed captions, the
logo, the AI label, then H.264 (libx264 preset medium, CRF 20, yuv420p, BT.709) + AAC 192k
of the same, already fitted, music bed, into an MP4 with +faststart.

Variants, each run in its own process (so its memory is its own) and alternated ``--repeat``
times; the table shows the median wall time:

* **brandstudio, streamed**: the render path's own code (``BrandStudio._post`` + the label
  effect, :func:`brandstudio.post.stream.run_stream` into :class:`brandstudio.encode.Mp4Writer`),
  8-frame chunks, effects in a producer thread while ffmpeg encodes. The 256³ grade table
  comes from the LUT disk cache (every render after the first with a LUT);
* **brandstudio, streamed, cold**: the same with an empty LUT cache (bakes the table first);
* **brandstudio, whole clip**: the pre-streaming post stage (``PostChain.apply`` holds the
  delivered clip, then ``write_mp4``), for the memory comparison;
* **experiment**: streamed with OpenCV's ``INTER_LANCZOS4`` resize in place of Pillow's Lanczos
  (the largest effect cost), to show what a faster resampler would change;
* **ffmpeg**: one command line doing the same: raw RGB frames read from a file, ``lut3d``
  (the same cube, blended with identity at the profile's strength, which for tetrahedral
  interpolation is exactly the blended grade), ``crop``, ``scale`` (lanczos), ``overlay`` of
  the logo, the label and the two captions pre-rendered to PNGs by brandstudio (each caption
  enabled for its time span), the same BT.709 ``scale`` to yuv420p, libx264 + AAC.

Timing starts with the profile loaded and colour-science and torch imported (a render process
has them: the profile is loaded once, torch runs the generation): it covers reading the LUT,
laying out the overlays, every effect, and the encode until the MP4 is in place; for ffmpeg,
the whole command.

Peak memory: each process's RSS high-water mark (``VmHWM``, polled every 10 ms while it runs):
the Python process and its ffmpeg child; their sum bounds the two together from above, and
"sampled" is the largest sum of their current RSS seen by the 10 ms sampler (psutil).

    python bench/post.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "brand_profiles" / "aurora-coffee"
T_SRC, W_SRC, H_SRC, FPS, DURATION, W, H = 81, 832, 480, 16, 5.0, 1280, 720
SR = 48000


def footage(path: Path) -> None:
    """81 frames of 832×480: drifting colour gradients, a moving disc, sensor-like grain."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:H_SRC, 0:W_SRC].astype(np.float32)
    with open(path, "wb") as fh:
        for i in range(T_SRC):
            r = 128 + 100 * np.sin((x + 3 * i) / 140)
            g = 110 + 80 * np.cos((y - 2 * i) / 90)
            b = 90 + 60 * np.sin((x + y + 5 * i) / 200)
            frame = np.stack([r, g, b], -1)
            cx, cy = 200 + 6 * i, 240 + 60 * np.sin(i / 10)
            disc = ((x - cx) ** 2 + (y - cy) ** 2) < 70**2
            frame[disc] = (230, 200, 160)
            frame += rng.normal(0, 6, frame.shape)
            fh.write(np.clip(frame, 0, 255).astype(np.uint8).tobytes())


def make_studio(workdir: Path):
    """The studio with its profile loaded (once per process in real use: not part of the post stage)."""
    import colour  # noqa: F401 - a warm process has colour-science imported (read_lut uses it)
    import torch  # noqa: F401 - ... and torch (generation); the grade's backend check would import it

    from brandstudio import BrandStudio

    return BrandStudio(PROFILE, output_dir=workdir, generator=object(), cache=False)


def build(studio, source: np.ndarray):
    """The render path's chain for this clip (and the cues), from the studio's own code."""
    from brandstudio.post.label import RegionLabel, label_plan

    spec = studio.profile.spec
    rendered = studio.templates.get("product-hero").render({"product": "Night Roast"})
    cues = rendered.scaled_cues(DURATION)
    chain = studio._post(source, "16:9", W, H, DURATION, spec.model.fps, FPS, cues)
    label = RegionLabel(
        label_plan(spec), studio.profile.path("captions.font"), spec.captions.safe_area["16:9"], FPS
    )
    return chain.with_output_effects(label), cues


# -- the variants (each runs in a child process: `python bench/post.py --child NAME WORKDIR`) --------


def child(name: str, workdir: Path) -> dict:
    import resource

    from brandstudio.encode import Mp4Writer, write_mp4
    from brandstudio.post.stream import run_stream

    if name == "ffmpeg":
        cmd = json.loads((workdir / "ffmpeg.json").read_text())
        c0 = _cpu_s()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return {"wall": time.perf_counter() - t0, "cpu": _cpu_s() - c0}
    if name == "stream-cv2":  # the experiment: OpenCV's Lanczos-4 in place of Pillow's Lanczos-3
        import cv2

        from brandstudio.post import upscale

        upscale.UPSCALERS["lanczos"] = lambda frame, size: cv2.resize(
            frame, size, interpolation=cv2.INTER_LANCZOS4
        )
    source = np.fromfile(workdir / "source.rgb", np.uint8).reshape(T_SRC, H_SRC, W_SRC, 3)
    bed = np.fromfile(workdir / "bed.f32", "<f4").reshape(-1, 2)
    studio = make_studio(workdir)
    base = _rss_mb()  # the process before the post stage: libraries, the profile, the 81 source frames
    c0 = _cpu_s()
    t0 = time.perf_counter()  # the post stage: read the LUT, lay out the overlays, stream or hold, encode
    chain, _ = build(studio, source)
    n = chain.n_frames(T_SRC)
    kw = dict(audio=bed, sample_rate=SR, crf=studio.profile.spec.output.crf, audio_bitrate="192k")
    out = workdir / f"{name}.mp4"
    extra = {}
    if name == "whole":
        frames = chain.apply(source)
        write_mp4(frames, FPS, out, **kw)
    else:
        with Mp4Writer(out, W, H, FPS, n_frames=n, **kw) as mp4:
            stats = run_stream(chain, source, mp4)
        extra = {"post_s": stats.post_seconds, "encode_wait_s": mp4.wait_seconds}
    wall = time.perf_counter() - t0
    return {"wall": wall, "cpu": _cpu_s() - c0, "rss_base": base, "rss_py_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **extra}  # fmt: skip


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children (ffmpeg) so far."""
    import resource

    return sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ffmpeg_inputs(workdir: Path) -> list[str]:
    """Pre-render the overlays and the blended cube; return the ffmpeg command line."""
    import colour
    from PIL import Image

    from brandstudio.media import ffmpeg_exe
    from brandstudio.post.captions import render_cue
    from brandstudio.post.grade import read_lut

    studio = make_studio(workdir)
    source = np.fromfile(workdir / "source.rgb", np.uint8).reshape(T_SRC, H_SRC, W_SRC, 3)
    chain, cues = build(studio, source)
    spec = studio.profile.spec
    lut = read_lut(studio.profile.path("colour.lut"))
    ident = np.stack(np.meshgrid(*[np.linspace(0, 1, lut.size)] * 3, indexing="ij"), -1)
    table = (1 - spec.colour.strength) * ident + spec.colour.strength * lut.table
    colour.io.write_LUT(colour.LUT3D(table, name="blended"), str(workdir / "blended.cube"))
    captions, logo, label = chain.output_effects[0], chain.output_effects[1], chain.output_effects[2]
    overlays = []  # (png, x, y, enable expression)
    img, x, y = logo.render(W, H)
    if logo.opacity < 1:
        img = img.copy()
        img[..., 3] = np.round(img[..., 3] * logo.opacity).astype(np.uint8)
    overlays.append((img, x, y, None))
    img, x, y = label._label(W, H).render(W, H)
    overlays.append((img, x, y, None))
    for cue in cues:
        img, x, y = render_cue(cue[2], captions.style, W, H)
        overlays.append((img, x, y, f"gte(t,{cue[0]})*lt(t,{cue[1]})"))
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-nostdin",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W_SRC}x{H_SRC}", "-framerate", str(FPS),
           "-i", str(workdir / "source.rgb"),
           "-f", "f32le", "-ar", str(SR), "-ac", "2", "-i", str(workdir / "bed.f32")]  # fmt: skip
    graph = [f"[0:v]lut3d=file={workdir / 'blended.cube'}:interp=tetrahedral,crop={W_SRC}:468:0:6,"
             f"scale={W}:{H}:flags=lanczos[v0]"]  # fmt: skip
    for k, (img, x, y, enable) in enumerate(overlays):
        png = workdir / f"overlay{k}.png"
        Image.fromarray(img).save(png)
        cmd += ["-i", str(png)]
        en = f":enable='{enable}'" if enable else ""
        graph.append(
            f"[v{k}][{k + 2}:v]overlay={x}:{y}:format=rgb{en}[v{k + 1}]"
        )  # composite in RGB, as we do
    graph.append(f"[v{len(overlays)}]scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd"
                 "+full_chroma_int,format=yuv420p[out]")  # fmt: skip
    cmd += ["-filter_complex", ";".join(graph), "-map", "[out]", "-map", "1:a:0", "-frames:v", "80",
            "-c:v", "libx264", "-preset", "medium", "-crf", str(spec.output.crf), "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-c:a", "aac", "-b:a", "192k", "-ar", str(SR), "-movflags", "+faststart", "-f", "mp4",
            str(workdir / "ffmpeg.mp4")]  # fmt: skip
    return cmd


# -- the driver -----------------------------------------------------------------------------------


def _hwm_mb(pid: int) -> float:
    """The process's RSS high-water mark (VmHWM) in MB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def run_measured(cmd: list[str], env: dict) -> tuple[float, dict, str]:
    """Run ``cmd`` (a ``--child`` process); return (wall s, memory MB, stdout).

    Every 10 ms: each process's RSS high-water mark (``VmHWM``, monotonic, so the last reading
    before it exits is its peak), and the sum of the current RSS of the Python child and its
    ffmpeg (the concurrent peak). For the ffmpeg variant the Python wrapper is left out.
    """
    import psutil

    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wrapper_only = cmd[-2] == "ffmpeg"
    hwm: dict[int, float] = {}
    sampled = 0.0
    while proc.poll() is None:
        try:
            kids = [q for q in proc.children(recursive=True) if _comm(q.pid).startswith("ffmpeg")]  # exec'd
            procs = kids + ([] if wrapper_only else [proc])
            for q in procs:
                hwm[q.pid] = max(hwm.get(q.pid, 0.0), _hwm_mb(q.pid))
            sampled = max(sampled, sum(q.memory_info().rss for q in procs) / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[-2]} failed: {err.decode()[-2000:]}")
    py = 0.0 if wrapper_only else hwm.pop(proc.pid, 0.0)
    return (
        wall,
        {"rss_py": py, "rss_ffmpeg": max(hwm.values(), default=0.0), "sampled": sampled},
        out.decode(),
    )


def machine() -> str:
    from demo_render import machine as describe

    return describe(with_torch=False)  # this benchmark's memory figure must not include torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("NAME", "WORKDIR"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return

    from brandstudio import load_profile
    from brandstudio.audio.music import fit_music, load_audio

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        footage(work / "source.rgb")
        a = load_profile(PROFILE).spec.audio
        track = load_audio(PROFILE / "music" / "morning-roast.m4a", SR)
        bed = fit_music(track, SR, DURATION, loudness=a.loudness, true_peak=a.true_peak, bpm=84)
        bed.astype("<f4").tofile(work / "bed.f32")
        (work / "ffmpeg.json").write_text(json.dumps(ffmpeg_inputs(work)))
        warm_cache, cold_cache = work / "luts-warm", work / "luts-cold"
        env = {**os.environ, "BRANDSTUDIO_LUT_CACHE": str(warm_cache)}
        py = [sys.executable, str(Path(__file__).resolve()), "--child"]
        subprocess.run(
            [*py, "stream", str(work)], env=env, check=True, capture_output=True
        )  # fills the LUT cache

        rows: dict[str, list[dict]] = {
            "stream": [],
            "stream-cold": [],
            "whole": [],
            "stream-cv2": [],
            "ffmpeg": [],
        }
        for _ in range(args.repeat):
            for name in rows:
                e = env
                if name == "stream-cold":
                    import shutil

                    shutil.rmtree(cold_cache, ignore_errors=True)
                    e = {**env, "BRANDSTUDIO_LUT_CACHE": str(cold_cache)}
                kind = "stream" if name == "stream-cold" else name
                wall, mem, out = run_measured([*py, kind, str(work)], e)
                rec = json.loads(out.strip().splitlines()[-1])
                rec.update(mem, process_wall=wall)
                rows[name].append(rec)

        # same pictures? PSNR of brandstudio's output against ffmpeg's (different Lanczos/overlay maths)
        ours_f, ff_f = decode(work / "stream.mp4"), decode(work / "ffmpeg.mp4")
        n = min(len(ours_f), len(ff_f))
        quality = psnr(ours_f[:n], ff_f[:n]), psnr(blocks(ours_f[:n]), blocks(ff_f[:n]))

    ff_wall = statistics.median(r["wall"] for r in rows["ffmpeg"])
    labels = {
        "stream": "brandstudio, streamed (LUT table from the disk cache)",
        "stream-cold": "brandstudio, streamed, cold (bakes the 256³ LUT table)",
        "whole": "brandstudio, whole clip in memory (pre-streaming post stage)",
        "stream-cv2": "experiment: streamed, OpenCV Lanczos-4 upscale instead of Pillow's",
        "ffmpeg": "ffmpeg command line (lut3d, crop, scale lanczos, 4× overlay, libx264, aac)",
    }
    print(
        f"\n### Post stage, 81 frames 832×480 → 80 frames 1280×720 + encode ({date.today()}, {machine()})\n"
    )
    print(
        f"`python bench/post.py --repeat {args.repeat}`: median of {args.repeat} runs, variants alternated.\n"
    )
    print(
        "| variant | wall s (median) | vs ffmpeg | min–max s | CPU s (median) | effects s | waiting on ffmpeg s "
        "| peak RSS: python + ffmpeg MB | python before the stage MB | sampled peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, recs in rows.items():
        wall = statistics.median(r["wall"] for r in recs)
        cpu = statistics.median(r["cpu"] for r in recs)
        post = statistics.median(r.get("post_s", float("nan")) for r in recs)
        wait = statistics.median(r.get("encode_wait_s", float("nan")) for r in recs)
        py_mb = max(r.get("rss_py", 0.0) for r in recs)
        ff_mb = max(r["rss_ffmpeg"] for r in recs)
        samp = max(r["sampled"] for r in recs)
        base = max(r.get("rss_base", float("nan")) for r in recs)
        fmt = lambda v: "–" if v != v else f"{v:.2f}"  # noqa: E731
        print(
            f"| {labels[name]} | {wall:.2f} | {wall / ff_wall:.2f}× | {min(r['wall'] for r in recs):.2f}–"
            f"{max(r['wall'] for r in recs):.2f} | {cpu:.2f} | {fmt(post)} | {fmt(wait)} | "
            f"{py_mb:.0f} + {ff_mb:.0f} = {py_mb + ff_mb:.0f} | {'–' if base != base else f'{base:.0f}'} | {samp:.0f} |"
        )
    print(
        f"\nSame pictures? PSNR of brandstudio's MP4 against ffmpeg's: {quality[0]:.1f} dB per pixel, "
        f"{quality[1]:.1f} dB on 8×8 block means (the grain is resampled by two different Lanczos kernels)."
    )


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def blocks(frames: np.ndarray, k: int = 8) -> np.ndarray:
    t, h, w, c = frames.shape
    return frames[:, : h // k * k, : w // k * k].reshape(t, h // k, k, w // k, k, c).mean(axis=(2, 4))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse > 0 else float("inf")


if __name__ == "__main__":
    main()
