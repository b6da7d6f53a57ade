"""``brandstudio lora train``: a brand LoRA trained into both experts of the profile's model."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import BrandStudioError, TrainingStopped
from ..style import DEFAULT_TARGET_MODULES, LoraTrainingConfig, train_lora
from .app import err, fail, lora_app, out
from .display import RenderProgress, json_text, safe


def _size(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        err.print(f"[bold red]error:[/] --size expects WIDTHxHEIGHT such as 832x480, got {safe(repr(text))}")
        raise typer.Exit(2) from None
    return width, height


class _LogLines:
    """Progress for a log file (no terminal): a line every twentieth of the run."""

    def __init__(self) -> None:
        self.every = None

    def __call__(self, event) -> None:
        self.every = self.every or max(1, event.total // 20)
        if event.step % self.every == 0 or event.step == event.total:
            err.print(f"{event.step}/{event.total} {safe(event.detail)}", highlight=False)


@lora_app.command("train")
def lora_train(
    profile: Path = typer.Argument(..., help="the brand profile directory (its [model] is trained on)"),
    data: Path = typer.Option(None, "--data", help="stills and clips with captions (default: the profile's [style] references)"),
    output: Path = typer.Option(None, "--output", "-o", help="the .safetensors to write (default: <profile>/loras/<name>.safetensors)"),
    name: str = typer.Option(None, "--name", help="the LoRA's name in the profile (default: <brand id>-style)"),
    trigger: str = typer.Option(None, "--trigger", help="put first in every caption (default: the profile's, else '<brand id> style')"),
    rank: int = typer.Option(16, "--rank", help="LoRA rank"),
    alpha: float = typer.Option(None, "--alpha", help="LoRA alpha (default: the rank)"),
    targets: str = typer.Option(",".join(DEFAULT_TARGET_MODULES), "--targets", help="module names to adapt, comma-separated"),
    steps: int = typer.Option(500, "--steps", help="optimizer steps per expert"),
    learning_rate: float = typer.Option(1e-4, "--lr", help="AdamW learning rate"),
    batch_size: int = typer.Option(1, "--batch-size", help="items per step"),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", help="steps between checkpoints"),
    seed: int = typer.Option(0, "--seed", help="seed of every draw (a resumed run ends as an uninterrupted one)"),
    size: str = typer.Option(None, "--size", help="training size WIDTHxHEIGHT (default: the profile's [model] size)"),
    frames: int = typer.Option(17, "--frames", help="most frames taken from a clip (4k+1)"),
    caption_dropout: float = typer.Option(0.0, "--caption-dropout", help="share of steps captioned by the trigger alone (ties the look to the trigger)"),
    crop: bool = typer.Option(False, "--crop", help="centre-crop items of other aspect ratios instead of refusing them"),
    precision: str = typer.Option("auto", "--precision", help="auto (bfloat16 on CUDA), bfloat16 or float32"),
    gradient_checkpointing: bool = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                help="recompute activations (default: on CUDA)"),
    offload_idle: bool = typer.Option(None, "--offload-idle/--no-offload-idle",
                                      help="keep the expert not being trained in CPU memory (default: on CUDA)"),
    device: str = typer.Option("auto", "--device", help="auto, cuda or cpu"),
    work_dir: Path = typer.Option(None, "--work-dir", help="the run's cache and checkpoints (default: under ~/.cache/brandstudio/training)"),
    restart: bool = typer.Option(False, "--restart", help="discard a previous run with other settings"),
    add: bool = typer.Option(False, "--add", help="add it to the profile's [[style.loras]] (or point its entry at it)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:  # fmt: skip
    """Train a brand LoRA on both experts from the brand's stills and clips; run again to resume."""

    width, height = _size(size)
    config = LoraTrainingConfig(
        rank=rank, alpha=alpha, target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()), steps=steps,
        learning_rate=learning_rate, batch_size=batch_size, checkpoint_every=checkpoint_every, seed=seed, width=width,
        height=height, frames=frames, caption_dropout=caption_dropout, crop=crop, precision=precision, gradient_checkpointing=gradient_checkpointing,
        offload_idle_expert=offload_idle,
    )  # fmt: skip
    try:
        with RenderProgress(err, f"LoRA for {profile.name}") as bar:
            log = None if err.is_terminal else _LogLines()
            result = train_lora(
                profile, data=data, output=output, name=name, trigger=trigger, config=config, work_dir=work_dir,
                restart=restart, device=device, add_to_profile=add, on_progress=log or bar,
            )  # fmt: skip
    except TrainingStopped as exc:
        err.print(f"[yellow]stopped:[/] {safe(exc)}", highlight=False)
        raise typer.Exit(130) from None
    except BrandStudioError as exc:
        fail(exc)
    if as_json:
        data_out = {"path": str(result.path), "loss_plot": str(result.loss_plot), "steps": result.steps,
                    "resumed_from": result.resumed_from, "seconds": round(result.seconds, 2),
                    "final_loss": {k: v[-1] for k, v in result.losses.items() if v}, "metadata": dict(result.metadata),
                    "added_to_profile": result.added_to_profile, "work_dir": str(result.work_dir)}  # fmt: skip
        print(json_text(json.dumps(data_out, indent=2, ensure_ascii=False)))
        return
    resumed = f", resumed at step {result.resumed_from}" if result.resumed_from else ""
    err.print(f"trained {result.steps} steps per expert on {result.metadata['brandstudio.items']} items "
              f"in {result.seconds:.0f} s{resumed}", highlight=False)  # fmt: skip
    for label, values in result.losses.items():
        if values:
            head = sum(values[: max(1, len(values) // 10)]) / max(1, len(values) // 10)
            tail = sum(values[-max(1, len(values) // 10) :]) / max(1, len(values) // 10)
            err.print(f"  {label}: loss {head:.4f} -> {tail:.4f} (first and last tenth)", highlight=False)
    err.print(f"loss plot: {safe(result.loss_plot)}", highlight=False)
    trigger_word = result.metadata["brandstudio.trigger"]
    if result.added_to_profile:
        err.print(f"[green]added[/]: {safe(profile)} loads it as `{safe(result.metadata['brandstudio.name'])}` "
                  f"(trigger: {safe(trigger_word)})", highlight=False)  # fmt: skip
    else:
        err.print(
            f"next: run again with --add to put it in {safe(profile)}'s [[style.loras]]", highlight=False
        )
    out.print(safe(result.path), highlight=False)
