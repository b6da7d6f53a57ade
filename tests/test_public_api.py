"""The public API is explicit, and importing it stays light (no torch/diffusers/moviepy at import)."""

from __future__ import annotations

import subprocess
import sys

import brandstudio


def test_public_api():
    assert set(brandstudio.__all__) == {
        "BrandStudio", "RenderRequest", "RenderResult", "BrandProfile", "load_profile", "BrandStudioError",
        "ProfileError", "ProfileNotFound", "AssetError", "TemplateError", "RequestError", "SafetyViolation",
        "GenerationError", "LoRAError", "PostError", "EncodeError", "MissingDependency", "__version__",
        # the whole error tree (errors.__all__), and progress events for notebooks and scripts
        "ProvenanceError", "QCError", "CampaignError", "TrainingError", "TrainingStopped", "Progress", "tqdm_progress",
        "AppError", "AccessDenied", "LeaseLost",
    }
    for name in brandstudio.__all__:
        assert hasattr(brandstudio, name)
    assert issubclass(brandstudio.SafetyViolation, brandstudio.BrandStudioError)
    assert issubclass(brandstudio.AssetError, brandstudio.ProfileError)


def test_import_and_profile_validation_do_not_load_heavy_libraries():
    code = ("import sys, brandstudio; from brandstudio.cli import app; "
            "brandstudio.load_profile('brand_profiles/aurora-coffee'); "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'moviepy', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=brandstudio.__file__.rsplit("/brandstudio/", 1)[0])
    assert out.stdout.strip() == "[]"
