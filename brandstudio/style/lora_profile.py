"""A trained LoRA put into the profile: its ``[[style.loras]]`` entry added or pointed at the new file.

brand.toml is edited as text, so every other line and comment stays; the profile must load
afterwards (the new file is opened and checked like any LoRA), else brand.toml is put back.

Example:
    >>> add_lora_to_profile("brand_profiles/aurora-coffee", "brand_profiles/aurora-coffee/loras/aurora-style.safetensors",
    ...                     name="aurora-style", trigger="aurora style", base_model="tiny-wan2.2")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import TrainingError
from ..files import MAX_TOML_BYTES, read_user_text
from ..profile import load_profile
from .brand_toml import rewrite_brand_toml

__all__ = ["add_lora_to_profile", "check_inside_profile"]

_LORA_TABLE = re.compile(r"^\[\[style\.loras\]\][ \t]*(#.*)?$", re.M)
_NEXT_TABLE = re.compile(r"^\[", re.M)
_LORA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as [[style.loras]] name


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _set_line(body: str, key: str, value: str) -> str:
    line = re.compile(rf"^{re.escape(key)}[ \t]*=.*$", re.M)
    new = f"{key} = {value}"
    return line.sub(new, body, count=1) if line.search(body) else body.rstrip("\n") + f"\n{new}\n"


def check_inside_profile(root: Path, lora: str | Path, name: str) -> str:
    """``lora``'s path relative to the profile ``root``, or :class:`~brandstudio.errors.TrainingError`
    if it is outside (a profile loads only its own files)."""
    try:
        return Path(lora).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise TrainingError(f"the LoRA {lora} is outside the profile {root}, so the profile cannot load it",
                            field="output", value=str(lora),
                            fix=f"write it inside the profile, e.g. --output {Path(root) / 'loras' / (name + '.safetensors')}") from None  # fmt: skip


def add_lora_to_profile(
    profile_dir: str | Path,
    lora: str | Path,
    *,
    name: str,
    trigger: str,
    base_model: str,
    weight_high: float = 1.0,
    weight_low: float = 1.0,
) -> None:
    """Point the profile's ``[[style.loras]]`` entry ``name`` at ``lora`` (a file inside the
    profile), or add the entry; the profile must load afterwards.

    Raises:
        TrainingError: the file is outside the profile, the name is not a valid LoRA name, or the
            existing entry was declared for another base model.
        ProfileError: the edited profile does not load (brand.toml is restored).
    """
    root = Path(profile_dir)
    toml = root / "brand.toml"
    rel = check_inside_profile(root, lora, name)
    if not _LORA_NAME.fullmatch(name):
        raise TrainingError(f"LoRA name {name!r} must be 1-64 letters, digits, '-' or '_'", field="name", value=name,
                            fix="use a name such as aurora-style")  # fmt: skip
    existing = {lora.name: lora for lora in load_profile(root).spec.style.loras}
    if name in existing and existing[name].base_model.strip().lower() != base_model.strip().lower():
        raise TrainingError(
            f"the profile's LoRA `{name}` is declared for `{existing[name].base_model}`, but this one was trained "
            f"for `{base_model}`",
            field="style.loras.base_model", value=existing[name].base_model,
            fix="train with the profile's model, or give this LoRA another --name",
        )  # fmt: skip
    text = read_user_text(toml, limit=MAX_TOML_BYTES, error=TrainingError, what="brand.toml")
    updated = None
    for header in _LORA_TABLE.finditer(text):
        end = _NEXT_TABLE.search(text, header.end())
        body_end = end.start() if end else len(text)
        body = text[header.end() : body_end]
        if re.search(rf"^name[ \t]*=[ \t]*[\"']{re.escape(name)}[\"']", body, re.M):
            body = _set_line(body, "file", _toml_string(rel))
            body = _set_line(body, "base_model", _toml_string(base_model))
            updated = text[: header.end()] + body + text[body_end:]
            break
    if updated is None:
        entry = (
            "\n[[style.loras]]  # trained by `brandstudio lora train`\n"
            f"name = {_toml_string(name)}\nfile = {_toml_string(rel)}\n"
            f"weight_high = {weight_high}\nweight_low = {weight_low}\n"
            f"trigger_words = [{_toml_string(trigger)}]\nbase_model = {_toml_string(base_model)}\n"
        )
        updated = text.rstrip("\n") + "\n" + entry
    rewrite_brand_toml(root, text, updated)
