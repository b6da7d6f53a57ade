"""C2PA content credentials: a throwaway CA signs rendered clips; c2pa's own Reader verifies them.

The CA chain (root -> intermediate -> leaf, ES256, leaf with the emailProtection EKU C2PA
accepts) is made here with `cryptography`, never downloaded. Renders swap the video model
for flat grey footage (fast); the CLI test runs the real tiny model.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import c2pa
import numpy as np
import pytest
from fixed_generators import FlatGenerator
from helpers import PROFILES, decode_frames, moov_before_mdat, probe
from typer.testing import CliRunner

from brandstudio import BrandStudio
from brandstudio.cli import app
from brandstudio.errors import ProvenanceError
from brandstudio.post.marks import DIGITAL_SOURCE_TYPE
from brandstudio.provenance import ENV_CERT, ENV_KEY, RENDER_ASSERTION, load_signer, read_credentials

KW = {"product": "Night Roast", "aspect": "16:9", "duration": 1.0, "resolution": 144, "seed": 5}


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(folder, *, leaf_eku: bool = True, name: str = "brandstudio test signer"):
    """root CA -> intermediate CA -> leaf signer (ES256); writes root.pem, chain.pem (leaf + intermediate), key.pem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def subject(cn):
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test"),
            ]
        )

    def cert(cn, key, issuer_cn, issuer_key, *, ca, pathlen=None):
        b = (
            x509.CertificateBuilder().subject_name(subject(cn)).issuer_name(subject(issuer_cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                         encipher_only=False, decipher_only=False), critical=True)
        )  # fmt: skip
        if not ca and leaf_eku:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    rk, ik, lk = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = cert("test root", rk, "test root", rk, ca=True, pathlen=1)
    inter = cert("test intermediate", ik, "test root", rk, ca=True, pathlen=0)
    leaf = cert(name, lk, "test intermediate", ik, ca=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "root.pem").write_bytes(_pem_cert(root))
    (folder / "chain.pem").write_bytes(_pem_cert(leaf) + _pem_cert(inter))
    (folder / "key.pem").write_bytes(_pem_key(lk))
    return folder


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def env_signer(ca, monkeypatch):
    monkeypatch.setenv(ENV_CERT, str(ca / "chain.pem"))
    monkeypatch.setenv(ENV_KEY, str(ca / "key.pem"))
    return ca


@pytest.fixture(autouse=True)
def no_ambient_signer(monkeypatch):
    monkeypatch.delenv(ENV_CERT, raising=False)
    monkeypatch.delenv(ENV_KEY, raising=False)


@pytest.fixture(scope="module")
def signed(ca, tmp_path_factory):
    """An EU clip rendered through the render path with the env signer."""
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV_CERT, str(ca / "chain.pem"))
    mp.setenv(ENV_KEY, str(ca / "key.pem"))
    try:
        folder = tmp_path_factory.mktemp("signed")
        studio = BrandStudio(PROFILES / "aurora-coffee", generator=FlatGenerator(), cache=False)
        result = studio.render("product-hero", output=folder / "clip.mp4", **KW)
    finally:
        mp.undo()
    return studio, result


def manifest_of(path, **kw):
    settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if "anchors" in kw:
        settings["trust"] = {"trust_anchors": kw["anchors"]}
    ctx = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
    with c2pa.Reader(str(path), context=ctx) as reader:
        return reader.get_active_manifest(), reader.get_validation_state(), reader.get_validation_results()


def test_render_signs_the_clip_and_the_c2pa_reader_verifies_it(signed, ca):
    studio, r = signed
    assert r.provenance["signed"] is True and r.provenance["alg"] == "es256"
    assert "brandstudio test signer" in r.provenance["signer"] and r.provenance["cert"] == f"${ENV_CERT}"
    manifest, state, results = manifest_of(r.path)
    assert manifest["label"] == r.provenance["manifest"]
    assert manifest["claim_generator_info"][0]["name"] == "brandstudio"
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    created = [a for a in assertions["c2pa.actions.v2"]["actions"] if a["action"] == "c2pa.created"]
    assert created and created[0]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    render = assertions[RENDER_ASSERTION]
    assert render["profile_fingerprint"] == studio.profile.fingerprint == r.profile_fingerprint
    assert (render["model"], render["seed"], render["template"]) == ("flat", 5, "product-hero")
    assert (render["profile"], render["region"], render["label"]) == (
        "aurora-coffee",
        "eu",
        "AI-generated content",
    )
    # the signature and the hashes check out; only the (throwaway) root is unknown to the reader
    assert state == "Valid"
    failures = [f["code"] for f in results["activeManifest"]["failure"]]
    assert failures == ["signingCredential.untrusted"]
    codes = {s["code"] for s in results["activeManifest"]["success"]}
    assert {"claimSignature.validated", "assertion.bmffHash.match"} <= codes
    # with the test root as a trust anchor the credential is trusted, and nothing fails
    _, state, results = manifest_of(r.path, anchors=(ca / "root.pem").read_text())
    assert state == "Trusted" and results["activeManifest"]["failure"] == []
    # still a normal MP4: decodes, faststart, brandstudio's tags kept
    info = probe(r.path)
    assert len(decode_frames(r.path)) == 16 and info["audio_codec"] == "aac" and moov_before_mdat(r.path)
    assert json.loads(info["metadata"]["comment"])["ai_generated"] is True
    assert [p.name for p in r.path.parent.iterdir() if ".unsigned." in p.name or ".part" in p.name] == []
    assert json.loads(r.path.with_suffix(".json").read_text())["provenance"]["signed"] is True


def test_a_changed_byte_in_mdat_is_a_hash_mismatch(signed, tmp_path):
    _, r = signed
    data = bytearray(r.path.read_bytes())
    mdat = data.find(b"mdat")
    assert mdat > 0
    data[mdat + 200] ^= 0x01
    bad = tmp_path / "tampered.mp4"
    bad.write_bytes(bytes(data))
    _, state, results = manifest_of(bad)
    codes = [f["code"] for f in results["activeManifest"]["failure"]]
    assert state == "Invalid" and "assertion.bmffHash.mismatch" in codes
    summary = read_credentials(bad)
    assert summary["signed"] and not summary["intact"]


def test_region_none_has_no_visible_label_but_the_credential_says_ai(env_signer, make_profile, tmp_path):
    prof = make_profile("aurora-coffee", edit=lambda t: t.replace('region = "eu"', 'region = "none"'))
    r = BrandStudio(prof, generator=FlatGenerator(), cache=False).render(
        "product-hero", output=tmp_path / "n.mp4", **KW
    )
    assert r.label is None
    summary = read_credentials(r.path)
    assert summary["intact"] and summary["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert summary["render"]["region"] == "none" and summary["actions"] == ["c2pa.created"]


def test_signer_named_by_the_profile_is_an_asset(ca, make_profile, tmp_path):
    files = {"c2pa/chain.pem": (ca / "chain.pem").read_bytes(), "c2pa/key.pem": (ca / "key.pem").read_bytes()}
    prof = make_profile(
        "aurora-coffee", files=files,
        edit=lambda t: t + '\n[provenance]\nsigning = "required"\ncert = "c2pa/chain.pem"\nkey = "c2pa/key.pem"\n',
    )  # fmt: skip
    studio = BrandStudio(prof, generator=FlatGenerator(), cache=False)
    assert {"provenance.cert", "provenance.key"} <= set(studio.profile.assets)
    r = studio.render("product-hero", output=tmp_path / "p.mp4", **KW)
    assert r.provenance["signed"] and r.provenance["cert"] == "profile:c2pa/chain.pem"
    assert read_credentials(r.path, trust_anchors=ca / "root.pem")["trusted"]


def test_required_without_a_signer_fails_before_generating(make_profile, tmp_path):
    prof = make_profile("aurora-coffee", edit=lambda t: t + '\n[provenance]\nsigning = "required"\n')
    gen = FlatGenerator()
    with pytest.raises(ProvenanceError) as info:
        BrandStudio(prof, output_dir=tmp_path / "out", generator=gen, cache=False).render(
            "product-hero", **KW
        )
    assert gen.calls == 0 and not (tmp_path / "out").exists()
    assert info.value.field == "provenance.signing" and ENV_CERT in info.value.fix


def test_unsigned_by_default_says_why(tmp_path):
    r = BrandStudio(PROFILES / "aurora-coffee", generator=FlatGenerator(), cache=False).render(
        "product-hero", output=tmp_path / "u.mp4", **KW
    )
    assert r.provenance["signed"] is False and ENV_CERT in r.provenance["reason"]
    assert read_credentials(r.path) == {"signed": False}


def test_bad_signers_are_clear_errors_and_leave_nothing(ca, tmp_path, monkeypatch):
    other = make_ca(tmp_path / "other")
    with pytest.raises(ProvenanceError, match="does not belong"):
        load_signer(ca / "chain.pem", other / "key.pem")
    with pytest.raises(ProvenanceError, match="does not fit the key"):
        load_signer(ca / "chain.pem", ca / "key.pem", alg="ps256")
    with pytest.raises(ProvenanceError, match="not PEM certificates"):
        load_signer(ca / "key.pem", ca / "key.pem")
    out = tmp_path / "out"
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=out, generator=FlatGenerator(), cache=False)
    monkeypatch.setenv(ENV_CERT, str(ca / "chain.pem"))
    with pytest.raises(ProvenanceError, match=ENV_KEY):  # half a signer
        studio.render("product-hero", **KW)
    # a chain c2pa refuses at signing time (leaf without a C2PA extended key usage): nothing is left
    weak = make_ca(tmp_path / "weak", leaf_eku=False)
    monkeypatch.setenv(ENV_CERT, str(weak / "chain.pem"))
    monkeypatch.setenv(ENV_KEY, str(weak / "key.pem"))
    with pytest.raises(ProvenanceError, match="C2PA signing of clip.mp4 failed") as info:
        studio.render("product-hero", output=out / "clip.mp4", **KW)
    assert "Traceback" not in str(info.value)
    assert sorted(p.name for p in out.iterdir()) == []  # no mp4, no staged file, no .srt


@pytest.mark.slow
def test_cli_render_signs_and_verify_reports(ca, tmp_path, monkeypatch):
    """The real path from the command line: tiny model, default [safety] (the demo footage passes), signed."""
    monkeypatch.setenv(ENV_CERT, str(ca / "chain.pem"))
    monkeypatch.setenv(ENV_KEY, str(ca / "key.pem"))
    runner = CliRunner()
    clip = tmp_path / "cli.mp4"
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=Night Roast",
                              "-a", "16:9", "--duration", "0.25", "--resolution", "144", "--seed", "1",
                              "-o", str(clip), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["provenance"]["signed"] is True and data["model_id"] == "tiny"
    assert not [v for v in data["safety"] if v["rule"].startswith("nsfw:")]
    res = runner.invoke(app, ["verify", str(clip), "--trust", str(ca / "root.pem"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (
        summary["ok"]
        and summary["trusted"]
        and summary["render"]["model"] == "tiny"
        and summary["render"]["seed"] == 1
    )
    res = runner.invoke(app, ["verify", str(clip)])
    assert res.exit_code == 0 and "trainedAlgorithmicMedia" in res.stdout and "untrusted" in res.stdout
    data = bytearray(clip.read_bytes())
    data[data.find(b"mdat") + 64] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    res = runner.invoke(app, ["verify", str(bad)])
    assert res.exit_code == 1 and "bmffHash.mismatch" in res.stdout and "FAILED" in res.stdout
    unsigned = tmp_path / "plain.mp4"
    from brandstudio.encode import write_mp4

    write_mp4(np.zeros((4, 16, 16, 3), np.uint8), 8, unsigned)
    res = runner.invoke(app, ["verify", str(unsigned)])
    assert res.exit_code == 1 and "no C2PA credentials" in res.stdout
    res = runner.invoke(app, ["verify", str(tmp_path / "missing.mp4")])
    assert res.exit_code == 2 and "no such clip" in res.output and "Traceback" not in res.output


def test_the_prores_master_is_signed_as_quicktime_and_verifies(env_signer, make_profile, tmp_path):
    """The editors' master (ProRes in .mov) carries the same credential as the MP4s."""
    profile = make_profile(edit=lambda t: t + '\n[[deliveries]]\nname = "master"\npreset = "mezzanine"\nresolution = 96\n')
    studio = BrandStudio(profile, generator=FlatGenerator(), cache=False, output_dir=tmp_path / "out")
    result = studio.render("product-hero", deliveries=["master"], **KW)
    master = Path(result.deliveries[0]["path"])
    assert master.suffix == ".mov" and result.deliveries[0]["provenance"]["signed"] is True
    manifest, state, _ = manifest_of(master)
    assert state == "Valid" and manifest["claim_generator_info"][0]["name"] == "brandstudio"
    assert probe(master)["video_codec"] == "prores"
    assert [p.name for p in master.parent.iterdir() if ".unsigned." in p.name or ".part" in p.name] == []
