"""BrandStudio: brief in, finished on-brand clip out. This module states the stage order once.

::

    RenderRequest ─► prompt ─► safety ─► generation ─► post (a plan) ─► frame safety ─► label ─► music
                  ─► post + encode (streamed) ─► provenance (C2PA) ─► QC ─► RenderResult

Each step hands a plain value to the next; no stage reaches back into an earlier one. The post
stage is planned as a chain of effects (:mod:`brandstudio.post.stream`) and run while encoding:
chunks of frames flow from the generated clip through the effects into ffmpeg, so the
delivered clip is never held in memory whole.

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

from .errors import BrandStudioError, PostError, RequestError
from .files import first_error
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
        overrides: profile settings to replace, by dotted name (``{"output.reframe": "face",
            "colour.match": "reinhard"}``); validated like brand.toml and part of the fingerprint.
    """

    def __init__(
        self,
        profile: str | Path | BrandProfile,
        *,
        output_dir: str | Path = "renders",
        generator=None,
        device: str = "auto",
        cache=None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.profile = profile if isinstance(profile, BrandProfile) else load_profile(profile)
        if overrides:  # e.g. {"output.reframe": "face"}: validated, part of the fingerprint
            self.profile = self.profile.with_overrides(overrides)
        self.output_dir = Path(output_dir)
        self.device = device
        self._generator = generator
        self._speed: tuple[str | None, str | None] = (None, None)  # this render's preset / memory overrides
        self._grade_kept = None  # the profile's Grade, kept across renders (with its baked table)
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
                memory=m.memory,
                vae_tiling=m.vae_tiling,
                quantization=m.quantization,
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
        music_mood: str | None = None,
        voiceover: str | Path | None = None,
        preset: str | None = None,
        memory: str | None = None,
        on_stage: Callable[[str], None] | None = None,
        **variables: Any,
    ) -> RenderResult:
        """Render one clip.

        ``request`` is a template name (then the keyword arguments fill the request) or a
        :class:`RenderRequest`. Returns a :class:`RenderResult`; the MP4 and its ``.srt``
        appear at their paths only when complete. ``on_stage``, if given, is called with each
        stage's name (``"prompt"``, ``"safety"``, ``"generation"``, ...) as it starts.
        ``music_mood`` picks the music by mood (one of the profile's ``[audio]`` track moods;
        default: the template's); ``voiceover`` is an audio file mixed over the music, which
        ducks under it (``[audio] duck_db``). ``preset`` (``"quality"``, ``"balanced"``, ``"fast"``)
        and ``memory`` (``"auto"``, ``"resident"``, ``"swap"``, ``"group-offload"``) override the
        profile's ``[model]`` for this clip (:mod:`brandstudio.generation.presets`).
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
                    music_mood=music_mood,
                    voiceover=Path(voiceover) if voiceover else None,
                    preset=preset,
                    memory=memory,
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
        self._speed = (req.preset, req.memory)  # speed preset / memory plan overrides (generation.presets)
        from .provenance import resolve_signer

        signer = resolve_signer(self.profile)  # C2PA signer; fails now (nothing done) if required and missing

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
            seed = req.seed if req.seed is not None else _derived_seed(req.template, prompt, negative, rendered.shots)
            seed = scene.seed if scene and req.seed is None else seed
            shots = self._plan_shots(rendered, req, seed) if rendered.shots else None  # brandstudio.prompts.shots
            if shots is not None:  # a multi-shot clip lasts as long as its cut; cues run across it
                duration, cues = shots.duration, rendered.scaled_cues(shots.duration)
                prompt = " | ".join(dict.fromkeys(s.prompt for s in shots.shots))  # each distinct one, in order
                negative = " | ".join(dict.fromkeys(s.negative for s in shots.shots))
            label = self._label_text()
            music_mood = req.music_mood or rendered.music_mood
            if music_mood is not None or (spec.audio and spec.audio.select == "mood"):
                from .audio.tracks import check_mood

                check_mood(spec.audio, music_mood, profile_id=pid)  # an unknown mood fails before generation
            voice = (req.voiceover, self._voiceover(req.voiceover, duration)) if req.voiceover else None

        # 3. safety: rules on the final prompt and every caption; glyph coverage of the font
        with timer.stage("safety"):
            verdicts = check_texts(
                self.rules,
                ([("prompt", prompt)] if shots is None else [(f"shots[{s.index}].prompt", s.prompt) for s in shots.shots])
                + [(f"caption[{i}]", c[2]) for i, c in enumerate(cues)],
                profile=pid,
            )
            self._check_glyphs([c[2] for c in cues] + ([label] if label else []))

        # 4. generation, through the scene cache; a multi-shot clip: each shot, cut together at the model fps
        warnings: list[str] = []
        gen_spec = self._generation_spec(prompt, negative, seed, aspect, duration) if shots is None else None
        if spec.colour.lut and gen_spec is not None:  # the grade's table is read or baked meanwhile
            self._grade().bake_ahead((gen_spec.num_frames, gen_spec.height, gen_spec.width, 3))
        with timer.stage("generation"):
            if shots is None:
                frames, cache_status, cache_key = self._generate(gen_spec)
            else:
                frames, generation, cache_status, warnings = self._generate_shots(shots, req.template, aspect)
                cache_key = None

        # 5. post, as a plan: grade, reframe, upscale, retime, captions, logo (a PostChain,
        #    brandstudio.post.stream); nothing is computed here: 7 makes the frames chunk by chunk
        from .post.reframe import delivery_size

        width, height = delivery_size(aspect, short_side)
        starts = tuple(r["start"] for r in generation["shots"]) if shots is not None else ()
        chain = self._post(frames, aspect, width, height, duration, spec.model.fps, fps, cues, starts)
        n_out = chain.n_frames(len(frames))

        # 5a. frame safety: NSFW detector on the sampled delivered frames (made ahead from the chain),
        #     [safety] nsfw = block (stops here) / blur (a pixelate effect joins the chain) / warn
        from .safety.frames import FrameSafety

        with timer.stage("frame_safety"):
            blur, seen = FrameSafety.from_section(spec.safety).check(chain.frames_at(frames), fps, profile=pid)
            verdicts = [*verdicts, *seen]

        # 5b. AI label: the region's visible notice (cn: the opening), the last effect, so nothing blurs or covers it
        from .labels import RegionLabel, label_plan, machine_marks, produce_id

        plan = label_plan(spec)
        safe = spec.captions.safe_area[aspect]
        chain = chain.with_output_effects(blur, RegionLabel(plan, self.profile.path("captions.font"), safe, fps))

        # 6. music bed fitted to the clip: a track by mood / seed / rotation, cut between beats; a voice-over ducks it
        audio = music = None
        if spec.audio or voice:
            with timer.stage("music"):
                audio, music = self._music(n_out / fps, seed, music_mood, voice)
                warnings += self._loudness_warning(audio)

        # 7. post + encode, streamed: chunks of frames go through the chain into ffmpeg while observers
        #    (the QC sampler) see each one; MP4 with the region's machine-readable AI marks, and sidecars,
        #    atomically; with a C2PA signer the MP4 is staged beside `out` until 7a signs it into place
        out = req.output or self._default_output(req, aspect, seed, duration, short_side, music)
        content_id = produce_id(pid, self.profile.fingerprint, prompt, seed, aspect, width, height, duration)
        marks = machine_marks(spec, plan, content_id=content_id)
        from .provenance import sign_render, staging_path
        from .qc import QCCollector

        qc_frames = QCCollector(n_out)  # what QC measures, kept as the frames stream past
        staged = staging_path(out) if signer else None
        self._encode(out, chain, frames, fps, audio, cues, prompt, seed, label, marks, staged,
                     size=(width, height), observers=[qc_frames], timer=timer, music=music)  # fmt: skip

        # 7a. provenance: C2PA content credentials, the very last write to the MP4 (`out` appears signed)
        with timer.stage("provenance"):
            provenance = sign_render(
                staged, out, signer, profile=self.profile, model=self.generator.model_id, seed=seed,
                template=req.template, aspect=aspect, label=label, sidecars=(out.with_suffix(".srt"), out.with_suffix(".vtt")) if cues else (),
            )  # fmt: skip

        # 8. QC report: palette ΔE, flicker, loudness, safety against [qc]; .qc.json + .qc.html
        with timer.stage("qc"):
            qc = self._qc(out, qc_frames, fps, audio, seed, verdicts, dict(timer.timings))

        result = RenderResult(
            path=out,
            subtitles=out.with_suffix(".srt") if cues else None,
            duration=round(n_out / fps, 4),
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
            generation={**(dataclasses.asdict(gen_spec) if shots is None else generation), **self._speed_record(cache_status)},
            warnings=tuple(warnings),
            timings=timer.timings,
            safety=tuple(v.as_dict() for v in verdicts),
            label=label,
            provenance=provenance,
            cache=cache_status,
            cache_key=cache_key,
            qc=qc.summary(),
            qc_report=out.with_suffix(".qc.html"),
            music=music,
        )
        from .files import write_text_atomic

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

    def _generate(self, gen_spec, image=None):
        """(frames, "hit" | "miss" | "off", cache key or None): the scene from the cache or the model.

        ``image``: a start frame (multi-shot continuity); its pixels' SHA-256 joins the cache key.
        """
        identity = getattr(self.generator, "cache_identity", None)
        make = (lambda: self._configured().generate(gen_spec)) if image is None else (
            lambda: self._configured().generate(gen_spec, image=image))  # fmt: skip
        if self.cache is None or identity is None:
            return make(), "off", None
        from .generation.cache import scene_key

        fields = {**identity(), **dataclasses.asdict(gen_spec), "preset": self._preset_settings().key_fields()}
        if image is not None:
            from .generation.conditioning import image_digest

            fields["condition_image"] = image_digest(image)
        key = scene_key(fields)
        frames, hit = self.cache.get_or_create(key, make, fields=fields)
        return frames, "hit" if hit else "miss", key

    def _plan_shots(self, rendered, req: RenderRequest, seed: int):
        """A multi-shot template's :class:`~brandstudio.prompts.shots.ShotPlan` (prompts, seeds, frames)."""
        from .prompts.shots import plan_shots

        spec = self.profile.spec
        triggers = [w for lo in spec.style.loras for w in lo.trigger_words]
        template = self.templates.get(req.template)
        return plan_shots(
            rendered.shots, template=req.template, path=template.path, nominal=rendered.duration,
            fps=spec.model.fps, clip_seed=seed, seed_given=req.seed is not None, duration=req.duration,
            compose=lambda body: compose_prompt(body, style=spec.prompt.style, triggers=triggers,
                                                language=spec.brand.language),
            negative=lambda shot_neg: compose_negative(", ".join(x for x in (rendered.negative, shot_neg) if x),
                                                       spec.prompt.negative),
            scene=lambda scene_id: self._scene(scene_id, req.template),
        )  # fmt: skip

    def _generate_shots(self, plan, template: str, aspect: str):
        """Generate a :class:`~brandstudio.prompts.shots.ShotPlan`'s shots and cut them together.

        Returns ``(frames at the model fps, RenderResult.generation, cache status, warnings)``.
        """
        from .post.cut import cut_together
        from .prompts.shots import render_shots, summarize

        m, out = self.profile.spec.model, self.profile.spec.output
        clips, records, warnings = render_shots(
            plan, template=template, path=self.templates.get(template).path,
            image_input=getattr(self.generator, "image_input", "none"), model_id=self.generator.model_id,
            max_frames=m.max_frames, scene_frames=max(1, math.ceil(out.duration * m.fps - 1e-9)),
            make_spec=lambda s, n: self._generation_spec(s.prompt, s.negative, s.seed, aspect, n / m.fps),
            generate=self._generate,
        )  # fmt: skip
        frames = cut_together(clips, plan.crossfades)
        generation = {"fps": plan.fps, "frames": plan.frames, "duration": plan.duration, "shots": records}
        return frames, generation, summarize(records), warnings

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
        self._speed = (None, None)  # the profile's preset and memory plan
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
        speed = self._preset_settings()  # steps, guidance, shift of the speed preset
        w, h = parse_aspect(self.profile.spec.output.source_aspect or aspect)  # one generation, all aspects
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
            steps=speed.steps,
            guidance_high=speed.guidance_high,
            guidance_low=speed.guidance_low,
            flow_shift=speed.flow_shift,
        )

    def _preset_settings(self):
        """The speed preset of this render (the request's, else ``[model] preset``), resolved for
        the loaded model family: :func:`brandstudio.generation.presets.resolve_preset`."""
        from .generation.presets import resolve_preset

        fast = self.profile.assets.get("model.fast.lora")
        try:
            return resolve_preset(
                self._speed[0], getattr(self.generator, "model_family", "unknown"), self.profile.spec.model,
                fast_lora_path=fast.path if fast else None, fast_lora_sha256=fast.sha256 if fast else None,
            )  # fmt: skip
        except BrandStudioError as exc:
            exc.profile = self.profile.id
            raise

    def _configured(self):
        """The generator, switched to this render's preset and memory plan (when it can be)."""
        configure = getattr(self.generator, "configure", None)
        if configure is not None:
            configure(self._preset_settings(), memory=self._speed[1] or self.profile.spec.model.memory)
        return self.generator

    def _speed_record(self, status: str) -> dict:
        """For ``RenderResult.generation``: the effective preset, and what the generator ran with
        (memory plan, attention kernel, ...; None on a cache hit, when nothing ran)."""
        record = self._preset_settings().record()
        runtime = getattr(self.generator, "runtime", None)
        ran = runtime.record() if runtime is not None and status != "hit" else {}
        record["memory_plan"] = ran.get("memory")
        record["attention"] = ran.get("attention")
        record["runtime"] = ran or None
        return record

    def _grade(self):
        """The :class:`~brandstudio.post.grade.Grade` of the profile's LUT, kept across renders so
        its 48 MiB baked table is read (or baked) once per studio, not per clip; made anew only
        when the LUT file changed (``read_lut`` then parses it again)."""
        from .post.grade import Grade, read_lut

        lut = read_lut(self.profile.path("colour.lut"))
        if self._grade_kept is None or self._grade_kept.lut is not lut:
            c = self.profile.spec.colour
            self._grade_kept = Grade(lut, strength=c.strength, method=c.interpolation, device=self.device)
        return self._grade_kept

    def _post(self, frames, aspect, width, height, duration, fps_in, fps_out, cues, shot_starts=()):
        """The post stage's effects, in order, as a :class:`~brandstudio.post.stream.PostChain`
        for the generated ``frames`` (which it only reads for their count, the colour-match reference
        and the reframe's subject windows): source effects at the model's rate, the retime, then the
        effects on delivered frames. ``shot_starts``: the first frame of each shot of a multi-shot
        clip, so that a subject-aware reframe picks one window per shot."""
        from .post.captions import Captions, CaptionStyle, Cue
        from .post.overlay import Logo, load_logo
        from .post.reframe import Reframe
        from .post.stream import PostChain
        from .post.upscale import Upscale

        spec = self.profile.spec
        safe = spec.captions.safe_area[aspect]
        source = []
        if spec.colour.match != "off":  # drifting colour pulled back to the still or frame 0 (post.match)
            from .post.match import ColourMatch, load_reference

            still = spec.colour.reference
            ref = load_reference(self.profile.path("colour.reference")) if still else frames[0]
            source.append(ColourMatch(spec.colour.match, ref, spec.colour.match_strength))
        # the reframe crops before the grade (a per-pixel map, so the order changes no pixel):
        # a 9:16 delivery from a landscape generation grades a third of the pixels
        reframe = Reframe(aspect, mode=spec.output.reframe, safe_area=safe, shots=tuple(shot_starts))
        source.append(reframe.planned(frames))
        if spec.colour.lut:
            source.append(self._grade())
        up = spec.upscale
        weights = self.profile.path("upscale.weights") if up.method == "realesrgan" else None
        source.append(
            Upscale(width, height, up.method, weights, tile=up.tile, tile_pad=up.tile_pad, device=self.device)
        )
        # retime from the model's frame rate to the delivery rate, trimmed to the duration
        n_out = max(1, round(duration * fps_out))
        frame_map = PostChain.retime_map(len(frames), fps_in, fps_out, n_out)
        delivered = []
        c = spec.captions
        font = self.profile.path("captions.font")
        if cues:
            style = CaptionStyle.from_section(c, font, aspect)
            delivered.append(Captions(tuple(Cue(*cue) for cue in cues), style, fps_out))
        if spec.logo:
            lg = spec.logo
            delivered.append(
                Logo(
                    load_logo(self.profile.path("logo.file")),
                    position=lg.position,
                    scale=lg.scale,
                    opacity=lg.opacity,
                    margins=safe,
                )
            )
        # the AI label is added after the frame safety check (brandstudio.labels)
        return PostChain(tuple(source), frame_map, tuple(delivered))

    def _music(self, duration: float, seed: int, mood: str | None = None, voiceover=None):
        """``(audio, info)``: the soundtrack for a clip of ``duration`` s and what went into it.

        The track is chosen by :func:`brandstudio.audio.tracks.select_track` (rotation state
        under ``<output_dir>/.brandstudio/music-rotation``) and fitted by
        :func:`~brandstudio.audio.music.fit_music`; a ``voiceover`` (``(path, samples)`` from
        :meth:`_voiceover`) is mixed over it with the music ducked
        (:func:`~brandstudio.audio.voiceover.mix_voiceover`). Without ``[audio]`` the voice-over
        alone is the soundtrack, at -14 LUFS / -1 dBTP.
        """
        from .audio.music import fit_music, load_audio, normalise

        a = self.profile.spec.audio
        info: dict[str, Any] = {}
        bed = None
        sr = a.sample_rate if a else 48000
        if a is not None:
            from .audio.tracks import select_track

            choice = select_track(
                a, seed=seed, mood=mood, state_dir=self.output_dir / ".brandstudio" / "music-rotation",
                profile_id=self.profile.id,
            )  # fmt: skip
            info.update(choice.as_dict())
            track = load_audio(self.profile.path(f"audio.tracks[{choice.index}]"), sr)
            bed = fit_music(
                track,
                sr,
                duration,
                loudness=a.loudness,
                true_peak=a.true_peak,
                fade_in=a.fade_in,
                fade_out=a.fade_out,
                bpm=choice.track.bpm,
            )
        else:
            from .audio.tracks import check_mood

            check_mood(None, mood, profile_id=self.profile.id)  # a mood without [audio]: an error
        if voiceover is None:
            return bed, info
        path, voice = voiceover
        voice = voice[: round(duration * sr)]
        info["voiceover"] = str(path)
        if bed is None:
            return normalise(voice, sr, loudness=-14.0, true_peak=-1.0), info
        from .audio.voiceover import mix_voiceover

        mix = mix_voiceover(
            bed, voice, sr, duck_db=a.duck_db, attack=a.duck_attack, release=a.duck_release,
            loudness=a.loudness, true_peak=a.true_peak,
        )  # fmt: skip
        info["duck_db"] = a.duck_db
        return mix.audio, info

    def _loudness_warning(self, audio) -> list[str]:
        """A warning when the soundtrack misses the profile's loudness target by more than the QC
        tolerance (a true-peak ceiling too low for the target leaves the limiter no room)."""
        from .audio.music import MIN_LOUDNESS_SECONDS, integrated_loudness

        a, tol = self.profile.spec.audio, self.profile.spec.qc.loudness_tolerance
        sr, target = (a.sample_rate, a.loudness) if a else (48000, -14.0)
        if audio is None or len(audio) <= MIN_LOUDNESS_SECONDS * sr:
            return []
        got = integrated_loudness(audio, sr)
        if abs(got - target) <= tol:
            return []
        ceiling = a.true_peak if a else -1.0
        return [
            f"the soundtrack measures {got:.1f} LUFS, not the profile's {target:g} LUFS "
            f"(true-peak ceiling {ceiling:g} dBTP): raise audio.true_peak or lower audio.loudness"
        ]

    def _voiceover(self, path: Path, duration: float):
        """Decode a voice-over at the profile's sample rate (checked before anything is generated);
        speech past the clip's end is an error, trailing silence is dropped later."""
        import numpy as np

        from .errors import AssetError
        from .audio.music import load_audio
        from .audio.voiceover import voice_activity

        sr = self.profile.spec.audio.sample_rate if self.profile.spec.audio else 48000
        path = Path(path)
        bad = dict(profile=self.profile.id, field="voiceover", value=str(path))
        if not path.is_file():
            raise RequestError(f"the voice-over file {path} does not exist", **bad,
                               fix="pass the path of an audio file (WAV, FLAC, MP3, M4A, ...)")  # fmt: skip
        try:
            voice = load_audio(path, sr)
        except AssetError as exc:
            raise RequestError(f"could not read the voice-over: {exc.message}", **bad,
                               fix="export the voice-over again as WAV, FLAC, MP3 or M4A") from None  # fmt: skip
        active = np.flatnonzero(voice_activity(voice, sr, hold=0.0))
        if active.size == 0:
            raise RequestError(f"the voice-over {path.name} is silent", **bad, fix="pass a recording with speech")
        speech_end = (active[-1] + 1) / sr
        if speech_end > duration + 0.05:
            raise RequestError(
                f"the voice-over speaks for {speech_end:.2f} s, longer than the {duration:g} s clip", **bad,
                fix=f"ask for a longer clip (duration={np.ceil(speech_end * 4) / 4:g}) or trim the voice-over",
            )  # fmt: skip
        return voice

    def _default_output(
        self, req: RenderRequest, aspect: str, seed: int, duration: float, short: int, music: dict | None = None
    ) -> Path:
        parts = [self.profile.fingerprint, req.template, dict(req.variables), aspect, seed, duration, short]
        if req.music_mood or req.voiceover or (music or {}).get("select") == "rotate":
            # another bed or voice is another clip (names of renders without them stay as they were)
            vo = hashlib.sha256(Path(req.voiceover).read_bytes()).hexdigest() if req.voiceover else None
            parts.append({"mood": req.music_mood, "voiceover": vo, "track": (music or {}).get("track")})
        key = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        return (
            self.output_dir
            / self.profile.id
            / f"{req.template}-{aspect.replace(':', 'x')}-s{seed}-{digest}.mp4"
        )

    def _encode(
        self, out: Path, chain, source, fps, audio, cues, prompt, seed, label, marks=({}, {}), target=None,
        *, size: tuple[int, int], observers=(), timer: _Timer | None = None, music: dict | None = None,
    ) -> None:  # fmt: skip
        """Stream ``source`` through ``chain`` into the MP4 (to ``target`` when given: the staging file
        of a clip to be signed), then write the .srt.

        The effects run in a producer thread while ffmpeg encodes the previous chunks
        (:func:`brandstudio.post.stream.run_stream`); ``observers`` see every chunk first. The two
        overlap, so the timings are: ``post`` (seconds making frames), ``encode`` (seconds waiting
        for ffmpeg: blocked pipe writes and finishing the file) and ``post+encode`` (wall time).
        """
        from .encode import Mp4Writer
        from .post.captions import Cue, write_srt, write_vtt
        from .post.stream import run_stream

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
                    **({"music": music} if music else {}),
                    **marks[0],  # brandstudio.labels.machine_marks: digital source type, region, content id
                },
                ensure_ascii=False,
            ),
            "description": prompt,
            **marks[1],  # extra tags, e.g. GB 45438's AIGC for region cn
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        timer = timer or _Timer()
        t0 = time.perf_counter()
        if timer.on_stage is not None:
            timer.on_stage("post")
        n_frames = chain.n_frames(len(source))
        width, height = size
        with Mp4Writer(
            target or out, width, height, fps, n_frames=n_frames, audio=audio,
            sample_rate=spec.audio.sample_rate if spec.audio else 48000, crf=spec.output.crf,
            audio_bitrate=spec.output.audio_bitrate, metadata=meta,
        ) as mp4:  # fmt: skip
            stats = run_stream(chain, source, mp4, observers=observers)
            if timer.on_stage is not None:
                timer.on_stage("encode")
        timer.timings["post"] = round(stats.post_seconds, 4)
        timer.timings["encode"] = round(mp4.wait_seconds, 4)
        timer.timings["post+encode"] = round(time.perf_counter() - t0, 4)
        if cues:
            try:
                write_srt([Cue(*c) for c in cues], out.with_suffix(".srt"))
                write_vtt([Cue(*c) for c in cues], out.with_suffix(".vtt"))
            except BaseException:
                (target or out).unlink(missing_ok=True)
                out.with_suffix(".srt").unlink(missing_ok=True)
                raise

    def _qc(self, out: Path, frames, fps, audio, seed, verdicts, timings):
        """Measure the delivered frames and music bed; write ``<clip>.qc.json`` and ``.qc.html``."""
        from .files import write_text_atomic
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


def _derived_seed(template: str, prompt: str, negative: str, shots=()) -> int:
    """The seed a request without one gets: from what the footage is made of (the template and
    its final prompts), not from caption-only variables, so a new tagline reuses the footage
    (and its scene-cache entry) instead of generating a different one."""
    shot_prompts = [(s.prompt, s.scene, s.negative) for s in shots or ()]
    key = json.dumps([template, prompt, negative, shot_prompts], default=str, ensure_ascii=False)
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % (2**31)
