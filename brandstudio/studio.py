"""BrandStudio: brief in, finished on-brand clip out. This module states the stage order once.

::

    RenderRequest ─► prompt ─► safety ─► generation ─► post ─► music ─► encode ─► QC ─► RenderResult

Each step hands a plain value to the next; no stage reaches back into an earlier one.

Example:
    >>> from brandstudio import BrandStudio
    >>> studio = BrandStudio("brand_profiles/aurora-coffee")                   # doctest: +SKIP
    >>> clip = studio.render("product-hero", product="Night Roast", aspect="9:16")  # doctest: +SKIP
    >>> clip.path                                                                # doctest: +SKIP
    PosixPath('renders/aurora-coffee/product-hero-9x16-s1234-0a1b2c3d.mp4')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._toml import first_error
from .errors import BrandStudioError, PostError, RequestError
from .profile.loader import BrandProfile, load_profile
from .profile.schema import parse_aspect
from .prompts.compose import compose_negative, compose_prompt
from .prompts.templates import TemplateLibrary, shared_templates_dir
from .request import RenderRequest, RenderResult
from .safety import TextRules, check_texts

__all__ = ["BrandStudio"]


class _Timer:
    def __init__(self, on_stage: Callable[[str], None] | None = None) -> None:
        self.timings: dict[str, float] = {}
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 4)


class BrandStudio:
    """Renders clips for one brand profile.

    Args:
        profile: a profile directory (or an already loaded :class:`BrandProfile`).
        output_dir: where clips go when a request names no output path.
        generator: a :class:`~brandstudio.generation.base.Generator`; default: a
            ``WanGenerator`` for the profile's ``[model]``, created on the first render and
            kept loaded for the next ones.
        device: ``"auto"`` (CUDA when available), ``"cuda"`` or ``"cpu"``.
        cache: the scene cache for generated footage: ``None`` for the default location
            (``$BRANDSTUDIO_SCENE_CACHE`` or ``~/.cache/brandstudio/scenes``), a directory or
            fsspec URL, a :class:`~brandstudio.generation.cache.SceneCache`, or ``False`` for none.
    """

    def __init__(
        self,
        profile: str | Path | BrandProfile,
        *,
        output_dir: str | Path = "renders",
        generator=None,
        device: str = "auto",
        cache=None,
    ) -> None:
        self.profile = profile if isinstance(profile, BrandProfile) else load_profile(profile)
        self.output_dir = Path(output_dir)
        self.device = device
        self._generator = generator
        from .generation.cache import SceneCache

        if cache is False or isinstance(cache, SceneCache):
            self.cache = cache or None
        else:
            self.cache = SceneCache(None if cache is True else cache)
        self.templates = TemplateLibrary([self.profile.root / "templates", shared_templates_dir()])
        s = self.profile.spec.safety
        self.rules = TextRules(
            blocked_terms=s.blocked_terms,
            competitors=s.competitors,
            competitor_action=s.competitor_action,
            rules=s.rules,
        )

    def __repr__(self) -> str:
        return f"BrandStudio({self.profile.id!r}, fingerprint={self.profile.fingerprint[:12]})"

    @property
    def generator(self):
        """The loaded video generator (created on first use)."""
        if self._generator is None:
            from .generation.base import LoraAdapter
            from .generation.wan import WanGenerator

            m = self.profile.spec.model
            loras = [
                LoraAdapter(
                    name=lo.name,
                    path=self.profile.path(f"style.loras[{i}].file"),
                    weight_high=lo.weight_high,
                    weight_low=lo.weight_low,
                    base_model=lo.base_model,
                )
                for i, lo in enumerate(self.profile.spec.style.loras)
            ]
            self._generator = WanGenerator(
                m.id,
                loras=loras,
                revision=m.revision,
                device=self.device,
                dtype=m.dtype,
                boundary_ratio=m.boundary_ratio,
            )
        return self._generator

    # -- public API -------------------------------------------------------------------------

    def render(
        self,
        request: str | RenderRequest,
        /,
        *,
        aspect: str | None = None,
        seed: int | None = None,
        output: str | Path | None = None,
        duration: float | None = None,
        resolution: int | None = None,
        on_stage: Callable[[str], None] | None = None,
        **variables: Any,
    ) -> RenderResult:
        """Render one clip.

        ``request`` is a template name (then the keyword arguments fill the request) or a
        :class:`RenderRequest`. Returns a :class:`RenderResult`; the MP4 and its ``.srt``
        appear at their paths only when complete. ``on_stage``, if given, is called with each
        stage's name (``"prompt"``, ``"safety"``, ``"generation"``, ...) as it starts.
        """
        if isinstance(request, RenderRequest):
            req = request
        else:
            try:
                req = RenderRequest(
                    template=request,
                    variables=variables,
                    aspect=aspect,
                    seed=seed,
                    output=Path(output) if output else None,
                    duration=duration,
                    resolution=resolution,
                )
            except ValidationError as exc:
                name, msg, value = first_error(exc)
                plain = "pass plain str/int/float/bool values"
                raise RequestError(
                    f"invalid `{name}`: {msg}", profile=self.profile.id, field=name, value=value,
                    fix=plain if name.startswith("variables.") else "see help(BrandStudio.render) for accepted values",
                ) from None
        try:
            return self._render(req, on_stage=on_stage)
        except BrandStudioError as exc:
            exc.profile = exc.profile or self.profile.id
            raise

    def render_many(
        self,
        requests: Iterable[RenderRequest | dict],
        *,
        manifest: str | Path | None = None,
        quiet: bool = True,
    ) -> list[RenderResult]:
        """Render several clips with one loaded model, in order.

        Without ``manifest`` the first error is raised as is. With ``manifest`` (a JSON-lines
        path) the batch is resumable like a campaign (:mod:`brandstudio.campaign`): clips
        recorded done are not rendered again, one failing request does not stop the others
        (a :class:`~brandstudio.errors.CampaignError` listing them is raised at the end, with
        the run's summary as ``exc.summary``), and each clip gets an audit line in
        ``<manifest folder>/audit/<profile>.jsonl``. ``quiet=False`` shows progress.
        """
        if manifest is not None:
            from .campaign import render_many_resumable

            return render_many_resumable(self, requests, manifest=Path(manifest), quiet=quiet)
        out = []
        for r in requests:
            out.append(self.render(r if isinstance(r, RenderRequest) else RenderRequest(**r)))
        return out

    # -- the stage order --------------------------------------------------------------------

    def _render(self, req: RenderRequest, on_stage: Callable[[str], None] | None = None) -> RenderResult:
        spec = self.profile.spec
        pid = self.profile.id
        timer = _Timer(on_stage)

        # 1. request: fill defaults from the profile
        aspect = req.aspect or spec.output.aspects[0]
        if aspect not in spec.output.aspects:
            raise RequestError(
                f"aspect ratio {aspect!r} is not enabled for this profile",
                profile=pid,
                file="brand.toml",
                field="output.aspects",
                value=aspect,
                fix=f"use one of {list(spec.output.aspects)} or add it to output.aspects",
            )
        duration = req.duration or spec.output.duration
        short_side = req.resolution or spec.output.resolution
        fps = spec.output.fps

        # 2. prompt: template + brand style
        with timer.stage("prompt"):
            rendered = self.templates.get(req.template).render(req.variables)
            scene = self._scene(rendered.scene, req.template) if rendered.scene is not None else None
            triggers = [w for lo in spec.style.loras for w in lo.trigger_words]
            prompt = compose_prompt(
                scene.prompt if scene else rendered.prompt,
                style=spec.prompt.style,
                triggers=triggers,
                language=spec.brand.language,
            )
            negative = compose_negative(rendered.negative, spec.prompt.negative)
            cues = rendered.scaled_cues(duration)
            seed = req.seed if req.seed is not None else _derived_seed(req.template, rendered.variables)
            seed = scene.seed if scene and req.seed is None else seed
            label = self._label_text()

        # 3. safety: rules on the final prompt and every caption; glyph coverage of the font
        with timer.stage("safety"):
            verdicts = check_texts(
                self.rules,
                [("prompt", prompt)] + [(f"caption[{i}]", c[2]) for i, c in enumerate(cues)],
                profile=pid,
            )
            self._check_glyphs([c[2] for c in cues] + ([label] if label else []))

        # 4. generation, through the scene cache
        gen_spec = self._generation_spec(prompt, negative, seed, aspect, duration)
        with timer.stage("generation"):
            frames, cache_status, cache_key = self._generate(gen_spec)

        # 5. post: grade, reframe, upscale, retime, captions, logo, label
        from .post.reframe import delivery_size

        width, height = delivery_size(aspect, short_side)
        with timer.stage("post"):
            frames = self._post(frames, aspect, width, height, duration, spec.model.fps, fps, cues, label)

        # 6. music bed fitted to the clip
        audio = None
        if spec.audio:
            with timer.stage("music"):
                audio = self._music(len(frames) / fps, seed)

        # 7. encode: MP4 and sidecars, atomically
        out = req.output or self._default_output(req, aspect, seed, duration, short_side)
        with timer.stage("encode"):
            self._encode(out, frames, fps, audio, cues, prompt, seed, label)

        # 8. QC report: palette ΔE, flicker, loudness, safety against [qc]; .qc.json + .qc.html
        with timer.stage("qc"):
            qc = self._qc(out, frames, fps, audio, seed, verdicts, dict(timer.timings))

        result = RenderResult(
            path=out,
            subtitles=out.with_suffix(".srt") if cues else None,
            duration=round(len(frames) / fps, 4),
            fps=fps,
            width=width,
            height=height,
            aspect=aspect,
            template=req.template,
            variables=dict(rendered.variables),
            prompt=prompt,
            negative_prompt=negative,
            seed=seed,
            model_id=self.generator.model_id,
            profile_id=pid,
            profile_fingerprint=self.profile.fingerprint,
            generation=dataclasses.asdict(gen_spec),
            timings=timer.timings,
            safety=tuple(v.as_dict() for v in verdicts),
            label=label,
            cache=cache_status,
            cache_key=cache_key,
            qc=qc.summary(),
            qc_report=out.with_suffix(".qc.html"),
        )
        from .encode import write_text_atomic

        write_text_atomic(out.with_suffix(".json"), result.to_json())
        return result

    # -- stage helpers ----------------------------------------------------------------------

    def _scene(self, scene_id: str, template: str):
        """The profile's ``[[scenes]]`` entry named by a scene template."""
        from .errors import TemplateError

        for scene in self.profile.spec.scenes:
            if scene.id == scene_id:
                return scene
        ids = [s.id for s in self.profile.spec.scenes]
        raise TemplateError(
            f"template {template!r} names the scene {scene_id!r}, which this profile does not have",
            profile=self.profile.id,
            file="brand.toml",
            field="scenes",
            value=scene_id,
            fix=f"use one of the profile's scenes: {', '.join(ids) or '(none: add [[scenes]] to brand.toml)'}",
        )

    def _generate(self, gen_spec):
        """(frames, "hit" | "miss" | "off", cache key or None): the scene from the cache or the model."""
        identity = getattr(self.generator, "cache_identity", None)
        if self.cache is None or identity is None:
            return self.generator.generate(gen_spec), "off", None
        from .generation.cache import scene_key

        fields = {**identity(), **dataclasses.asdict(gen_spec), "preset": self.profile.spec.model.preset}
        key = scene_key(fields)
        frames, hit = self.cache.get_or_create(key, lambda: self.generator.generate(gen_spec), fields=fields)
        return frames, "hit" if hit else "miss", key

    def prewarm(self, *, aspect: str | None = None, duration: float | None = None) -> list[dict]:
        """Render the profile's ``[[scenes]]`` into the scene cache (generation only: no post, no file).

        Each scene is generated exactly as a scene template would ask for it (its prompt with
        the brand style and LoRA triggers, the brand's negative prompt, its seed), at its own
        ``aspect`` (or ``aspect``) and the profile's duration (or ``duration``). Returns one
        ``{"scene", "cache", "key", "seconds"}`` per scene; ``cache`` is ``"hit"`` when it was there.
        """
        spec = self.profile.spec
        triggers = [w for lo in spec.style.loras for w in lo.trigger_words]
        negative = compose_negative("", spec.prompt.negative)
        report = []
        for scene in spec.scenes:
            t0 = time.perf_counter()
            prompt = compose_prompt(
                scene.prompt, style=spec.prompt.style, triggers=triggers, language=spec.brand.language
            )
            check_texts(self.rules, [("prompt", prompt)], profile=self.profile.id)
            gen_spec = self._generation_spec(
                prompt, negative, scene.seed, aspect or scene.aspect, duration or spec.output.duration
            )
            _, status, key = self._generate(gen_spec)
            report.append(
                {"scene": scene.id, "cache": status, "key": key, "seconds": round(time.perf_counter() - t0, 3)}
            )
        return report

    def _label_text(self) -> str | None:
        from .post.overlay import label_text

        spec = self.profile.spec
        default = label_text(spec.brand.region, spec.brand.language)
        if default is None:
            return None
        return spec.label.text or default

    def _check_glyphs(self, texts: list[str]) -> None:
        from .post.captions import missing_glyphs

        font = self.profile.path("captions.font")
        missing = sorted(set(missing_glyphs(font, "".join(texts))))
        if missing:
            raise PostError(
                f"the caption font has no glyph for {''.join(missing)!r} (it would render as boxes)",
                profile=self.profile.id,
                file=self.profile.assets["captions.font"].rel,
                field="captions.font",
                value="".join(missing),
                fix="use a font that covers these characters, or change the caption text",
            )

    def _generation_spec(self, prompt: str, negative: str, seed: int, aspect: str, duration: float):
        from .generation.base import GenerationSpec

        m = self.profile.spec.model
        w, h = parse_aspect(aspect)
        width, height = (m.width, m.height) if w >= h else (m.height, m.width)
        needed = max(1, math.ceil(duration * m.fps - 1e-9))
        num_frames = 4 * math.ceil((needed - 1) / 4) + 1
        if num_frames > m.max_frames:
            raise RequestError(
                f"a {duration:g} s clip needs {num_frames} frames at {m.fps} fps, more than the "
                f"{m.max_frames} the model makes in one shot",
                profile=self.profile.id,
                file="brand.toml",
                field="output.duration",
                value=duration,
                fix=f"ask for at most {(m.max_frames - 1) / m.fps:g} s, or raise model.max_frames",
            )
        return GenerationSpec(
            prompt=prompt,
            negative_prompt=negative,
            seed=seed,
            width=width,
            height=height,
            num_frames=num_frames,
            steps=m.steps,
            guidance_high=m.guidance_high,
            guidance_low=m.guidance_low,
            flow_shift=m.flow_shift,
        )

    def _post(self, frames, aspect, width, height, duration, fps_in, fps_out, cues, label):
        import numpy as np

        from .post.captions import Captions, CaptionStyle, Cue
        from .post.grade import Grade, read_lut
        from .post.overlay import Label, Logo, load_logo
        from .post.reframe import Reframe
        from .post.upscale import Upscale

        spec = self.profile.spec
        safe = spec.captions.safe_area[aspect]
        if spec.colour.lut:
            lut = read_lut(self.profile.path("colour.lut"))
            frames = Grade(lut, strength=spec.colour.strength, method=spec.colour.interpolation).apply(frames)
        frames = Reframe(aspect).apply(frames)
        frames = Upscale(width, height, method="lanczos").apply(frames)
        # retime from the model's frame rate to the delivery rate, trimmed to the duration
        n_out = max(1, round(duration * fps_out))
        idx = np.minimum((np.arange(n_out) * fps_in) // fps_out, len(frames) - 1)
        frames = np.ascontiguousarray(frames[idx])
        c = spec.captions
        font = self.profile.path("captions.font")
        if cues:
            style = CaptionStyle.from_section(c, font, aspect)
            frames = Captions(tuple(Cue(*cue) for cue in cues), style, fps_out).apply(frames)
        if spec.logo:
            lg = spec.logo
            frames = Logo(
                load_logo(self.profile.path("logo.file")),
                position=lg.position,
                scale=lg.scale,
                opacity=lg.opacity,
                margins=safe,
            ).apply(frames)
        if label:
            frames = Label(
                label, font, position=spec.label.position, size=spec.label.size, margins=safe
            ).apply(frames)
        return frames

    def _music(self, duration: float, seed: int):
        from .post.music import fit_music, load_audio

        a = self.profile.spec.audio
        i = seed % len(a.tracks)
        track = load_audio(self.profile.path(f"audio.tracks[{i}]"), a.sample_rate)
        return fit_music(
            track,
            a.sample_rate,
            duration,
            loudness=a.loudness,
            true_peak=a.true_peak,
            fade_in=a.fade_in,
            fade_out=a.fade_out,
        )

    def _default_output(
        self, req: RenderRequest, aspect: str, seed: int, duration: float, short: int
    ) -> Path:
        key = json.dumps(
            [self.profile.fingerprint, req.template, dict(req.variables), aspect, seed, duration, short],
            sort_keys=True,
            default=str,
            ensure_ascii=False,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        return (
            self.output_dir
            / self.profile.id
            / f"{req.template}-{aspect.replace(':', 'x')}-s{seed}-{digest}.mp4"
        )

    def _encode(self, out: Path, frames, fps, audio, cues, prompt, seed, label) -> None:
        from .encode import write_mp4
        from .post.captions import Cue, write_srt

        spec = self.profile.spec
        meta = {
            "title": f"{spec.brand.name}",
            "comment": json.dumps(
                {
                    "ai_generated": True,
                    "label": label,
                    "model": self.generator.model_id,
                    "seed": seed,
                    "profile": self.profile.id,
                    "profile_fingerprint": self.profile.fingerprint,
                },
                ensure_ascii=False,
            ),
            "description": prompt,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(
            frames,
            fps,
            out,
            audio=audio,
            sample_rate=spec.audio.sample_rate if spec.audio else 48000,
            crf=spec.output.crf,
            audio_bitrate=spec.output.audio_bitrate,
            metadata=meta,
        )
        if cues:
            try:
                write_srt([Cue(*c) for c in cues], out.with_suffix(".srt"))
            except BaseException:
                out.unlink(missing_ok=True)
                raise

    def _qc(self, out: Path, frames, fps, audio, seed, verdicts, timings):
        """Measure the delivered frames and music bed; write ``<clip>.qc.json`` and ``.qc.html``."""
        from .encode import write_text_atomic
        from .qc import run_qc

        a = self.profile.spec.audio
        report = run_qc(
            frames,
            self.profile,
            fps=fps,
            audio=audio,
            sample_rate=a.sample_rate if a else None,
            clip=out,
            model=self.generator.model_id,
            seed=seed,
            timings=timings,
            safety=[v.as_dict() for v in verdicts],
        )
        write_text_atomic(out.with_suffix(".qc.json"), report.to_json())
        write_text_atomic(out.with_suffix(".qc.html"), report.to_html())
        return report


def _derived_seed(template: str, variables: dict) -> int:
    key = json.dumps([template, variables], sort_keys=True, default=str, ensure_ascii=False)
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % (2**31)
