"""The demo TI2V model (``tiny-ti2v``): its trainer at toy size, the first-frame conditioning it
trains (the same inputs ``WanImageToVideoPipeline`` gives the transformer with
``expand_timesteps``), how its weights are found, and, once they ship, what they do."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import WanPipeline
from PIL import Image

from brandstudio.generation import tiny
from brandstudio.generation.conditioning import image_pipeline
from brandstudio.generation.flow_matching import flow_matching_loss
from brandstudio.generation.procedural import random_scene, render_scene
from brandstudio.generation.tiny import (
    TINY_TI2V_WEIGHTS_DIR,
    build_tiny_ti2v_pipeline,
    tiny_model_version,
    tiny_ti2v_model_dir,
)
from brandstudio.generation.tiny_training import DemoModelTraining, main, psnr, train_demo_model

PROMPT = "a soft gradient from amber to blue, soft cream shapes drifting left, a gentle white light"


@pytest.fixture(scope="module")
def toy_weights(tmp_path_factory):
    """``tiny-ti2v`` trained at toy size (seconds): the folder and the facts."""
    out = tmp_path_factory.mktemp("ti2v") / "w"
    return out, train_demo_model(out, DemoModelTraining.toy("tiny-ti2v"), log=lambda _: None)


def test_the_ti2v_trainer_runs_at_toy_size_and_its_weights_load(toy_weights):
    out, facts = toy_weights
    toy = DemoModelTraining.toy("tiny-ti2v")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "text_encoder.safetensors",
        "training.json",
        "transformer.safetensors",
        "vae.safetensors",
    ]
    # one transformer, trained on every noise level: no shared stage, no experts
    assert list(facts["experts"]) == ["transformer"]
    stage = facts["experts"]["transformer"]
    assert stage["sigma_range"] == [0.0, 1.0] and stage["steps"] == toy.shared_steps
    curve = stage["loss_curve"]
    assert np.mean(curve[len(curve) // 2 :]) < np.mean(curve[: len(curve) // 2]), curve  # it learned
    assert facts["config"]["model"] == "tiny-ti2v" and facts["config"]["first_frame_share"] == 0.5
    assert "continue from their first frame" in facts["data"]
    assert len(facts["vae"]["latents_mean"]) == len(facts["vae"]["latents_std"]) == 48
    assert json.loads((out / "training.json").read_text()) == json.loads(json.dumps(facts))

    trained = build_tiny_ti2v_pipeline(weights=out)
    fresh = build_tiny_ti2v_pipeline(seed=0)  # the trainer's starting point
    assert trained.transformer_2 is None and trained.config.expand_timesteps
    assert list(trained.vae.config.latents_std) == facts["vae"]["latents_std"]
    moved = [k for k, v in trained.transformer.state_dict().items()
             if not torch.equal(v, fresh.transformer.state_dict()[k])]  # fmt: skip
    assert moved
    assert torch.equal(trained.text_encoder.shared.weight, fresh.text_encoder.shared.weight)  # frozen

    # the trained pipeline generates, from text and from a start image
    trained.set_progress_bar_config(disable=True)
    common = {"height": 32, "width": 64, "num_frames": 5, "num_inference_steps": 2, "guidance_scale": 1.0,
              "output_type": "np"}  # fmt: skip
    video = trained(prompt=PROMPT, generator=torch.Generator().manual_seed(0), **common).frames[0]
    embeds = trained.encode_prompt(PROMPT, do_classifier_free_guidance=False, max_sequence_length=512)[0]
    start = Image.fromarray(np.full((32, 64, 3), 200, np.uint8))
    continued = image_pipeline(trained)(
        image=start, prompt_embeds=embeds, generator=torch.Generator().manual_seed(0), **common
    ).frames[0]
    assert video.shape == continued.shape == (5, 32, 64, 3)


def test_the_cli_trains_tiny_ti2v_and_trains_it_further(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["--model", "tiny-ti2v", "--toy", "--out", str(out)]) == 0
    vae = (out / "vae.safetensors").read_bytes()
    first = json.loads((out / "training.json").read_text())
    assert main(["--model", "tiny-ti2v", "--toy", "--out", str(out), "--keep-vae", "--resume-experts",
                 "--shared-steps", "2"]) == 0  # fmt: skip
    more = json.loads((out / "training.json").read_text())
    assert (out / "vae.safetensors").read_bytes() == vae and not (out / "transformer_2.safetensors").exists()
    stage, before = more["experts"]["transformer"], first["experts"]["transformer"]
    assert (
        stage["steps"] == before["steps"] + 2
        and stage["loss_curve"][: len(before["loss_curve"])] == (before["loss_curve"])
    )
    assert len(more["runs"]) == 2 and f"wrote {out}" in capsys.readouterr().out


def test_the_ti2v_trainer_refuses_sizes_the_model_cannot_make(tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        train_demo_model(tmp_path, dataclasses.replace(DemoModelTraining.toy("tiny-ti2v"), sizes=((64, 48),)),
                         log=lambda _: None)  # fmt: skip
    with pytest.raises(ValueError, match="model must be one of"):
        DemoModelTraining(model="tiny-i2v")


def _transformer_inputs(transformer, run) -> list[dict]:
    """The ``hidden_states`` and ``timestep`` of every transformer call ``run()`` makes."""
    seen = []

    def spy(_module, _args, kwargs):
        seen.append({k: kwargs[k].detach().clone() for k in ("hidden_states", "timestep")})

    handle = transformer.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return seen


def test_first_frame_conditioning_gives_the_transformer_what_the_image_pipeline_does(toy_weights):
    """The training inputs of an image-to-video draw are the inference inputs of
    ``WanImageToVideoPipeline`` with ``expand_timesteps``: the clean latent of the start image as
    frame 0, timestep 0 on its tokens and t on every other; a text-to-video draw is
    ``WanPipeline``'s: t on every token."""
    pipe = build_tiny_ti2v_pipeline(weights=toy_weights[0])  # trained latent statistics: not 0 and 1
    pipe.set_progress_bar_config(disable=True)
    width, height, frames = 128, 64, 9  # 3 latent frames of 4x8, 2x4 = 8 tokens each
    clip = render_scene(random_scene(np.random.default_rng(5)), frames=frames, width=width, height=height)
    clip = np.round(clip * 255).astype(np.uint8)  # the start image is a uint8 frame, as in a take
    embeds = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False, max_sequence_length=512)[0]
    call = {"height": height, "width": width, "num_frames": frames, "num_inference_steps": 3,
            "guidance_scale": 1.0, "output_type": "latent", "prompt_embeds": embeds}  # fmt: skip

    i2v = _transformer_inputs(pipe.transformer, lambda: image_pipeline(pipe)(
        image=Image.fromarray(clip[0]), generator=torch.Generator().manual_seed(0), **call))  # fmt: skip
    t2v = _transformer_inputs(
        pipe.transformer, lambda: pipe(generator=torch.Generator().manual_seed(0), **call)
    )
    per_frame = (height // 16 // 2) * (width // 16 // 2)
    t = float(i2v[1]["timestep"].max())  # the second step: a noise level below 1
    assert 0 < t < 1000 and i2v[1]["timestep"].shape == t2v[1]["timestep"].shape == (1, 3 * per_frame)
    assert (i2v[1]["timestep"][0, :per_frame] == 0).all() and (i2v[1]["timestep"][0, per_frame:] == t).all()
    assert (t2v[1]["timestep"] == t).all()

    # the training latents: the whole clip, encoded and normalised as the trainer does
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        x = torch.from_numpy(clip.astype(np.float32) / 255).permute(3, 0, 1, 2)[None] * 2 - 1
        x0 = (pipe.vae.encode(x).latent_dist.mode() - mean) / std
    # the VAE is causal: the clip's first latent frame is the start image's latent, as the pipeline makes it
    torch.testing.assert_close(i2v[1]["hidden_states"][:, :, 0], x0[:, :, 0], atol=1e-4, rtol=1e-4)

    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([t / 1000])
    for clean, pipeline_call in ((True, i2v[1]), (False, t2v[1])):
        (trained,) = _transformer_inputs(pipe.transformer, lambda clean=clean: flow_matching_loss(
            pipe.transformer, x0, embeds, sigma, noise, expand_timesteps=True,
            clean_first_frame=torch.tensor([clean])))  # fmt: skip
        assert torch.equal(trained["timestep"], pipeline_call["timestep"]), clean
        first = trained["hidden_states"][:, :, 0]
        assert torch.equal(first, x0[:, :, 0]) == clean  # kept clean, or noised like the rest
        assert not torch.equal(trained["hidden_states"][:, :, 1:], x0[:, :, 1:])


class _Velocity(torch.nn.Module):
    """A stand-in transformer that answers with a fixed velocity."""

    def __init__(self, velocity: torch.Tensor) -> None:
        super().__init__()
        self.velocity = velocity
        self.config = SimpleNamespace(patch_size=(1, 2, 2))
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, hidden_states, timestep, encoder_hidden_states, return_dict=False):
        return (self.velocity + self.weight,)


def test_the_loss_leaves_out_the_frame_the_image_gives():
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 3, 2, 4, generator=gen), torch.randn(2, 4, 3, 2, 4, generator=gen)
    velocity = noise - x0
    velocity[:, :, 0] += 5.0  # wrong only on frame 0
    model, text, sigmas = _Velocity(velocity), torch.zeros(2, 3, 8), torch.tensor([0.5, 0.5])
    from_image = flow_matching_loss(model, x0, text, sigmas, noise, expand_timesteps=True,
                                    clean_first_frame=torch.tensor([True, True]))  # fmt: skip
    from_text = flow_matching_loss(model, x0, text, sigmas, noise, expand_timesteps=True)
    assert from_image.item() == 0.0 and from_text.item() == pytest.approx(25.0 / 3)
    with pytest.raises(ValueError, match="needs expand_timesteps"):
        flow_matching_loss(model, x0, text, sigmas, noise, clean_first_frame=torch.tensor([True, False]))


def test_tiny_ti2v_is_built_from_the_trained_weights_when_they_ship(toy_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("BRANDSTUDIO_HOME", str(tmp_path))
    monkeypatch.setattr(tiny, "TINY_TI2V_WEIGHTS_DIR", toy_weights[0])
    path = tiny_ti2v_model_dir()
    assert re.fullmatch(r"tiny-wan2\.2-ti2v-v4-[0-9a-f]{8}", path.name), path.name
    assert json.loads((path / "brandstudio.json").read_text())["seed"] == "trained"
    assert tiny_model_version("tiny-ti2v") == path.name.removeprefix("tiny-wan2.2-ti2v-v")
    pipe = WanPipeline.from_pretrained(path)
    assert pipe.config.expand_timesteps and pipe.transformer_2 is None
    from safetensors.torch import load_file

    shipped = load_file(toy_weights[0] / "transformer.safetensors")
    assert all(torch.equal(shipped[k], v) for k, v in pipe.transformer.state_dict().items())
    assert list(pipe.vae.config.latents_mean) == toy_weights[1]["vae"]["latents_mean"]

    # no trained weights (before the first training run): the random build of seed 0
    monkeypatch.setattr(tiny, "TINY_TI2V_WEIGHTS_DIR", tmp_path / "none")
    assert tiny_ti2v_model_dir().name == "tiny-wan2.2-ti2v-v4-seed0"
    assert tiny_model_version("tiny-ti2v") == "4-seed0"
    assert tiny_ti2v_model_dir(seed=2).name == "tiny-wan2.2-ti2v-v4-seed2"


# ------------------------------------------------------------- the shipped weights, once trained

shipped = pytest.mark.skipif(
    not tiny._is_trained(TINY_TI2V_WEIGHTS_DIR),
    reason="tiny-ti2v is not trained yet (python -m brandstudio.generation.tiny_training --model tiny-ti2v)",
)


@shipped
def test_the_shipped_ti2v_vae_reconstructs_held_out_colour():
    facts = json.loads((TINY_TI2V_WEIGHTS_DIR / "training.json").read_text())
    pipe = build_tiny_ti2v_pipeline()
    rng = np.random.default_rng(12345)  # scenes the trainer never drew
    scores = []
    with torch.no_grad():
        for _ in range(3):
            clip = render_scene(random_scene(rng), frames=9, width=256, height=160)
            x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None] * 2 - 1
            recon = (
                pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample[0].permute(1, 2, 3, 0) + 1
            ) / 2
            scores.append(psnr(recon.clamp(0, 1).numpy(), clip))
    # a 900-step trial of its VAE: 21.7 dB on held-out clips; random weights: about 12
    assert np.mean(scores) > 19.0 and facts["vae"]["psnr_db"] > 19.0, scores


@shipped
def test_the_shipped_ti2v_model_continues_from_its_start_image():
    """From text it makes smooth moving colour; from a start image it carries on from that image."""
    pipe = build_tiny_ti2v_pipeline()
    pipe.set_progress_bar_config(disable=True)
    start = render_scene(random_scene(np.random.default_rng(777)), frames=1, width=256, height=160)[0]
    start_u8 = np.round(start * 255).astype(np.uint8)
    embeds, negative = pipe.encode_prompt(PROMPT, "blurry, low quality", max_sequence_length=512)
    common = {"height": 160, "width": 256, "num_frames": 17, "num_inference_steps": 8, "guidance_scale": 4.0,
              "output_type": "np", "generator": torch.Generator().manual_seed(3)}  # fmt: skip
    plain = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, **common).frames[0]
    common["generator"] = torch.Generator().manual_seed(3)
    continued = image_pipeline(pipe)(image=Image.fromarray(start_u8), prompt_embeds=embeds,
                                     negative_prompt_embeds=negative, **common).frames[0]  # fmt: skip

    def roughness(v):  # mean step between neighbouring pixels
        return float(np.abs(np.diff(v, axis=2)).mean() + np.abs(np.diff(v, axis=1)).mean())

    # far nearer the start image than the same prompt and seed without it (the shipped run:
    # 0.07 against 0.25), and its first frame is the start image through the VAE (0.01)
    near = np.abs(continued[1:5] - start).mean()
    assert near < 0.5 * np.abs(plain[1:5] - start).mean(), "the frames after the start image should resemble it"
    assert np.abs(continued[0] - start).mean() < 0.03
    assert roughness(continued) < 0.05 and roughness(plain) < 0.05  # colour, not noise
    assert np.abs(continued[-1] - continued[1]).mean() > 0.005  # it moves
