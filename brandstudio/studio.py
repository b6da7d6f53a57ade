"""BrandStudio: brief in, finished on-brand clip out. This module states the stage order once.

::

    RenderRequest ─► brief ─► check ─► safety ─► generation ─► post (a plan) ─► frame safety ─► label
                  ─► audio ─► post + encode (streamed, staged) ─► QC ─► provenance (C2PA; publishes) ─► RenderResult

Each step is one call to a stage's front door, which takes plain values and returns plain
values; no stage reaches back into an earlier one (ARCHITECTURE.md). The post stage is planned
as a chain of effects and run while encoding: chunks of frames flow from the generated clip
through the effects into ffmpeg, so the delivered clip is never held in memory whole.

Example:
    >>> from brandstudio import BrandStudio
    >>> studio = BrandStudio("brand_profiles/aurora-coffee")                   # doctest: +SKIP
    >>> clip = studio.render("product-hero", product="Night Roast", aspect="9:16")  # doctest: +SKIP
    >>> clip.path                                                                # doctest: +SKIP
    PosixPath('renders/aurora-coffee/product-hero-9x16-s1234-0a1b2c3d.mp4')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import audio, encode, generation, post, provenance, qc, safety
from .batch import render_many_resumable
from .deliveries import delivery_file, find_delivery
from .errors import error_context
from .files import removed_on_error, write_text_atomic
from .generation.cache import SceneCache
from .profile import BrandProfile, load_profile
from .progress import ProgressCallback, StageTimer, combine
from .prompts import Brief, TemplateLibrary, make_brief
from .rates import frame_rate
from .request import RenderRequest, RenderResult

__all__ = ["BrandStudio"]

#: the stages whose ``check(brief, profile)`` runs before any work, in this order
CHECKED_STAGES = (generation, post, audio, encode, qc, provenance)


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
        self.cache = SceneCache.from_option(cache)
        self.templates = TemplateLibrary.for_profile(self.profile.root)
        self.rules = safety.rules_of(self.profile)

    def __repr__(self) -> str:
        return f"BrandStudio({self.profile.id!r}, fingerprint={self.profile.fingerprint[:12]})"

    @property
    def generator(self):
        """The loaded video generator (created on first use)."""
        if self._generator is None:
            self._generator = generation.load_generator(self.profile, device=self.device)
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
        fps: float | str | None = None,
        slowmo: float = 1.0,
        interpolation: str | None = None,
        music_mood: str | None = None,
        voiceover: str | Path | None = None,
        preset: str | None = None,
        memory: str | None = None,
        deliveries: Iterable[str] = (),
        on_progress: ProgressCallback | None = None,
        on_stage: Callable[[str], None] | None = None,
        **variables: Any,
    ) -> RenderResult:
        """Render one clip.

        ``request`` is a template name (then the keyword arguments fill the request) or a
        :class:`RenderRequest`. Returns a :class:`RenderResult`; the MP4 and its sidecars
        appear at their paths only when complete.

        ``on_progress`` gets a :class:`~brandstudio.progress.Progress` at each stage's start,
        denoising step of each expert and encoded chunk (:func:`brandstudio.tqdm_progress` draws
        a bar); ``on_stage`` each stage's name as it starts. ``music_mood``: one of the profile's
        track moods (default: the template's); ``voiceover``: an audio file the music ducks under;
        ``preset`` (quality, balanced, fast) and ``memory`` (auto, resident, swap, group-offload)
        override the profile's ``[model]`` for this clip (:mod:`brandstudio.generation.presets`).
        ``fps`` (25, 29.97, ``"30000/1001"``), ``slowmo`` (2: half speed) and ``interpolation``
        (repeat, flow, rife) set the delivery rate and how the frames between the model's are
        made (:mod:`brandstudio.post.interpolate`). ``deliveries`` (names of the profile's
        ``[[deliveries]]`` or presets such as ``"broadcast-1080p25"``) encodes the one generation
        once per delivery; the result is the first's and ``result.deliveries`` lists them all.

        Example:
            >>> clip = studio.render("product-hero", product="Night Roast", aspect="9:16",
            ...                      on_progress=brandstudio.tqdm_progress())   # doctest: +SKIP
        """
        with error_context(profile=self.profile.id):
            if not isinstance(request, RenderRequest):
                request = RenderRequest.from_arguments(
                    template=request, variables=variables, aspect=aspect, seed=seed,
                    output=Path(output) if output else None, duration=duration, resolution=resolution,
                    fps=fps, slowmo=slowmo, interpolation=interpolation, music_mood=music_mood, voiceover=Path(voiceover) if voiceover else None,
                    preset=preset, memory=memory, deliveries=tuple(deliveries),
                )  # fmt: skip
            return self._render(request, combine(on_progress, on_stage))

    def render_many(
        self,
        requests: Iterable[RenderRequest | dict],
        *,
        manifest: str | Path | None = None,
        quiet: bool = True,
    ) -> list[RenderResult]:
        """Render several clips with one loaded model, in order; the first error is raised as is.

        With ``manifest`` (a JSON-lines path) the batch is resumable like a campaign
        (:func:`brandstudio.batch.render_many_resumable`: done clips are skipped, a failing
        request does not stop the others, each clip gets an audit line). ``quiet=False`` shows progress.
        """
        if manifest is not None:
            return render_many_resumable(self, requests, manifest=Path(manifest), quiet=quiet)
        return [self.render(r if isinstance(r, RenderRequest) else RenderRequest(**r)) for r in requests]

    def prewarm(self, *, aspect: str | None = None, duration: float | None = None) -> list[dict]:
        """Render the profile's ``[[scenes]]`` into the scene cache, exactly as a scene template
        would ask for them (generation only: no post, no file); see :func:`brandstudio.generation.prewarm`.
        Returns one ``{"scene", "cache", "key", "seconds"}`` per scene."""
        with error_context(profile=self.profile.id):
            return generation.prewarm(
                self.generator, self.profile, cache=self.cache, aspect=aspect, duration=duration,
                check_prompt=lambda prompt: safety.check_texts(self.rules, [("prompt", prompt)], profile=self.profile.id),
            )  # fmt: skip

    # -- the stage order --------------------------------------------------------------------

    def _render(self, req: RenderRequest, on_progress: ProgressCallback | None) -> RenderResult:
        profile, timer = self.profile, StageTimer(on_progress)

        # 1. brief: the request resolved against the profile and its template (prompt, captions, seed, shots)
        with timer.stage("prompt"):
            brief = make_brief(req, profile, self.templates)

        # 2. check: every stage looks at the brief (each delivery's) before any work (sizes, glyphs, mood, voice-over, CLIP, signer)
        targets = _delivery_variants(brief, profile, req.deliveries, self.output_dir) or [(brief, profile)]
        for target_brief, target_profile in targets:
            for stage in CHECKED_STAGES:
                stage.check(target_brief, target_profile)
            if target_brief.output is None:  # the default path: its folder and name length are known now
                encode.check_output(encode.default_output(self.output_dir, target_profile, target_brief), target_profile)

        # 3. safety: the brand's text rules on the final prompt (each shot's) and every caption
        with timer.stage("safety"):
            verdicts = safety.screen(brief, self.rules, profile=profile.id)

        # 4. generation, through the scene cache (a multi-shot clip: each shot, cut together)
        with timer.stage("generation"):
            clip = self._generate(brief, on_progress)

        # 5-12. each delivery from the same frames: post, frame safety, label, audio, encode, QC, provenance
        results = [self._deliver(b, p, clip, verdicts, timer, on_progress) for b, p in targets]
        if not req.deliveries:
            return results[0]
        listing = tuple(_delivery_record(name, r) for name, r in zip(req.deliveries, results, strict=True))
        result = results[0].model_copy(update={"deliveries": listing})
        write_text_atomic(result.path.with_suffix(".json"), result.to_json())
        return result

    def _deliver(self, brief: Brief, profile: BrandProfile, clip, verdicts, timer: StageTimer,
                 on_progress: ProgressCallback | None) -> RenderResult:  # fmt: skip
        """Steps 5-12 for one delivery of the generated ``clip``."""
        # 5. post, as a plan: colour match, reframe, grade, upscale, retime, captions, logo (nothing runs yet)
        chain = post.plan(clip.frames, brief, profile, model_fps=profile.spec.model.fps, shot_starts=clip.shot_starts,
                          segment_starts=clip.segment_starts, device=self.device)  # fmt: skip
        n_out = chain.n_frames(len(clip.frames))

        # 6. frame safety: the NSFW check on sampled delivered frames (block stops here; blur joins the chain)
        with timer.stage("frame_safety"):
            blur, seen = safety.screen_frames(chain.frames_at(clip.frames), brief.fps, profile)
            verdicts = [*verdicts, *seen]

        # 7. AI label: the region's visible notice, the last effect so nothing blurs or covers it
        chain = post.with_label(chain, brief, profile, blur=blur)

        # 8. audio: the music bed fitted to the clip, a voice-over ducking it
        with timer.stage("music"):
            sound = audio.soundtrack(brief, profile, duration=n_out / brief.fps,
                                     state_dir=self.output_dir / ".brandstudio" / "music-rotation")  # fmt: skip

        # 9. post + encode, streamed into a hidden staging MP4 beside the clip, QC sampling each chunk
        out = brief.output or encode.default_output(self.output_dir, profile, brief, sound.info)
        staged = provenance.staging_path(out)
        sidecars = encode.sidecars(out, bool(brief.cues))
        sampler = qc.QCCollector(n_out)
        timer.timings.update(encode.write(
            out, chain, clip.frames, fps=brief.fps, size=post.delivery_size(brief.aspect, brief.resolution),
            profile=profile, audio=sound.audio, sample_rate=sound.sample_rate, cues=brief.cues, target=staged,
            metadata=encode.clip_metadata(profile, brief, model_id=self.generator.model_id, music=sound.info),
            observers=[sampler], on_progress=on_progress,
        ))  # fmt: skip

        # 10. QC: palette ΔE, flicker, footage, loudness, safety, CLIP style and prompt against [qc]; beside the clip.
        #     Black, blank or frozen footage is never delivered: the staged MP4 and captions are
        #     removed (the report is kept, to show why) and QCError raised, before anything is published
        with timer.stage("qc"), removed_on_error(staged, *sidecars):
            report = qc.report(
                sampler, profile, fps=brief.fps, audio=sound.audio, sample_rate=sound.sample_rate,
                clip=out, model=self.generator.model_id, seed=brief.seed, timings=dict(timer.timings),
                safety=[v.as_dict() for v in verdicts], on_progress=on_progress,
                prompt=brief.prompt if brief.shots is None else [s.prompt for s in brief.shots.shots],
            )  # fmt: skip
            qc_files = qc.write(report, out)
            qc.refuse_unusable(report, (staged, *sidecars))

        # 11. provenance: C2PA content credentials, the last write; the staged MP4 becomes `out` (signed or not)
        with timer.stage("provenance"), removed_on_error(*qc_files):  # no report of a clip that never appeared
            credentials = provenance.sign_render(
                staged, out, provenance.resolve_signer(profile), profile=profile, model=self.generator.model_id,
                seed=brief.seed, template=brief.template, aspect=brief.aspect, label=post.clip_label(profile),
                sidecars=sidecars,
            )  # fmt: skip

        # 12. the result, recorded beside the clip
        result = self._result(brief, out, clip, sound, verdicts, credentials, report, n_out, timer.timings)
        write_text_atomic(out.with_suffix(".json"), result.to_json())
        return result

    # -- one helper per step ----------------------------------------------------------------

    def _generate(self, brief: Brief, on_progress: ProgressCallback | None) -> generation.Clip:
        """Step 4: the clip's frames at the model's rate (the grade's table is baked meanwhile):
        one generation, the shots of a multi-shot template, or a long take's chained generations."""
        options = dict(profile=self.profile, cache=self.cache, preset=brief.preset, memory=brief.memory,
                       on_progress=on_progress)  # fmt: skip
        if brief.shots is not None:
            return generation.generate_shots(self.generator, brief.shots, template=brief.template,
                                             template_path=brief.template_path, aspect=brief.aspect, **options)  # fmt: skip
        m = self.profile.spec.model
        total = generation.frames_for(brief.generated_duration, m.fps)
        duration = min(brief.generated_duration, m.max_frames / m.fps)  # a long take: each generation's length
        spec = generation.clip_spec(self.profile, self.generator, prompt=brief.prompt, negative=brief.negative,
                                    seed=brief.seed, aspect=brief.aspect, duration=duration, preset=brief.preset)  # fmt: skip
        post.bake_ahead(self.profile, (max(total, spec.num_frames), spec.height, spec.width, 3), self.device)
        if total > m.max_frames:
            return generation.generate_long_take(self.generator, spec, total=total, **options)
        return generation.generate_clip(self.generator, spec, **options)

    def _result(self, brief, out, clip, sound, verdicts, credentials, report, n_out, timings) -> RenderResult:
        """Step 12: what the render made, for the caller and the ``.json`` record."""
        width, height = post.delivery_size(brief.aspect, brief.resolution)
        return RenderResult(
            path=out, subtitles=out.with_suffix(".srt") if brief.cues else None,
            duration=round(n_out / brief.fps, 4), fps=brief.fps, width=width, height=height, aspect=brief.aspect,
            template=brief.template, variables=dict(brief.variables), prompt=brief.prompt,
            negative_prompt=brief.negative, seed=brief.seed, model_id=self.generator.model_id,
            profile_id=self.profile.id, profile_fingerprint=self.profile.fingerprint, generation=clip.record,
            warnings=(*clip.warnings, *sound.warnings), timings=timings, safety=tuple(v.as_dict() for v in verdicts),
            label=post.clip_label(self.profile), provenance=credentials, cache=clip.cache, cache_key=clip.cache_key,
            qc=report.summary(), qc_report=out.with_suffix(".qc.html"), music=sound.info,
        )  # fmt: skip


# -- deliveries -------------------------------------------------------------------------------


def _delivery_variants(
    brief: Brief, profile: BrandProfile, names: Iterable[str], output_dir: Path
) -> list[tuple[Brief, BrandProfile]]:
    """One ``(brief, profile)`` per delivery: the brief at the delivery's aspect, size, rate and
    captions; the profile with its loudness, true peak and bitrate cap; each its own file name."""
    variants = []
    for name in names:
        d = find_delivery(name, profile.spec.deliveries)
        overrides: dict[str, Any] = {"output.resolution": d.resolution, "output.max_bitrate": d.max_bitrate, "output.codec": d.codec,
                                     "output.source_aspect": profile.spec.output.source_aspect or brief.aspect}  # fmt: skip
        if profile.spec.audio is not None:
            overrides |= {"audio.loudness": d.loudness, "audio.true_peak": d.true_peak}
        variant = profile.with_overrides(overrides)
        target = dataclasses.replace(
            brief, aspect=d.aspect, resolution=d.resolution, burn_captions=d.captions == "burn",
            fps=float(frame_rate(d.fps)) if d.fps is not None else brief.fps,
            cues=() if d.captions == "none" else brief.cues,
        )  # fmt: skip
        out = brief.output or encode.default_output(output_dir, profile, target)
        variants.append((dataclasses.replace(target, output=delivery_file(out, d)), variant))
    return variants


def _delivery_record(name: str, result: RenderResult) -> dict[str, Any]:
    """What ``RenderResult.deliveries`` says of one delivery."""
    return {"name": name, "path": str(result.path), "width": result.width, "height": result.height,
            "fps": result.fps, "aspect": result.aspect, "qc": dict(result.qc or {}),
            "qc_report": str(result.qc_report), "provenance": result.provenance}  # fmt: skip
