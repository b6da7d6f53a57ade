"""The offline tiny Wan2.2 MoE model and the tiny LoRA maker."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from brandstudio.generation.lora import inspect_lora
from brandstudio.generation.tiny import (
    TINY_BASE_MODEL,
    TINY_DIMS,
    TINY_FLOW_SHIFT,
    TINY_WEIGHTS_DIR,
    build_tiny_model,
    make_tiny_lora,
    tiny_model_dir,
)

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_is_deterministic_and_depends_on_seed(tmp_path):
    a = _files(build_tiny_model(tmp_path / "a", seed=0))
    b = _files(build_tiny_model(tmp_path / "b", seed=0))
    assert a.keys() == b.keys()
    assert a == b  # byte for byte: configs, tokenizer and safetensors weights

    c = build_tiny_model(tmp_path / "c", seed=1)
    w0 = load_file(tmp_path / "a" / "transformer" / "diffusion_pytorch_model.safetensors")
    w1 = load_file(c / "transformer" / "diffusion_pytorch_model.safetensors")
    assert w0.keys() == w1.keys()
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)
    # the two experts are different networks
    w0_2 = load_file(tmp_path / "a" / "transformer_2" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(w0[k], w0_2[k]) for k in w0)


def test_build_leaves_global_rng_alone(tmp_path):
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    build_tiny_model(tmp_path / "m", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_model_dir_reloads_through_from_pretrained(brandstudio_home):
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5EncoderModel

    path = tiny_model_dir()
    assert path.parent == brandstudio_home / "models" and re.fullmatch(r"tiny-wan2\.2-v3-[0-9a-f]{8}", path.name)
    marker = json.loads((path / "brandstudio.json").read_text())
    assert marker["base_model"] == TINY_BASE_MODEL and marker["seed"] == "trained"
    assert not list(path.rglob("*.bin")), "weights must be safetensors"

    pipe = WanPipeline.from_pretrained(path)
    assert isinstance(pipe.transformer, WanTransformer3DModel)
    assert isinstance(pipe.transformer_2, WanTransformer3DModel)
    assert isinstance(pipe.text_encoder, UMT5EncoderModel)
    assert isinstance(pipe.vae, AutoencoderKLWan)
    assert isinstance(pipe.scheduler, UniPCMultistepScheduler)
    assert pipe.config.boundary_ratio == 0.875
    assert pipe.scheduler.config.prediction_type == "flow_prediction"
    assert pipe.scheduler.config.use_flow_sigmas
    assert pipe.scheduler.config.flow_shift == TINY_FLOW_SHIFT == 3.0
    cfg = pipe.transformer.config
    assert tuple(cfg.patch_size) == (1, 2, 2)
    # 2 wide heads: a head of 16 has too few rotary frequencies to tell neighbouring patches apart
    assert (cfg.num_layers, cfg.num_attention_heads, cfg.attention_head_dim) == (3, 2, 48)
    assert cfg.text_dim == pipe.text_encoder.config.d_model
    assert cfg.rope_max_seq_len >= 32
    assert pipe.vae_scale_factor_spatial == 8 and pipe.vae_scale_factor_temporal == 4
    # the shipped, trained weights: bit-identical to the files in the package
    shipped = load_file(TINY_WEIGHTS_DIR / "transformer_2.safetensors")
    state = pipe.transformer_2.state_dict()
    assert all(torch.equal(shipped[k], state[k]) for k in shipped)
    facts = json.loads((TINY_WEIGHTS_DIR / "training.json").read_text())
    assert list(pipe.vae.config.latents_std) == facts["vae"]["latents_std"]

    # cached: a second call does not rebuild
    mtime = (path / "model_index.json").stat().st_mtime_ns
    assert tiny_model_dir() == path
    assert (path / "model_index.json").stat().st_mtime_ns == mtime


def test_tiny_model_dir_concurrent_build(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANDSTUDIO_HOME", str(tmp_path))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(tiny_model_dir, seed=3) for _ in range(2)]
        results = [f.result() for f in futures]
    assert results[0] == results[1] == tmp_path / "models" / "tiny-wan2.2-v3-seed3"
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.is_dir() and p != results[0]]
    assert leftovers == []  # temporary build dirs are gone


def test_tokenizer_handles_any_unicode(tiny_gen):
    tok = tiny_gen.pipeline.tokenizer
    text = "青岚茶 ☕ café — Морнинг 🌅"
    enc = tok(text)
    assert tok.unk_token_id not in enc.input_ids
    assert enc.input_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == text
    padded = tok([text], padding="max_length", max_length=512, truncation=True, return_tensors="pt")
    assert padded.input_ids.shape == (1, 512)


def test_make_tiny_lora_is_deterministic_small_and_nonzero(tmp_path):
    a = make_tiny_lora(tmp_path / "a.safetensors", seed=7)
    b = make_tiny_lora(tmp_path / "b.safetensors", seed=7)
    c = make_tiny_lora(tmp_path / "c.safetensors", seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert a.stat().st_size < 150_000

    with safe_open(str(a), framework="pt") as f:
        assert f.metadata() == {"brandstudio.base_model": TINY_BASE_MODEL, "format": "pt"}
        keys = list(f.keys())
        assert "transformer.blocks.0.attn1.to_q.lora_A.weight" in keys
        assert "transformer.blocks.1.attn2.to_out.0.lora_B.weight" in keys
        assert "transformer.blocks.0.ffn.net.0.proj.lora_B.weight" in keys
        for k in keys:
            if k.endswith("lora_B.weight"):
                assert f.get_tensor(k).abs().sum() > 0
        assert tuple(f.get_tensor("transformer.blocks.0.ffn.net.2.lora_A.weight").shape) == (4, TINY_DIMS["ffn_dim"])


def test_make_tiny_lora_overrides(tmp_path):
    p = make_tiny_lora(
        tmp_path / "x.safetensors",
        seed=1,
        rank=2,
        base_model="other",
        target_dims={"dim": 40, "num_layers": 1},
    )
    info = inspect_lora(p)
    assert info.rank == 2 and info.base_model == "other"
    assert info.shapes["transformer.blocks.0.attn1.to_q.lora_B.weight"] == (40, 2)
    assert not any(k.startswith("transformer.blocks.1.") for k in info.keys)


@pytest.mark.parametrize(
    "rel",
    ["aurora-coffee/loras/aurora-film.safetensors", "qinglan-tea/loras/qinglan-ink.safetensors"],
)
def test_demo_loras_exist_and_declare_tiny(rel):
    """Trained by ``brandstudio lora train`` (``brand_profiles/make_assets.py``), both experts."""
    info = inspect_lora(REPO / "brand_profiles" / rel)
    assert info.base_model == TINY_BASE_MODEL
    assert info.key_format == "diffusers"
    # make_assets.py's DEMO_LORA_TRAINING (read as text: the script imports the whole asset toolchain)
    rank = re.search(r'^DEMO_LORA_TRAINING = \{"rank": (\d+)', (REPO / "brand_profiles" / "make_assets.py").read_text(), re.M)
    assert rank and info.rank == int(rank.group(1))
    assert {k.split(".")[0] for k in info.keys} == {"transformer", "transformer_2"}
    assert info.path.stat().st_size < 1_000_000


def test_demo_loras_differ():
    root = REPO / "brand_profiles"
    a = (root / "aurora-coffee/loras/aurora-film.safetensors").read_bytes()
    b = (root / "qinglan-tea/loras/qinglan-ink.safetensors").read_bytes()
    assert a != b
