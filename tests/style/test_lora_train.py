"""`brandstudio lora train`: a LoRA trained into both experts of the tiny model at toy size, in the
format [[style.loras]] loads; resumed after SIGKILL to the same weights; Ctrl-C checkpoints; the
GPU settings (bfloat16, gradient checkpointing, idle expert offloaded) run on the CPU; bad data
and settings refused clearly, with nothing written."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from brandstudio.errors import LoRAError, TrainingError
from brandstudio.generation.lora import inspect_lora
from brandstudio.profile import load_profile
from brandstudio.style import LoraTrainingConfig, train_lora

TOY = LoraTrainingConfig(rank=2, steps=3, learning_rate=1e-2, checkpoint_every=2, width=64, height=48)
BRAND = [(59, 42, 32), (140, 90, 60), (200, 162, 122), (31, 78, 95)]


def write_stills(folder: Path, count: int = 3, size=(64, 48), captions=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        a = np.zeros((size[1], size[0], 3), np.uint8)
        a[:] = BRAND[i % len(BRAND)]
        a[:, : size[0] // 2] = BRAND[(i + 1) % len(BRAND)]
        Image.fromarray(a).save(folder / f"still{i}.png")
        if captions:
            (folder / f"still{i}.txt").write_text(f"a warm still, number {i}")
    return folder


@pytest.fixture
def profile_with_stills(make_profile):
    root = make_profile("aurora-coffee")
    write_stills(root / "stills")
    return root


def test_trains_both_experts_into_the_format_the_profile_loads(profile_with_stills, tmp_path):
    root = profile_with_stills
    before = load_profile(root).fingerprint
    events = []
    result = train_lora(root, data=root / "stills", config=TOY, work_dir=tmp_path / "run", add_to_profile=True,
                        on_progress=events.append)  # fmt: skip

    # the file: per-expert keys, the rank asked for, trained (lora_B moved off its zero init)
    tensors = load_file(result.path)
    high = {k for k in tensors if k.startswith("transformer.")}
    low = {k for k in tensors if k.startswith("transformer_2.")}
    assert high and low and len(high) == len(low) == len(tensors) / 2
    assert {k.replace("transformer_2.", "transformer.", 1) for k in low} == high
    assert all(tensors[k].shape[0] == 2 for k in high if ".lora_A." in k)
    for prefix in ("transformer.", "transformer_2."):
        assert any(tensors[k].abs().max() > 0 for k in tensors if k.startswith(prefix) and ".lora_B." in k)
    assert not any(torch.equal(tensors[k], tensors[k.replace("transformer.", "transformer_2.", 1)]) for k in high
                   if ".lora_B." in k)  # fmt: skip  # two experts, two different adapters

    # the metadata
    info = inspect_lora(result.path)
    assert info.base_model == "tiny-wan2.2" and info.rank == 2 and info.key_format == "diffusers"
    meta = info.metadata
    assert meta["brandstudio.trigger"] == "aurora-coffee style" and meta["brandstudio.steps"] == "3"
    assert len(meta["brandstudio.data_sha256"]) == 64 and meta["brandstudio.items"] == "3"
    assert json.loads(meta["brandstudio.experts"]) == {
        "transformer": [0.875, 1.0],
        "transformer_2": [0.0, 0.875],
    }

    # the loss: one value per step and expert, finite, plotted
    assert {k: len(v) for k, v in result.losses.items()} == {"transformer": 3, "transformer_2": 3}
    assert all(np.isfinite(v).all() for v in result.losses.values())
    with Image.open(result.loss_plot) as plot:
        assert plot.format == "PNG" and plot.size[0] > 300
    assert [e.step for e in events] == list(range(1, 7)) and events[-1].total == 6
    assert "low-noise expert step 3/3" in events[-1].detail

    # the profile now loads it (its fingerprint changed), and each expert gets its own weights
    prof = load_profile(root)
    assert prof.fingerprint != before
    entry = [lora for lora in prof.spec.style.loras if lora.name == "aurora-coffee-style"][0]
    assert entry.file == "loras/aurora-coffee-style.safetensors" and entry.trigger_words == (
        "aurora-coffee style",
    )
    from brandstudio.generation import load_generator

    pipe = load_generator(prof, device="cpu").pipeline
    for label in ("transformer", "transformer_2"):
        module = getattr(pipe, label)
        loaded = dict(module.named_parameters())
        key = "blocks.0.attn1.to_q.lora_B.aurora-coffee-style.weight"
        assert torch.equal(loaded[key], tensors[f"{label}.blocks.0.attn1.to_q.lora_B.weight"])


def test_a_trained_lora_changes_what_the_model_makes(profile_with_stills, tmp_path):
    from diffusers import WanPipeline

    from brandstudio.generation.tiny import tiny_model_dir

    config = LoraTrainingConfig(rank=4, steps=6, learning_rate=2e-2, checkpoint_every=10, width=64, height=48)
    result = train_lora(
        profile_with_stills, data=profile_with_stills / "stills", config=config, work_dir=tmp_path / "run"
    )
    pipe = WanPipeline.from_pretrained(tiny_model_dir())

    def video():
        return pipe("aurora-coffee style, a warm still", num_frames=1, height=48, width=64, num_inference_steps=2,
                    guidance_scale=1.0, generator=torch.Generator().manual_seed(0), output_type="np").frames[0]  # fmt: skip

    base = video()
    pipe.load_lora_weights(
        str(result.path), adapter_name="brand"
    )  # the high-noise expert's keys, as diffusers reads them
    assert np.abs(video() - base).mean() > 1e-4


def test_caption_dropout_trains_on_the_trigger_word_alone(profile_with_stills, tmp_path):
    """With every caption dropped the captions' words cannot matter: two folders of the same
    stills under other captions train the same LoRA; without dropout they do not."""
    other = write_stills(tmp_path / "other")
    for caption in other.glob("*.txt"):
        caption.write_text("a completely different description, blue and cold")

    def trained(data: Path, dropout: float, run: str) -> dict:
        config = replace(TOY, steps=2, caption_dropout=dropout)
        result = train_lora(profile_with_stills, data=data, config=config, output=tmp_path / f"{run}.safetensors",
                            work_dir=tmp_path / run)  # fmt: skip
        return load_file(str(result.path))

    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    stills = profile_with_stills / "stills"
    assert same(trained(stills, 1.0, "a"), trained(other, 1.0, "b"))
    assert not same(trained(stills, 0.0, "c"), trained(other, 0.0, "d"))


def _train_cli(profile: Path, run: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "brandstudio.cli", "lora", "train", str(profile), "--data", str(profile / "stills"),
            "--rank", "2", "--lr", "1e-2", "--size", "64x48", "--work-dir", str(run), *extra]  # fmt: skip
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path_test, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path_test():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def test_resumes_after_sigkill_with_the_weights_of_an_uninterrupted_run(make_profile, tmp_path):
    first, second = make_profile(name="first"), make_profile(name="second")
    for root in (first, second):
        write_stills(root / "stills")
    steps = ("--steps", "8", "--checkpoint-every", "2")

    # killed once the low-noise expert has a checkpoint: mid-run, between two checkpoints at best
    proc = _train_cli(first, tmp_path / "run1", *steps)
    checkpoints = tmp_path / "run1" / "checkpoints"
    _wait_for(
        lambda: (
            checkpoints.is_dir()
            and any(p.name.startswith("step-transformer_2") for p in checkpoints.iterdir())
        ),
        proc,
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (first / "loras" / "aurora-coffee-style.safetensors").exists()  # nothing half-written
    resumed = _train_cli(first, tmp_path / "run1", *steps)
    out, errors = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, errors
    assert "resumed at step" in errors

    whole = _train_cli(second, tmp_path / "run2", *steps)
    _, errors = whole.communicate(timeout=300)
    assert whole.returncode == 0, errors
    a = load_file(first / "loras" / "aurora-coffee-style.safetensors")
    b = load_file(second / "loras" / "aurora-coffee-style.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_saves_a_checkpoint_and_the_next_run_resumes(profile_with_stills, tmp_path):
    run = tmp_path / "run"
    proc = _train_cli(profile_with_stills, run, "--steps", "400", "--checkpoint-every", "1000")
    _wait_for(lambda: (run / "cache.safetensors").is_file(), proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, errors = proc.communicate(timeout=120)
    assert proc.returncode == 130, errors
    assert "checkpoint is saved" in errors and "Traceback" not in errors
    saved = [p.name for p in (run / "checkpoints").iterdir()]
    assert len(saved) == 1 and saved[0].startswith("step-transformer-"), saved
    step = int(saved[0].rsplit("-", 1)[1])
    assert 0 < step < 400
    state = json.loads((run / "checkpoints" / saved[0] / "state.json").read_text())
    assert len(state["losses"]["transformer"]) == step


def test_the_gpu_settings_run_on_the_cpu_at_toy_size(profile_with_stills, tmp_path):
    config = LoraTrainingConfig(rank=2, steps=2, learning_rate=1e-3, width=64, height=48, precision="bfloat16",
                                gradient_checkpointing=True, offload_idle_expert=True)  # fmt: skip
    result = train_lora(
        profile_with_stills, data=profile_with_stills / "stills", config=config, work_dir=tmp_path / "run"
    )
    tensors = load_file(result.path)
    assert all(
        t.dtype == torch.float32 and torch.isfinite(t).all() for t in tensors.values()
    )  # the LoRA trains in fp32
    assert {k.split(".")[0] for k in tensors} == {"transformer", "transformer_2"}


def test_a_one_transformer_model_gets_one_adapter(make_profile, tmp_path):
    root = make_profile(
        edit=lambda t: t.replace('id = "tiny"', 'id = "tiny-ti2v"', 1).replace(
            "flow_shift = 3.0", "flow_shift = 5.0"
        )
    )
    write_stills(root / "stills", size=(64, 64))
    config = LoraTrainingConfig(rank=2, steps=2, learning_rate=1e-3, width=64, height=64)
    result = train_lora(root, data=root / "stills", config=config, work_dir=tmp_path / "run")
    tensors = load_file(result.path)
    assert {k.split(".")[0] for k in tensors} == {"transformer"}
    assert inspect_lora(result.path).base_model == "tiny-wan2.2-ti2v"
    assert list(result.losses) == ["transformer"]


def test_captions_from_a_csv_and_clips_are_training_data(profile_with_stills, tmp_path):
    import imageio.v3 as iio

    from brandstudio.style.lora_data import find_items, load_pixels

    data = write_stills(tmp_path / "data", count=2, captions=False)
    frames = np.stack([np.full((48, 64, 3), 20 * i, np.uint8) for i in range(9)])
    iio.imwrite(data / "pour.mp4", frames, fps=16, codec="libx264")
    (data / "captions.csv").write_text("file,caption\nstill0.png,a cup\npour.mp4,coffee being poured\n")
    items = {p.path.name: p for p in find_items(data, trigger="aurora look", default_caption="warm light")}
    assert items["still0.png"].caption == "aurora look, a cup"
    assert items["still1.png"].caption == "aurora look, warm light"  # no caption: the profile's style
    assert (
        items["pour.mp4"].kind == "video" and items["pour.mp4"].caption == "aurora look, coffee being poured"
    )
    assert load_pixels(items["pour.mp4"], width=64, height=48, frames=17).shape == (9, 48, 64, 3)
    assert load_pixels(items["pour.mp4"], width=32, height=16, frames=5).shape == (5, 16, 32, 3)
    result = train_lora(profile_with_stills, data=data, config=TOY, work_dir=tmp_path / "run")
    assert inspect_lora(result.path).metadata["brandstudio.items"] == "3"


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "holds no stills or clips"),
        (lambda d: (write_stills(d), (d / "orphan.txt").write_text("x")), "without a still or clip"),
        (lambda d: (write_stills(d), (d / "broken.png").write_bytes(b"not a png")), "broken.png"),
        (lambda d: (write_stills(d), Image.new("RGB", (48, 64)).save(d / "portrait.png")), "mixed sizes"),
        (
            lambda d: (
                write_stills(d, captions=False),
                (d / "captions.csv").write_text("file,caption\ngone.png,x\n"),
            ),
            "gone.png",
        ),
    ],
    ids=["empty", "caption-without-image", "unreadable", "mixed-sizes", "csv-missing-file"],
)
def test_bad_data_is_refused_before_anything_is_written(profile_with_stills, tmp_path, setup, message):
    data = tmp_path / "data"
    data.mkdir()
    setup(data)
    with pytest.raises(TrainingError, match=message) as caught:
        train_lora(profile_with_stills, data=data, config=TOY, work_dir=tmp_path / "run")
    assert caught.value.fix
    assert not (tmp_path / "run").exists()
    assert not (profile_with_stills / "loras" / "aurora-coffee-style.safetensors").exists()


def test_mixed_sizes_train_when_cropping_is_asked_for(profile_with_stills, tmp_path):
    data = write_stills(tmp_path / "data")
    Image.new("RGB", (48, 64), (200, 162, 122)).save(data / "portrait.png")
    config = LoraTrainingConfig(rank=2, steps=1, width=64, height=48, crop=True)
    assert train_lora(profile_with_stills, data=data, config=config, work_dir=tmp_path / "run").path.is_file()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (LoraTrainingConfig(frames=4), "frames"),
        (LoraTrainingConfig(rank=0), "rank"),
        (LoraTrainingConfig(learning_rate=float("nan")), "learning_rate"),
        (LoraTrainingConfig(width=70), "width"),
        (LoraTrainingConfig(caption_dropout=1.5), "caption_dropout"),
        (
            LoraTrainingConfig(target_modules=("no_such_layer",), steps=1, width=64, height=48),
            "target_modules",
        ),
    ],
)
def test_bad_settings_name_the_setting(profile_with_stills, tmp_path, config, field):
    with pytest.raises(TrainingError) as caught:
        train_lora(
            profile_with_stills, data=profile_with_stills / "stills", config=config, work_dir=tmp_path / "run"
        )
    assert caught.value.field == field


def test_a_run_folder_of_other_settings_is_refused_unless_restarted(profile_with_stills, tmp_path):
    run = tmp_path / "run"
    train_lora(profile_with_stills, data=profile_with_stills / "stills", config=TOY, work_dir=run)
    other = LoraTrainingConfig(rank=3, steps=1, width=64, height=48)
    with pytest.raises(TrainingError, match="other settings or data") as caught:
        train_lora(profile_with_stills, data=profile_with_stills / "stills", config=other, work_dir=run)
    assert "--restart" in caught.value.fix
    result = train_lora(
        profile_with_stills, data=profile_with_stills / "stills", config=other, work_dir=run, restart=True
    )
    assert inspect_lora(result.path).rank == 3 and result.resumed_from == 0


def test_a_lora_for_another_base_model_is_refused(profile_with_stills, tmp_path):
    # trained for the two-expert tiny model, then put into a profile whose model is tiny-ti2v
    result = train_lora(profile_with_stills, data=profile_with_stills / "stills", config=TOY, work_dir=tmp_path / "run",
                        name="look", add_to_profile=True)  # fmt: skip
    toml = profile_with_stills / "brand.toml"
    toml.write_text(toml.read_text().replace('id = "tiny"', 'id = "tiny-ti2v"', 1))
    prof = load_profile(profile_with_stills)
    from brandstudio.generation import load_generator

    with pytest.raises(LoRAError, match="trained for `tiny-wan2.2`"):
        load_generator(prof, device="cpu")
    # adding it under a name the profile declares for another model is refused, brand.toml untouched
    text = toml.read_text().replace('base_model = "tiny-wan2.2"', 'base_model = "wan2.2-t2v-a14b"')
    toml.write_text(text)
    from brandstudio.style.lora_profile import add_lora_to_profile

    with pytest.raises(TrainingError, match="declared for `wan2.2-t2v-a14b`"):
        add_lora_to_profile(
            profile_with_stills, result.path, name="look", trigger="t", base_model="tiny-wan2.2"
        )
    assert toml.read_text() == text


def test_an_output_outside_the_profile_cannot_be_added(profile_with_stills, tmp_path):
    with pytest.raises(TrainingError, match="outside the profile"):
        train_lora(profile_with_stills, data=profile_with_stills / "stills", config=TOY, work_dir=tmp_path / "run",
                   output=tmp_path / "elsewhere.safetensors", add_to_profile=True)  # fmt: skip
    assert (
        not (tmp_path / "run").exists() and not (tmp_path / "elsewhere.safetensors").exists()
    )  # refused first


def test_no_data_folder_named_says_how_to_give_one(make_profile, tmp_path):
    # the demo profiles ship [style] references; this client has none yet
    root = make_profile("aurora-coffee", edit=lambda t: re.sub(r"(?m)^references = .*$", "", t))
    shutil.rmtree(root / "references")
    with pytest.raises(TrainingError, match=r"\[style\] references") as caught:
        train_lora(root, config=TOY, work_dir=tmp_path / "run")
    assert "--data" in caught.value.fix


def test_the_cli_prints_the_file_and_the_json(profile_with_stills, tmp_path):
    proc = _train_cli(profile_with_stills, tmp_path / "run", "--steps", "2", "--json")
    out, errors = proc.communicate(timeout=300)
    assert proc.returncode == 0, errors
    data = json.loads(out)
    assert Path(data["path"]).is_file() and set(data["final_loss"]) == {"transformer", "transformer_2"}
    with safe_open(data["path"], framework="pt") as f:
        assert f.metadata()["brandstudio.base_model"] == "tiny-wan2.2"
    bad = _train_cli(profile_with_stills, tmp_path / "run2", "--frames", "4")
    _, errors = bad.communicate(timeout=300)
    assert bad.returncode == 2 and "frames" in errors and "Traceback" not in errors
