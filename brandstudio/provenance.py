"""C2PA content credentials on the delivered MP4 (c2pa-python), and reading them back.

Signing is the very last write to a clip: the render encodes the MP4 to a hidden staging
file beside the output, :func:`sign_mp4` embeds a signed C2PA manifest into a second
temp file, reads it back to check the signature and hashes, and only then moves it to the
output path with ``os.replace``. The output therefore appears only signed (or not at all).

The manifest (:func:`render_manifest`) holds:

* ``claim_generator_info``: ``brandstudio`` and its version;
* ``c2pa.actions``: ``c2pa.created`` with the IPTC digital source type
  ``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` (whatever the
  region: even a clip with no visible label says it is AI-generated);
* ``com.brandstudio.render``: profile id, version and fingerprint, model id, seed,
  template, aspect, region and the visible label.

**The signer** is a PEM certificate chain (leaf first, then intermediates; not the root)
and the leaf's PEM private key, found in this order:

1. ``$BRANDSTUDIO_C2PA_CERT`` and ``$BRANDSTUDIO_C2PA_KEY``: file paths, each taking
   precedence over the profile's (the deployment's identity; keeps keys out of git);
2. ``[provenance] cert`` / ``key``: files inside the profile (hashed into the fingerprint
   like every asset; a private key in a versioned profile is a smell: prefer the env).

``$BRANDSTUDIO_C2PA_ALG`` / ``[provenance] alg`` (``es256`` default; ``es384``, ``es512``,
``ps256``..``ps512``, ``ed25519``) must match the key. ``[provenance] tsa_url`` adds an RFC
3161 timestamp (network!); there is none by default, so signing works offline.
``[provenance] signing``: ``"auto"`` signs when a signer is configured and records
``{"signed": false, "reason": ...}`` otherwise; ``"required"`` refuses to render (before
generating anything) without a signer; ``"off"`` never signs.

The leaf certificate needs what C2PA asks of a claim signer: not a CA, ``digitalSignature``
key usage and an extended key usage such as ``emailProtection``, ``documentSigning`` or the
C2PA claim-signing OID. A certificate a reader does not trust still verifies (the reader
reports ``signingCredential.untrusted`` and state ``Valid``); with its root as a trust
anchor the state is ``Trusted``.

Example:
    >>> from brandstudio.provenance import render_manifest
    >>> m = render_manifest(title="clip.mp4", render={"seed": 7})
    >>> m["assertions"][0]["data"]["actions"][0]["digitalSourceType"].rsplit("/", 1)[-1]
    'trainedAlgorithmicMedia'
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import MissingDependency, ProvenanceError
from .files import temp_path
from .post.marks import DIGITAL_SOURCE_TYPE
from .registry import SIGNING_ALGORITHMS

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "ENV_ALG",
    "ENV_CERT",
    "ENV_KEY",
    "RENDER_ASSERTION",
    "SignerConfig",
    "check",
    "load_signer",
    "read_credentials",
    "render_manifest",
    "resolve_signer",
    "sign_mp4",
    "sign_render",
    "staging_path",
]

ENV_CERT = "BRANDSTUDIO_C2PA_CERT"
ENV_KEY = "BRANDSTUDIO_C2PA_KEY"
ENV_ALG = "BRANDSTUDIO_C2PA_ALG"
#: label of brandstudio's own assertion in the manifest
RENDER_ASSERTION = "com.brandstudio.render"
_UNTRUSTED = "signingCredential.untrusted"
_ALGS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
for _alg in _ALGS:
    SIGNING_ALGORITHMS.register(_alg, _alg)


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise MissingDependency(
            "C2PA signing needs the package `c2pa-python`, which is not installed",
            field="provenance",
            fix='pip install c2pa-python (a core dependency of brandstudio), or set `[provenance] signing = "off"`',
        ) from None
    return c2pa


@dataclass(frozen=True)
class SignerConfig:
    """A checked signer: PEM chain and key, algorithm, optional TSA, and where each came from."""

    cert_pem: bytes
    key_pem: bytes
    alg: str
    tsa_url: str | None
    cert_source: str  # "$BRANDSTUDIO_C2PA_CERT" or "profile:certs/chain.pem"
    key_source: str
    subject: str
    issuer: str
    not_after: str

    def __repr__(self) -> str:  # never print the key
        return f"SignerConfig(subject={self.subject!r}, alg={self.alg!r}, cert={self.cert_source!r})"

    def summary(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "alg": self.alg,
            "not_after": self.not_after,
            "cert": self.cert_source,
            "key": self.key_source,
            "tsa_url": self.tsa_url,
        }


def _read(path: Path, what: str, source: str, profile: str | None) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ProvenanceError(
            f"cannot read the C2PA {what} {str(path)!r} ({exc.strerror or exc})",
            profile=profile,
            file=str(path),
            field=source,
            fix=f"point {source} at a readable PEM file",
        ) from None


def load_signer(
    cert: str | Path | bytes,
    key: str | Path | bytes,
    *,
    alg: str = "es256",
    tsa_url: str | None = None,
    cert_source: str = "cert",
    key_source: str = "key",
    profile: str | None = None,
) -> SignerConfig:
    """Read and check a PEM chain and key (paths or PEM bytes): they parse, match, suit ``alg``, are in date.

    Raises :class:`~brandstudio.errors.ProvenanceError` saying which file is wrong and how.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    cert_pem = (
        cert if isinstance(cert, bytes) else _read(Path(cert), "certificate chain", cert_source, profile)
    )
    key_pem = key if isinstance(key, bytes) else _read(Path(key), "private key", key_source, profile)
    alg = alg.lower()
    if alg not in _ALGS:
        raise ProvenanceError(
            f"unknown C2PA signing algorithm {alg!r}", profile=profile, field="provenance.alg", value=alg,
            fix=f"use one of {', '.join(_ALGS)}",
        )  # fmt: skip
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ProvenanceError(
            f"the C2PA certificate chain is not PEM certificates: {exc}",
            profile=profile, field=cert_source,
            fix="give a PEM file with the signing certificate first, then its intermediates",
        ) from None  # fmt: skip
    try:
        key_obj = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ProvenanceError(
            "the C2PA private key is encrypted; brandstudio cannot prompt for a passphrase",
            profile=profile, field=key_source,
            fix="store an unencrypted PKCS#8 key in a secret store (openssl pkey -in enc.pem -out key.pem) "
            f"and point ${ENV_KEY} at it",
        ) from None  # fmt: skip
    except ValueError as exc:
        raise ProvenanceError(
            f"the C2PA private key is not a PEM private key: {exc}", profile=profile, field=key_source,
            fix="give the PEM private key of the signing certificate",
        ) from None  # fmt: skip
    leaf = chain[0]
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(der, spki) != key_obj.public_key().public_bytes(der, spki):
        raise ProvenanceError(
            "the C2PA private key does not belong to the first certificate of the chain",
            profile=profile, field=key_source,
            fix="put the signing (leaf) certificate first in the chain and give its own key",
        )  # fmt: skip
    curves = {"es256": "secp256r1", "es384": "secp384r1", "es512": "secp521r1"}
    fits = (
        (
            alg in curves
            and isinstance(key_obj, ec.EllipticCurvePrivateKey)
            and key_obj.curve.name == curves[alg]
        )
        or (alg.startswith("ps") and isinstance(key_obj, rsa.RSAPrivateKey))
        or (alg == "ed25519" and isinstance(key_obj, ed25519.Ed25519PrivateKey))
    )
    if not fits:
        kind = type(key_obj).__name__.removeprefix("_").replace("PrivateKey", "")
        curve = getattr(getattr(key_obj, "curve", None), "name", "")
        raise ProvenanceError(
            f"the signing algorithm {alg!r} does not fit the key ({kind} {curve})".replace(" )", ")"),
            profile=profile, field="provenance.alg", value=alg,
            fix="es256/es384/es512 need an EC P-256/P-384/P-521 key, ps256..ps512 an RSA key, ed25519 an Ed25519 key",
        )  # fmt: skip
    now = _dt.datetime.now(_dt.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise ProvenanceError(
            f"the C2PA signing certificate is not valid now (valid {leaf.not_valid_before_utc:%Y-%m-%d} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%d})",
            profile=profile, field=cert_source, fix="renew the signing certificate",
        )  # fmt: skip
    return SignerConfig(
        cert_pem=cert_pem,
        key_pem=key_pem,
        alg=alg,
        tsa_url=tsa_url,
        cert_source=cert_source,
        key_source=key_source,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc.isoformat(),
    )


def check(brief, profile) -> None:
    """Before any work: a profile that requires signing has a usable signer (see :func:`resolve_signer`)."""
    resolve_signer(profile)


def resolve_signer(profile) -> SignerConfig | None:
    """The profile's signer (env first, then ``[provenance]``), or ``None`` when none is configured.

    Raises :class:`~brandstudio.errors.ProvenanceError` when ``signing = "required"`` and
    there is no signer, when only one of certificate and key is given, or when they are bad.
    """
    spec = profile.spec.provenance
    pid = profile.id
    if spec.signing == "off":
        return None
    cert = key = None
    if os.environ.get(ENV_CERT):
        cert, cert_source = Path(os.environ[ENV_CERT]).expanduser(), f"${ENV_CERT}"
    elif spec.cert:
        cert, cert_source = profile.path("provenance.cert"), f"profile:{spec.cert}"
    if os.environ.get(ENV_KEY):
        key, key_source = Path(os.environ[ENV_KEY]).expanduser(), f"${ENV_KEY}"
    elif spec.key:
        key, key_source = profile.path("provenance.key"), f"profile:{spec.key}"
    if cert is None and key is None:
        if spec.signing == "required":
            raise ProvenanceError(
                "this profile requires C2PA-signed clips, but no signer is configured",
                profile=pid, file="brand.toml", field="provenance.signing", value="required",
                fix=f"set ${ENV_CERT} and ${ENV_KEY} to a PEM certificate chain and its private key "
                "(or name them in [provenance] cert/key); nothing was rendered",
            )  # fmt: skip
        return None
    if cert is None or key is None:
        missing = (
            f"${ENV_CERT} (or [provenance] cert)" if cert is None else f"${ENV_KEY} (or [provenance] key)"
        )
        raise ProvenanceError(
            f"a C2PA signer needs a certificate chain and a private key; {missing} is missing",
            profile=pid, field="provenance", fix=f"set {missing}, or unset the other half",
        )  # fmt: skip
    alg = os.environ.get(ENV_ALG) or spec.alg
    return load_signer(
        cert, key, alg=alg, tsa_url=spec.tsa_url, cert_source=cert_source, key_source=key_source, profile=pid
    )


def render_manifest(*, title: str, render: dict[str, Any]) -> dict[str, Any]:
    """The C2PA manifest definition of a rendered clip (see the module docstring)."""
    return {
        "claim_generator_info": [{"name": "brandstudio", "version": __version__}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": "brandstudio", "version": __version__},
                        }
                    ]
                },
            },
            {"label": RENDER_ASSERTION, "data": dict(render)},
        ],
    }


#: the media type C2PA signs each container as
_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}


def staging_path(out: str | Path) -> Path:
    """A fresh hidden name beside ``out`` for the unsigned MP4 (``.NAME.unsigned.<random>.mp4``).

    Nothing is created: the encoder writes it (atomically) and :func:`sign_render` removes it,
    so a render that fails before signing leaves no file behind.
    """

    out = Path(out)
    return out.parent / f".{out.stem}.unsigned.{uuid.uuid4().hex[:12]}{out.suffix or '.mp4'}"


def sign_mp4(
    src: str | Path, dest: str | Path, manifest: dict, signer: SignerConfig, *, profile=None
) -> dict:
    """Embed a signed C2PA manifest into the MP4 ``src`` and write it to ``dest`` atomically.

    ``dest`` appears only when the signed file was written *and* read back intact (signature
    and hashes valid; an untrusted root is fine). ``src`` is left in place. Returns the
    record a render keeps: ``{"signed": True, "manifest", "signer", "alg", ...}``.
    """
    c2pa = _c2pa()
    src, dest = Path(src), Path(dest)
    t0 = time.perf_counter()
    tmp = temp_path(dest, ".signed" + (dest.suffix or ".mp4"))
    mime = _MIME.get(dest.suffix.lower(), "video/mp4")
    try:
        try:
            sig = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(signer.alg.encode(), signer.cert_pem, signer.key_pem,
                                    signer.tsa_url.encode() if signer.tsa_url else None)
            )  # fmt: skip
            with c2pa.Builder(manifest) as builder, open(src, "rb") as fin, open(tmp, "w+b") as fout:
                builder.sign(sig, mime, fin, fout)
                fout.flush()
                os.fsync(fout.fileno())
        except c2pa.C2paError as exc:
            raise ProvenanceError(
                f"C2PA signing of {dest.name} failed: {exc}",
                profile=profile, file=str(dest), field=signer.cert_source,
                fix="check that the certificate suits C2PA (leaf not a CA, digitalSignature key usage, "
                "emailProtection/documentSigning EKU) and that its chain is complete; nothing was written",
            ) from None  # fmt: skip
        check = read_credentials(tmp)
        if not check["signed"] or not check["intact"]:
            raise ProvenanceError(
                f"the freshly signed {dest.name} does not verify: {check.get('failures')}",
                profile=profile, file=str(dest), fix="report this as a bug; nothing was written",
            )  # fmt: skip
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "signed": True,
        "standard": "C2PA",
        "manifest": check["manifest"],
        "digital_source_type": check["digital_source_type"],
        "signer": signer.subject,
        "issuer": signer.issuer,
        "alg": signer.alg,
        "cert": signer.cert_source,
        "timestamp": bool(signer.tsa_url),
        "seconds": round(time.perf_counter() - t0, 4),
    }


def sign_render(
    staged: Path | None,
    out: Path,
    signer: SignerConfig | None,
    *,
    profile,
    model: str,
    seed: int,
    template: str,
    aspect: str,
    label: str | None,
    sidecars: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The render's provenance step, which publishes the clip: sign ``staged`` into ``out``, or
    (no signer) move it there unsigned and say why.

    ``staged`` (the finished, unsigned MP4 beside ``out``) is gone either way; on a failure the
    render's ``sidecars`` (its ``.srt``) are removed too, so nothing of the clip is left.
    """
    if signer is None:
        why = (
            "signing is off ([provenance] signing)"
            if profile.spec.provenance.signing == "off"
            else (f"no C2PA signer configured (set ${ENV_CERT} and ${ENV_KEY}, or [provenance] cert/key)")
        )
        if staged is not None:
            try:
                os.replace(staged, out)  # same folder: the clip appears whole, at once
            except BaseException:
                staged.unlink(missing_ok=True)
                for p in sidecars:
                    p.unlink(missing_ok=True)
                raise
        return {"signed": False, "reason": why}
    spec = profile.spec
    render = {
        "profile": profile.id,
        "profile_version": spec.brand.version,
        "profile_fingerprint": profile.fingerprint,
        "model": model,
        "seed": seed,
        "template": template,
        "aspect": aspect,
        "region": spec.brand.region,
        "label": label,
    }
    try:
        return sign_mp4(
            staged, out, render_manifest(title=out.name, render=render), signer, profile=profile.id
        )
    except BaseException:
        for p in sidecars:
            p.unlink(missing_ok=True)
        raise
    finally:
        staged.unlink(missing_ok=True)


def read_credentials(path: str | Path, *, trust_anchors: str | Path | bytes | None = None) -> dict[str, Any]:
    """Read and validate the C2PA manifest of ``path`` (offline: no OCSP, no remote manifests).

    Returns ``{"signed": False}`` for a file without credentials, else::

        {"signed": True, "state": "Valid" | "Trusted" | "Invalid", "intact": bool, "trusted": bool,
         "failures": [{"code", "explanation"}, ...], "manifest", "title", "claim_generator",
         "digital_source_type", "actions", "render": {...}, "signer": {...}}

    ``intact`` means the signature and every hash check out (an untrusted signing
    certificate is allowed); ``trusted`` that the chain leads to one of ``trust_anchors``
    (PEM roots: a path or bytes).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from brandstudio.encode import write_mp4
        >>> clip = write_mp4(np.zeros((2, 16, 16, 3), np.uint8), 8, os.path.join(tempfile.mkdtemp(), "a.mp4"))
        >>> read_credentials(clip)
        {'signed': False}
    """
    c2pa = _c2pa()
    path = Path(path)
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors is not None:
        if isinstance(trust_anchors, bytes):
            pem = trust_anchors
        else:
            pem = _read(Path(trust_anchors), "trust anchors", "--trust", None)
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise ProvenanceError(
                "the trust anchors are not PEM certificates", file=str(trust_anchors)[:200],
                fix="pass a PEM file of root certificates (-----BEGIN CERTIFICATE-----)",
            )  # fmt: skip
        settings["trust"] = {"trust_anchors": pem.decode("ascii", "replace")}
    try:
        ctx = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
        with c2pa.Reader(str(path), context=ctx) as reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError.ManifestNotFound:
        return {"signed": False}
    except c2pa.C2paError as exc:
        raise ProvenanceError(
            f"could not read the C2PA credentials of {path.name}: {exc}",
            file=str(path), fix="pass an MP4 file (signed or not)",
        ) from None  # fmt: skip
    failures = [
        {"code": f.get("code"), "explanation": f.get("explanation", "")}
        for f in (results.get("activeManifest") or {}).get("failure", [])
    ]
    assertions = {a.get("label"): a.get("data") for a in active.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions", [])
    created = next((a for a in actions if a.get("action") == "c2pa.created"), {})
    gen = (active.get("claim_generator_info") or [{}])[0]
    sig = active.get("signature_info") or {}
    return {
        "signed": True,
        "state": state,
        "intact": state in ("Valid", "Trusted") and all(f["code"] == _UNTRUSTED for f in failures),
        "trusted": state == "Trusted",
        "failures": failures,
        "manifest": active.get("label"),
        "title": active.get("title"),
        "claim_generator": f"{gen.get('name', '')} {gen.get('version', '')}".strip(),
        "digital_source_type": created.get("digitalSourceType"),
        "actions": [a.get("action") for a in actions],
        "render": assertions.get(RENDER_ASSERTION),
        "signer": {
            "common_name": sig.get("common_name"),
            "issuer": sig.get("issuer"),
            "alg": sig.get("alg"),
            "serial": sig.get("cert_serial_number"),
        },
    }
