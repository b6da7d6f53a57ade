"""A tiny CLIP built offline (as the tiny Wan model is), saved the way a real one is, for the
CLIP style and prompt checks; and profiles that use it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: the tiny tokenizer's special tokens, in id order (end of text is 3: not CLIP's legacy id 2)
SPECIAL_TOKENS = ("<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>")


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random ``CLIPModel`` (hidden 32, 2 layers, 32 px images in 8 px patches, 16-d
    projections) and a byte-level tokenizer (every UTF-8 byte one token, no merges), saved into
    ``folder`` with ``save_pretrained(safe_serialization=True)``: config.json, model.safetensors,
    tokenizer.json, tokenizer_config.json, the files a real CLIP folder has. Nothing downloads."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 2), ("<|endoftext|>", 3)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<|startoftext|>",
        eos_token="<|endoftext|>", model_max_length=77,
    )  # fmt: skip
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
        # random towers embed every image one way and every text another (cosines near -0.2);
        # flipping the text projection points them the same way, so CLIPScore is not clipped to 0
        model.text_projection.weight.data.neg_()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """The tiny CLIP's folder (built once per session)."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


def stills() -> list[np.ndarray]:
    """Three distinct 96x64 'reference stills': a warm gradient, a checkerboard, rings."""
    y, x = np.mgrid[0:64, 0:96]
    gradient = np.stack([x * 255 // 95, y * 200 // 63, np.full_like(x, 60)], -1)
    checker = np.where(((x // 12) + (y // 12))[..., None] % 2 == 0, [240, 230, 210], [40, 30, 20])
    rings = np.where(
        (np.hypot(x - 48, y - 32).astype(int) // 6)[..., None] % 2 == 0, [30, 80, 95], [200, 160, 120]
    )
    return [np.asarray(a, np.uint8) for a in (gradient, checker, rings)]


@pytest.fixture
def refs() -> list[np.ndarray]:
    """The reference stills :func:`clip_profile` writes, as arrays."""
    return stills()


@pytest.fixture
def clip_profile(make_profile, tiny_clip, monkeypatch):
    """``clip_profile(qc="...", references=True)``: the aurora demo profile with the tiny CLIP in
    its folder ``clip/`` (``[qc] clip_model = "clip"`` unless ``qc`` says otherwise) and, in
    place of the demo's reference stills, :func:`stills` in ``references/`` (``references``: a
    folder name to name instead, unmade; False: no ``[style] references``);
    $BRANDSTUDIO_CLIP_MODEL unset."""
    monkeypatch.delenv("BRANDSTUDIO_CLIP_MODEL", raising=False)

    def _make(
        qc: str = 'clip_model = "clip"', references: bool | str = True, name: str = "aurora-clip"
    ) -> Path:
        folder = references if isinstance(references, str) else "references"

        def edit(text: str) -> str:
            # the demo names its own references folder (12 stills): this profile names `folder`, or none
            text = re.sub(r"(?m)^references = .*$", f'references = "{folder}"' if references else "", text)
            if references and "\n[style]\n" not in text:
                text = text.replace(
                    "[[style.loras]]", f'[style]\nreferences = "{folder}"\n\n[[style.loras]]', 1
                )
            return text + f"\n[qc]\n{qc}\n"

        root = make_profile("aurora-coffee", edit=edit, name=name)
        shutil.copytree(tiny_clip, root / "clip")
        shutil.rmtree(root / "references", ignore_errors=True)
        if references is True:
            (root / "references").mkdir()
            for i, still in enumerate(stills()):
                Image.fromarray(still).save(root / "references" / f"still-{i}.png")
        return root

    return _make
