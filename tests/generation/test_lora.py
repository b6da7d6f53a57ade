"""LoRA files: safe inspection, and a clear LoRAError before diffusers sees a LoRA that does not fit."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from brandstudio.errors import AssetError, LoRAError
from brandstudio.generation.base import LoraAdapter
from brandstudio.generation.lora import check_lora_fits, inspect_lora
from brandstudio.generation.tiny import TINY_BASE_MODEL, TINY_DIMS, make_tiny_lora
from brandstudio.generation.wan import WanGenerator


def _adapter(
    path: Path, base_model: str = TINY_BASE_MODEL, high: float = 1.0, low: float = 1.0
) -> LoraAdapter:
    return LoraAdapter(name="look", path=path, weight_high=high, weight_low=low, base_model=base_model)


# ---------------------------------------------------------------- inspect_lora


def test_inspect_reads_header(tmp_path):
    path = make_tiny_lora(tmp_path / "look.safetensors", seed=1, rank=3)
    info = inspect_lora(path)
    assert info.path == path
    assert info.rank == 3
    assert info.base_model == TINY_BASE_MODEL
    assert info.key_format == "diffusers"
    assert len(info.keys) == TINY_DIMS["num_layers"] * 2 * 10  # layers x 10 Linears x (A, B)
    assert info.shapes["transformer.blocks.0.attn1.to_q.lora_A.weight"] == (3, TINY_DIMS["dim"])


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".pth", ".ckpt", ".pkl"])
def test_pickle_suffix_is_refused(tmp_path, suffix):
    path = tmp_path / f"style{suffix}"
    torch.save({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 24)}, path)
    with pytest.raises(AssetError) as exc:
        inspect_lora(path, profile="aurora-coffee")
    err = exc.value
    assert f"style{suffix}" in err.message and "pickle" in err.message
    assert err.file == str(path) and err.profile == "aurora-coffee"
    assert "safetensors" in err.fix


def test_pickle_renamed_to_safetensors_is_refused(tmp_path):
    path = tmp_path / "sneaky.safetensors"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(AssetError, match="pickle") as exc:
        inspect_lora(path)
    assert "sneaky.safetensors" in str(exc.value) and "safetensors" in exc.value.fix

    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(AssetError, match="pickle"):
        inspect_lora(raw)


def test_garbage_and_missing_files_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file at all")
    with pytest.raises(AssetError, match="not a valid safetensors"):
        inspect_lora(junk)
    with pytest.raises(AssetError, match="does not exist") as exc:
        inspect_lora(tmp_path / "gone.safetensors")
    assert exc.value.file.endswith("gone.safetensors")
    other = tmp_path / "look.onnx"
    other.write_bytes(b"x")
    with pytest.raises(AssetError, match=r"\.safetensors"):
        inspect_lora(other)


# ---------------------------------------------------------------- check_lora_fits


def test_fitting_lora_passes(tiny_gen, tmp_path):
    path = make_tiny_lora(tmp_path / "ok.safetensors", seed=2)
    for expert in (tiny_gen.pipeline.transformer, tiny_gen.pipeline.transformer_2):
        check_lora_fits(inspect_lora(path), expert, _adapter(path), "tiny-wan2.2")


def test_declared_base_model_in_file_must_match(tiny_gen, tmp_path):
    path = make_tiny_lora(tmp_path / "a14b-look.safetensors", seed=2, base_model="wan2.2-t2v-a14b")
    with pytest.raises(LoRAError) as exc:
        check_lora_fits(
            inspect_lora(path), tiny_gen.pipeline.transformer, _adapter(path, base_model=""), "tiny-wan2.2"
        )
    msg = str(exc.value)
    assert "a14b-look.safetensors" in msg
    assert "wan2.2-t2v-a14b" in msg and "tiny-wan2.2" in msg
    assert exc.value.fix


def test_declared_base_model_in_profile_must_match(tiny_gen, tmp_path):
    path = make_tiny_lora(tmp_path / "look.safetensors", seed=2)
    with pytest.raises(LoRAError, match="declared by the profile"):
        check_lora_fits(
            inspect_lora(path), tiny_gen.pipeline.transformer, _adapter(path, "wan2.1-t2v"), "tiny-wan2.2"
        )


def test_wrong_shapes_are_refused_before_diffusers(tiny_gen, tmp_path):
    path = make_tiny_lora(tmp_path / "wide.safetensors", seed=2, target_dims={"dim": 40, "ffn_dim": 72})
    with pytest.raises(LoRAError) as exc:
        check_lora_fits(inspect_lora(path), tiny_gen.pipeline.transformer, _adapter(path), "tiny-wan2.2")
    msg = str(exc.value)
    assert "wide.safetensors" in msg and "do not fit" in msg
    dim = TINY_DIMS["dim"]
    assert "blocks.0.attn1.to_k" in msg and f"{dim} -> {dim}" in msg


def test_missing_modules_are_refused(tiny_gen, tmp_path):
    path = make_tiny_lora(
        tmp_path / "deep.safetensors", seed=2, target_dims={"num_layers": TINY_DIMS["num_layers"] + 1}
    )
    missing = rf"blocks\.{TINY_DIMS['num_layers']}\.\S+`: no such module"
    with pytest.raises(LoRAError, match=missing):
        check_lora_fits(inspect_lora(path), tiny_gen.pipeline.transformer, _adapter(path), "tiny-wan2.2")


def test_lora_without_transformer_keys_is_refused(tiny_gen, tmp_path):
    path = tmp_path / "te.safetensors"
    save_file({"text_encoder.layer.0.lora_A.weight": torch.zeros(4, 32)}, str(path))
    with pytest.raises(LoRAError, match="no LoRA weights for the Wan transformer"):
        check_lora_fits(inspect_lora(path), tiny_gen.pipeline.transformer, _adapter(path), "tiny-wan2.2")


def _to_original_wan_format(src: Path, dst: Path) -> Path:
    """Rename diffusers keys to the original Wan repo's names (diffusion_model.*, lora_down/up)."""
    names = {
        "attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
        "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
        "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o",
        "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2",
    }  # fmt: skip
    out = {}
    for key, value in load_file(str(src)).items():
        key = key.removeprefix("transformer.").replace("lora_A", "lora_down").replace("lora_B", "lora_up")
        for new, old in names.items():
            key = key.replace(f".{new}.", f".{old}.")
        out[f"diffusion_model.{key}"] = value
    save_file(out, str(dst))
    return dst


def test_original_wan_key_format_is_converted_and_checked(tiny_gen, tmp_path):
    good = _to_original_wan_format(
        make_tiny_lora(tmp_path / "g.safetensors", seed=4), tmp_path / "g-orig.safetensors"
    )
    info = inspect_lora(good)
    assert info.key_format == "wan-original" and info.base_model is None and info.rank == 4
    check_lora_fits(info, tiny_gen.pipeline.transformer, _adapter(good), "tiny-wan2.2")

    wide = make_tiny_lora(tmp_path / "w.safetensors", seed=4, target_dims={"dim": 40, "ffn_dim": 72})
    bad = _to_original_wan_format(wide, tmp_path / "w-orig.safetensors")
    with pytest.raises(LoRAError, match="do not fit"):
        check_lora_fits(inspect_lora(bad), tiny_gen.pipeline.transformer, _adapter(bad), "tiny-wan2.2")


# ---------------------------------------------------------------- through WanGenerator


def test_generator_refuses_lora_for_other_base_model(tmp_path):
    path = make_tiny_lora(tmp_path / "a14b.safetensors", seed=2, base_model="wan2.2-t2v-a14b")
    with pytest.raises(LoRAError, match="trained for `wan2.2-t2v-a14b`.*loaded model is `tiny-wan2.2`"):
        WanGenerator("tiny", device="cpu", loras=[_adapter(path, base_model="wan2.2-t2v-a14b")])


def test_generator_refuses_wrong_shapes_with_lora_error(tmp_path):
    path = make_tiny_lora(tmp_path / "wide.safetensors", seed=2, target_dims={"dim": 40, "ffn_dim": 72})
    with pytest.raises(LoRAError, match="wide.safetensors") as exc:
        WanGenerator("tiny", device="cpu", loras=[_adapter(path)])
    assert exc.value.__cause__ is None  # ours, not a wrapped diffusers/peft traceback


def test_generator_refuses_pickle_lora(tmp_path):
    path = tmp_path / "style.pt"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(AssetError, match="style.pt"):
        WanGenerator("tiny", device="cpu", loras=[_adapter(path)])


def test_generator_refuses_duplicate_names(tmp_path):
    a = make_tiny_lora(tmp_path / "a.safetensors", seed=1)
    b = make_tiny_lora(tmp_path / "b.safetensors", seed=2)
    with pytest.raises(LoRAError, match="unique"):
        WanGenerator("tiny", device="cpu", loras=[_adapter(a), _adapter(b)])
