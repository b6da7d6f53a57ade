"""Load a brand profile: parse ``brand.toml``, validate it once, resolve, check and hash every asset.

The result is a frozen :class:`BrandProfile` whose ``fingerprint`` is a SHA-256 over the
validated settings and the hash of every asset, so a clip can be traced back to the exact
profile that made it.

Paths in ``brand.toml`` are relative to the profile directory and must stay inside it
(``../`` and symlinks that lead out are refused). Each asset is opened the way the
render will open it (the LUT parsed, the font and logo decoded, the music decoded, the
LoRA header read), so a broken profile fails here, before anything is generated.

Example:
    >>> from brandstudio import load_profile
    >>> profile = load_profile("brand_profiles/aurora-coffee")   # doctest: +SKIP
    >>> profile.id, profile.fingerprint[:12]                     # doctest: +SKIP
    ('aurora-coffee', '5f0c2a9d41b7')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from ..errors import AssetError, BrandStudioError, ProfileError, ProfileNotFound, error_context
from ..files import check_user_file, read_toml, sha256_file
from .assets import asset_check
from .schema import BrandProfileSpec

__all__ = ["PROFILE_FILE", "Asset", "BrandProfile", "load_profile"]

PROFILE_FILE = "brand.toml"
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}


@dataclass(frozen=True)
class Asset:
    """One file named by the profile, resolved and hashed."""

    field: str  # e.g. "colour.lut", "style.loras[0].file", "audio.tracks[1]"
    rel: str  # as written in brand.toml
    path: Path  # absolute, inside the profile
    sha256: str
    size: int


@dataclass(frozen=True)
class BrandProfile:
    """A validated brand profile: settings, resolved assets and fingerprint."""

    root: Path
    spec: BrandProfileSpec
    assets: Mapping[str, Asset] = field(repr=False)
    fingerprint: str

    @property
    def id(self) -> str:
        return self.spec.brand.id

    @property
    def name(self) -> str:
        return self.spec.brand.name

    def path(self, field_name: str) -> Path:
        """The absolute path of the asset named by ``field_name`` (e.g. ``"colour.lut"``)."""
        return self.assets[field_name].path

    def with_overrides(self, overrides: Mapping[str, object]) -> BrandProfile:
        """A copy with settings replaced by dotted name, validated, assets re-resolved, new fingerprint.

        ``profile.with_overrides({"output.reframe": "face", "colour.match": "reinhard"})``;
        ``None`` values are skipped. Raises :class:`ProfileError` for an unknown name or a bad value.
        """
        data = self.spec.model_dump(mode="python", exclude_unset=True, by_alias=True)
        changed = False
        for name, value in overrides.items():
            if value is None:
                continue
            *parents, leaf = name.split(".")
            node = data
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ProfileError(f"cannot override `{name}`", profile=self.id, field=name, value=value)
            node[leaf] = value
            changed = True
        if not changed:
            return self
        try:
            spec = BrandProfileSpec.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):  # the override's own value, not brand.toml, is wrong
                where = _where(err)
                name = next((n for n in overrides if overrides[n] is not None and where.startswith(n)), None)
                if name is not None:
                    msg = err["msg"].removeprefix("Value error, ")
                    raise ProfileError(
                        f"the override `{name}` = {overrides[name]!r} is invalid: {msg}",
                        profile=self.id,
                        field=name,
                        value=overrides[name],
                        fix=f"pass a value `{name}` accepts (brand.toml is unchanged and fine)",
                    ) from None
            raise _validation_error(exc, self.id) from None
        assets = _resolve_assets(self.root, spec, self.id)
        return BrandProfile(self.root, spec, MappingProxyType(assets), _fingerprint(spec, assets))

    def summary(self) -> dict:
        """A JSON-ready description: settings, assets with hashes, fingerprint."""
        return {
            "id": self.id,
            "name": self.name,
            "root": str(self.root),
            "fingerprint": self.fingerprint,
            "settings": self.spec.model_dump(mode="json"),
            "assets": {
                k: {"file": a.rel, "sha256": a.sha256, "bytes": a.size} for k, a in self.assets.items()
            },
        }


def load_profile(path: str | Path) -> BrandProfile:
    """Load and validate the profile directory ``path`` (or its ``brand.toml``).

    Raises:
        ProfileNotFound: the directory or its brand.toml does not exist.
        ProfileError: brand.toml is not valid TOML or does not match the schema.
        AssetError: an asset is missing, corrupt, unsafe or outside the profile.
    """
    root = Path(path)
    if "\x00" in str(root):
        raise ProfileNotFound(
            f"the profile path {str(root)!r} contains a null byte",
            value=str(root),
            fix="remove the NUL character (\\x00) from the path",
        )
    if root.name == PROFILE_FILE and not root.is_dir():
        root = root.parent
    label = root.name or str(root)
    if not root.is_dir():
        raise ProfileNotFound(
            f"brand profile directory not found: {root}",
            profile=label,
            fix="pass the path of a directory that holds a brand.toml (e.g. brand_profiles/aurora-coffee)",
        )
    root = root.resolve()
    toml_path = root / PROFILE_FILE
    if not os.path.lexists(toml_path):
        raise ProfileNotFound(
            f"{PROFILE_FILE} not found in {root}",
            profile=label,
            file=PROFILE_FILE,
            fix="create brand.toml (see `brandstudio profile schema` and the README's profile format)",
        )
    # a FIFO, folder, symlink loop, unreadable, huge, non-UTF-8 or too deeply nested brand.toml
    # is a ProfileError here, before tomllib sees it
    data = read_toml(
        toml_path,
        ProfileError,
        what=PROFILE_FILE,
        profile=label,
        file=PROFILE_FILE,
        syntax_fix="fix the TOML syntax at the line and column given (quote strings, close brackets)",
    )
    try:
        spec = BrandProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, label) from None
    label = spec.brand.id
    assets = _resolve_assets(root, spec, label)
    fingerprint = _fingerprint(spec, assets)
    return BrandProfile(root=root, spec=spec, assets=MappingProxyType(assets), fingerprint=fingerprint)


# -- validation messages ------------------------------------------------------------------


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "tuple"}


def _is_tag(part) -> bool:
    """A union member's tag in a pydantic location (``str``, ``MusicTrack``, ``function-after[...]``),
    not a key of brand.toml (keys are snake_case)."""
    return isinstance(part, str) and (part in _TYPE_TAGS or part[:1].isupper() or part.startswith("function-"))


def _union_noise(errors: list[dict]) -> list[dict]:
    """Drop the errors of a union's other members: for ``tracks = [{file, mood = "Calm"}]`` pydantic
    also says the entry is not a ``str``; only the table's own problem helps."""
    keep = []
    for err in errors:
        loc = err["loc"]
        if loc and loc[-1] in _TYPE_TAGS and any(
            o is not err and o["loc"][: len(loc) - 1] == loc[:-1] and len(o["loc"]) >= len(loc) for o in errors
        ):
            continue
        keep.append(err)
    return keep or errors


def _where(err: dict) -> str:
    """The dotted field an error is about. A check across fields (a section's or the whole file's
    validator) is reported at the section; its message names the field in backticks."""
    where = _loc(tuple(p for p in err["loc"] if not _is_tag(p)))
    if isinstance(err.get("input"), dict) and (m := re.search(r"`([A-Za-z_][\w.]*)`", err["msg"])):
        name = m[1]
        return name if not where or name.startswith(where + ".") else f"{where}.{name}"
    return where


def _validation_error(exc: ValidationError, label: str) -> ProfileError:
    errors = _union_noise(exc.errors(include_url=False))
    lines = []
    for err in errors:
        where = _where(err)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see `brandstudio profile schema` for the allowed keys)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif not isinstance(err.get("input"), dict):  # a whole section is no use to read back
            msg = f"{msg} (got {err.get('input')!r})"
        lines.append(f"  - {where or '<top level>'}: {msg}")
    first = errors[0]
    first_loc = _where(first)
    if isinstance(first.get("input"), dict):
        first = {**first, "input": None}
    if first["type"] == "extra_forbidden":
        fix = f"remove `{first_loc}` or correct its name"
    elif first["type"] == "missing":
        fix = f"add `{first_loc}` to brand.toml"
    else:
        fix = f"correct `{first_loc}`; `brandstudio profile schema` lists every field and its type"
    n = len(errors)
    return ProfileError(
        f"brand.toml is invalid ({n} problem{'s' if n > 1 else ''}):\n" + "\n".join(lines),
        profile=label,
        file=PROFILE_FILE,
        field=first_loc,
        value=first.get("input"),
        fix=fix,
    )


# -- assets -----------------------------------------------------------------------------


def _resolve(root: Path, rel: str, field_name: str, label: str, suffixes: tuple[str, ...]) -> Path:
    """Resolve ``rel`` inside ``root``; refuse absolute paths, escapes and wrong file types."""
    if Path(rel).is_absolute() or rel.startswith("~"):
        raise AssetError(
            f"asset path must be relative to the profile directory, got {rel!r}",
            profile=label,
            file=PROFILE_FILE,
            field=field_name,
            value=rel,
            fix=f"copy the file into {root} and name it relative to that directory",
        )
    if "\x00" in rel:
        raise AssetError(
            f"asset path {rel!r} contains a null byte",
            profile=label,
            file=PROFILE_FILE,
            field=field_name,
            value=rel,
            fix=f"remove the NUL character from `{field_name}`",
        )
    try:
        path = (root / rel).resolve()
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a symlink loop
        raise AssetError(
            f"asset path {rel!r} is a symlink loop (the link leads back to itself)",
            profile=label,
            file=rel,
            field=field_name,
            value=rel,
            fix="point the symlink at a real file inside the profile (`ls -l` shows where each link leads)",
        ) from None
    if not path.is_relative_to(root):
        raise AssetError(
            f"asset path {rel!r} leads outside the profile directory",
            profile=label,
            file=rel,
            field=field_name,
            value=rel,
            fix=f"copy the file into {root} and name it relative to that directory (no '..', no symlinks out)",
        )
    suffix = path.suffix.lower()
    if suffix in _PICKLE_SUFFIXES and suffix not in suffixes:  # unless the field reads it weights_only
        also = [x for x in suffixes if x != ".safetensors"]
        only = f"as {', '.join(['.safetensors', *also])}" if also else "from safetensors only"
        raise AssetError(
            f"{rel!r} is a pickle-based weight file; brandstudio loads `{field_name}` {only} "
            "because other pickle files can run arbitrary code",
            profile=label,
            file=rel,
            field=field_name,
            value=rel,
            fix="convert it to .safetensors (e.g. safetensors.torch.save_file on a state dict you trust)",
        )
    if suffixes and suffix not in suffixes:
        raise AssetError(
            f"{rel!r} has the wrong file type for `{field_name}`: expected {', '.join(suffixes)}",
            profile=label,
            file=rel,
            field=field_name,
            value=rel,
            fix=f"point `{field_name}` at a {'/'.join(suffixes)} file",
        )
    # a folder, FIFO, device or unreadable file where the asset should be: refused before any
    # reader opens it (a FIFO would block it)
    check_user_file(
        path,
        error=AssetError,
        what=f"the asset `{field_name}`",
        profile=label,
        field=field_name,
        file=rel,
        missing_fix=f"add the file at {path} or correct `{field_name}` in brand.toml",
    )
    return path


def _check(check: Callable[[Path], object], path: Path, rel: str, field_name: str, label: str) -> None:
    """Open the asset the way the render will; turn any failure into an AssetError with context."""
    try:
        with error_context(profile=label, field=field_name):
            check(path)
    except BrandStudioError as exc:
        exc.file = rel  # the asset as brand.toml names it, not the absolute path a reader saw
        raise
    except Exception as exc:  # a decoder's own exception type: report it, no traceback
        raise AssetError(
            f"{rel!r} could not be read as {field_name}: {type(exc).__name__}: {exc}",
            profile=label,
            file=rel,
            field=field_name,
            value=rel,
            fix="replace the file with a valid one (it may be truncated or of another format)",
        ) from None


_SR_SUFFIXES = (".safetensors", ".pth", ".pt")
_RIFE_SUFFIXES = (".safetensors", ".pkl", ".pth", ".pt")


#: weights a profile may name or take from the environment: field → (variable, suffixes, check, what, example)
_ENV_WEIGHTS = {
    "upscale.weights": ("BRANDSTUDIO_SR_WEIGHTS", _SR_SUFFIXES, "upscale-weights", 'upscale.method is "realesrgan"',
                        "Real-ESRGAN", "RealESRGAN_x4plus.pth"),
    "output.interpolation_weights": ("BRANDSTUDIO_RIFE_WEIGHTS", _RIFE_SUFFIXES, "interpolation-weights",
                                     'output.interpolation is "rife"', "RIFE 4.6", "train_log/flownet.pkl"),
}  # fmt: skip


def _env_weights(field: str, label: str) -> Asset:
    """A model's weights the profile does not name: the file in the field's environment variable."""
    variable, suffixes, check, why_needed, model, example = _ENV_WEIGHTS[field]
    env = os.environ.get(variable)
    kinds = "/".join(suffixes)
    if not env:
        raise AssetError(
            f"{why_needed} but no weights are named",
            profile=label,
            file=PROFILE_FILE,
            field=field,
            fix=f"set {field} to a {kinds} file inside the profile, or export {variable}=/path/to/{example}",
        )
    path = Path(env).expanduser().resolve()
    if path.suffix.lower() not in suffixes or not path.is_file():
        why = "which does not exist" if path.suffix.lower() in suffixes else f"which is not a {kinds} file"
        raise AssetError(
            f"${variable} names {env!r}, {why}",
            profile=label,
            field=field,
            value=env,
            fix=f"point {variable} at an existing {model} weight file",
        )
    _check(asset_check(check), path, env, field, label)
    return Asset(field, env, path, sha256_file(path), path.stat().st_size)


def _resolve_assets(root: Path, spec: BrandProfileSpec, label: str) -> dict[str, Asset]:
    wanted: list[tuple[str, str, tuple[str, ...], Callable[[Path], object]]] = []
    if spec.colour.lut:
        wanted.append(("colour.lut", spec.colour.lut, (".cube",), asset_check("lut")))
    wanted.append(("captions.font", spec.captions.font, (".ttf", ".otf", ".ttc"), asset_check("font")))
    if spec.colour.reference:
        wanted.append(
            ("colour.reference", spec.colour.reference, (".png", ".jpg", ".jpeg", ".webp"), asset_check("reference"))
        )
    if spec.upscale.method == "realesrgan" and spec.upscale.weights:
        wanted.append(("upscale.weights", spec.upscale.weights, _SR_SUFFIXES, asset_check("upscale-weights")))
    if spec.output.interpolation_weights:
        wanted.append(("output.interpolation_weights", spec.output.interpolation_weights, _RIFE_SUFFIXES,
                       asset_check("interpolation-weights")))  # fmt: skip
    if spec.logo:
        wanted.append(("logo.file", spec.logo.file, (".png", ".webp"), asset_check("logo")))
    if spec.audio:
        for i, track in enumerate(spec.audio.track_list):  # plain paths and {file, mood, bpm} tables
            wanted.append(
                (
                    f"audio.tracks[{i}]",
                    track.file,
                    (".m4a", ".mp3", ".wav", ".flac", ".ogg", ".aac", ".opus"),
                    asset_check("audio"),
                )
            )
    for i, lora in enumerate(spec.style.loras):
        wanted.append((f"style.loras[{i}].file", lora.file, (".safetensors",), asset_check("lora")))
    # the `fast` preset's step-distilled LoRA (brandstudio.generation.presets)
    if spec.model.fast is not None:
        wanted.append(("model.fast.lora", spec.model.fast.lora, (".safetensors",), asset_check("lora")))
    # the C2PA signer named by the profile (brandstudio.provenance; the env may override it)
    if spec.provenance.cert:
        wanted.append(("provenance.cert", spec.provenance.cert, (".pem", ".crt", ".cer"), asset_check("pem-certs")))
    if spec.provenance.key:
        wanted.append(("provenance.key", spec.provenance.key, (".pem", ".key"), asset_check("pem-key")))

    # the profile's own prompt templates change renders too, so they are part of the fingerprint
    tdir = root / "templates"
    if tdir.is_dir():
        for tpath in sorted(tdir.glob("*.toml")):
            rel = f"templates/{tpath.name}"
            wanted.append((f"templates.{tpath.stem}", rel, (".toml",), lambda p: None))

    assets: dict[str, Asset] = {}
    for field_name, rel, suffixes, check in wanted:
        path = _resolve(root, rel, field_name, label, suffixes)
        _check(check, path, rel, field_name, label)
        assets[field_name] = Asset(field_name, rel, path, sha256_file(path), path.stat().st_size)
    if spec.upscale.method == "realesrgan" and not spec.upscale.weights:
        assets["upscale.weights"] = _env_weights("upscale.weights", label)
    if spec.output.interpolation == "rife" and not spec.output.interpolation_weights:
        assets["output.interpolation_weights"] = _env_weights("output.interpolation_weights", label)
    return assets


def _fingerprint(spec: BrandProfileSpec, assets: Mapping[str, Asset]) -> str:
    doc = {
        "settings": spec.model_dump(mode="json"),
        "assets": {k: a.sha256 for k, a in sorted(assets.items())},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
