"""Real-ESRGAN-family upscalers: tiny random RRDBNet / SRVGGNetCompact saved like the official files
(.safetensors, .pth with params_ema / params), detected and loaded back, tiled == untiled, unsafe
files refused, and a render through a profile's [upscale] section, decoded."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from fixed_generators import with_motion
from helpers import decode_frames
from safetensors.torch import save_file

from brandstudio import BrandStudio, load_profile
from brandstudio.errors import AssetError
from brandstudio.post.sr import RealESRGAN, RRDBNet, SRVGGNetCompact, detect, inspect_weights, load_state_dict
from brandstudio.post.upscale import Upscale

RNG = np.random.default_rng(0)
FRAMES = RNG.integers(0, 256, (2, 13, 18, 3), dtype=np.uint8)  # odd sizes on purpose


def tiny_rrdb(scale: int) -> RRDBNet:
    torch.manual_seed(scale)
    return RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()


def tiny_srvgg(scale: int) -> SRVGGNetCompact:
    torch.manual_seed(10 + scale)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=scale).eval()
    with torch.no_grad():  # PReLU slopes other than the 0.25 default, so a wrong slope would show
        for m in net.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.05, 0.5)
    return net


def reference(net, frames: np.ndarray) -> np.ndarray:
    """The in-memory model on whole frames, as Real-ESRGAN's inference does (reflect pad for x2/x1)."""
    m = {2: 4, 1: 16}.get(getattr(net, "scale", 4), 1) if isinstance(net, RRDBNet) else 1
    m = int(m**0.5)
    out = []
    with torch.no_grad():
        for f in frames:
            x = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
            h, w = x.shape[2:]
            x = torch.nn.functional.pad(x, (0, (-w) % m, 0, (-h) % m), mode="reflect")
            y = net(x)
            s = y.shape[2] // x.shape[2]
            y = y[:, :, : h * s, : w * s]
            out.append((y[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    return np.stack(out)


NETS = [("rrdb", 4), ("rrdb", 2), ("rrdb", 1), ("srvgg", 4), ("srvgg", 2)]


@pytest.mark.parametrize("arch, scale", NETS)
@pytest.mark.parametrize("fmt", ["safetensors", "pth-params_ema", "pth-params"])
def test_saved_weights_are_detected_and_give_the_same_pixels(tmp_path, arch, scale, fmt):
    net = tiny_rrdb(scale) if arch == "rrdb" else tiny_srvgg(scale)
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(sd, str(path))
    else:
        path = tmp_path / "w.pth"
        torch.save({fmt.split("-")[1]: sd}, path)  # how the official Real-ESRGAN files are wrapped
    spec = inspect_weights(path)
    assert (spec.arch, spec.scale, spec.num_feat) == (arch, scale, 8)
    assert (spec.num_block, spec.num_grow_ch) == ((1, 4) if arch == "rrdb" else (0, 0))
    assert spec.num_conv == (2 if arch == "srvgg" else 0)
    model = RealESRGAN(path, tile=0, device="cpu")
    out = model.upscale(FRAMES)
    assert out.shape == (2, 13 * scale, 18 * scale, 3)
    assert np.array_equal(out, reference(net, FRAMES))


@pytest.mark.parametrize("arch, scale", [("rrdb", 2), ("srvgg", 4)])
def test_tiled_equals_untiled(tmp_path, arch, scale):
    net = tiny_rrdb(scale) if arch == "rrdb" else tiny_srvgg(scale)
    path = tmp_path / "w.safetensors"
    save_file(net.state_dict(), str(path))
    frames = RNG.integers(0, 256, (1, 30, 44, 3), dtype=np.uint8)
    whole = RealESRGAN(path, tile=0, device="cpu").upscale(frames)
    spec = detect(net.state_dict())
    tiled = RealESRGAN(path, tile=12, tile_pad=spec.receptive, device="cpu").upscale(frames)
    assert np.abs(whole.astype(int) - tiled).max() <= 1
    # too little context shows at the seams: the pad is what makes them vanish
    seamy = RealESRGAN(path, tile=12, tile_pad=0, device="cpu").upscale(frames)
    assert np.abs(whole.astype(int) - seamy).max() > 1


class Payload:
    """What a malicious checkpoint carries: unpickling it would call this code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class SystemPayload:
    """The classic payload: ``os.system`` (torch reports a blocked module, not an unsupported global)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [Payload, SystemPayload])
def test_pickle_with_code_is_refused_and_never_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        torch.save({"params": tiny_srvgg(2).state_dict(), "extra": payload(marker)}, fh, pickle_module=pickle)
    assert not marker.exists()
    with pytest.raises(AssetError, match="could run code") as err:
        load_state_dict(path)
    assert not marker.exists(), "the payload ran"
    assert "safetensors" in err.value.fix and "download" not in err.value.fix


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("w.ckpt", b"x", "not a weight format"),
        ("w.safetensors", b"garbage", "not a readable safetensors"),
        ("w.pth", b"garbage", "not a readable torch file"),
        # text: torch's unpickler raises KeyError / IndexError on these, not UnpicklingError
        ("w.pth", b"hello world this is text", "not a readable torch file"),
        ("w.pt", b"\x80\x02}q\x00X", "not a readable torch file"),
    ],
)
def test_bad_files_are_refused(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(AssetError, match=match):
        inspect_weights(tmp_path / name)


def test_other_state_dicts_are_refused(tmp_path):
    old = tmp_path / "old.safetensors"
    save_file({"model.0.weight": torch.zeros(4, 3, 3, 3)}, str(old))
    with pytest.raises(AssetError, match="old ESRGAN key layout"):
        inspect_weights(old)
    other = tmp_path / "other.pth"
    torch.save({"params": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(AssetError, match="fit no known upscaler"):
        inspect_weights(other)
    # a grey-scale model: valid keys, but the frames are RGB
    grey = tmp_path / "grey.safetensors"
    save_file(SRVGGNetCompact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2).state_dict(), str(grey))
    with pytest.raises(AssetError, match=r"reads 1 colour channel\(s\).*RGB"):
        inspect_weights(grey)
    # one inner layer of the wrong shape: named, with both shapes, before any render
    state = tiny_srvgg(2).state_dict()
    state["body.2.weight"] = torch.zeros(state["body.2.weight"].shape[0], 5, 3, 3)
    bent = tmp_path / "bent.safetensors"
    save_file(state, str(bent))
    with pytest.raises(AssetError, match=r"body\.2\.weight has shape \[\d+, 5, 3, 3\], the srvgg architecture needs"):
        inspect_weights(bent)


def test_upscale_registry_uses_the_model_then_lanczos_to_the_exact_size(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(tiny_srvgg(2).state_dict(), str(path))
    up = Upscale(40, 30, "realesrgan", weights=path, tile=8, tile_pad=4, device="cpu")
    assert up.apply(FRAMES).shape == (2, 30, 40, 3)
    exact = Upscale(36, 26, "realesrgan", weights=path, device="cpu").apply(FRAMES)
    assert np.array_equal(exact, reference(tiny_srvgg(2), FRAMES))  # x2 lands on the size: model output as is
    with pytest.raises(ValueError, match="weights"):
        Upscale(40, 30, "realesrgan")


def brightening_srvgg() -> SRVGGNetCompact:
    """A x2 SRVGG whose output is the nearest-upsampled input plus (+0.25, 0, -0.25): a visible colour shift."""
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        last = net.body[-1]
        last.bias.copy_(torch.tensor([0.25] * 4 + [0.0] * 4 + [-0.25] * 4))  # channel c * 4 + i -> colour c
    return net


class Grey:
    model_id = "stub-grey"

    def generate(self, spec):
        return with_motion(np.full((spec.num_frames, spec.height, spec.width, 3), 128, np.uint8))


def test_render_through_a_profile_with_a_tiny_srvgg(make_profile, tmp_path, monkeypatch):
    import io

    buf = io.BytesIO()
    torch.save({"params": brightening_srvgg().state_dict()}, buf)

    def edit(toml: str) -> str:  # no LUT (so grey stays grey), and the tiny model as the upscaler
        return toml.replace('lut = "luts/aurora-warm.cube"\n', "") + (
            '\n[upscale]\nmethod = "realesrgan"\nweights = "models/tiny-x2.pth"\ntile = 32\n'
        )

    root = make_profile(edit=edit, files={"models/tiny-x2.pth": buf.getvalue()})
    prof = load_profile(root)
    assert prof.assets["upscale.weights"].rel == "models/tiny-x2.pth"
    studio = BrandStudio(prof, output_dir=tmp_path, cache=False, generator=Grey(), device="cpu")
    r = studio.render("product-hero", product="Night Roast", aspect="1:1", duration=0.25, resolution=160,
                      seed=1, output=tmp_path / "sr.mp4")  # fmt: skip
    mean = decode_frames(r.path)[:, 60:100, 40:120].reshape(-1, 3).mean(0)  # clear of caption, logo, label
    # grey 128 footage (no LUT in this profile): Lanczos alone would keep 128; the model shifts red and blue
    assert abs(mean[0] - (128 + 64)) < 5 and abs(mean[1] - 128) < 5 and abs(mean[2] - (128 - 64)) < 5, mean


def test_profile_refuses_unsafe_weights_and_reads_the_env_path(make_profile, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    buf = tmp_path / "evil.pth"
    torch.save({"params": Payload(marker)}, buf)
    edit = lambda t: t + '\n[upscale]\nmethod = "realesrgan"\nweights = "models/evil.pth"\n'  # noqa: E731
    root = make_profile(edit=edit, files={"models/evil.pth": buf.read_bytes()})
    with pytest.raises(AssetError) as err:
        load_profile(root)
    assert err.value.field == "upscale.weights" and not marker.exists()
    bin_root = make_profile(edit=(lambda t: t + '\n[upscale]\nmethod = "realesrgan"\nweights = "models/x.bin"\n'),
                            files={"models/x.bin": b"x"}, name="bin")  # fmt: skip
    with pytest.raises(AssetError, match=r"loads `upscale.weights` as .safetensors, .pth, .pt because"):
        load_profile(bin_root)

    good = tmp_path / "user" / "x2.safetensors"
    good.parent.mkdir()
    save_file(tiny_srvgg(2).state_dict(), str(good))
    root = make_profile(edit=lambda t: t + '\n[upscale]\nmethod = "realesrgan"\n', name="env")
    monkeypatch.delenv("BRANDSTUDIO_SR_WEIGHTS", raising=False)
    with pytest.raises(AssetError, match="no weights"):
        load_profile(root)
    monkeypatch.setenv("BRANDSTUDIO_SR_WEIGHTS", str(good.with_name("typo.pth")))
    with pytest.raises(AssetError, match="typo.pth', which does not exist"):
        load_profile(root)
    monkeypatch.setenv("BRANDSTUDIO_SR_WEIGHTS", str(good))
    prof = load_profile(root)
    assert prof.path("upscale.weights") == good.resolve()
    assert prof.assets["upscale.weights"].sha256
