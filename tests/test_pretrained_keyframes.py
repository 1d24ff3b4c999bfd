"""keyframes=pretrained on a tiny randomly initialised Stable Diffusion pipeline the test builds and
saves in diffusers' folder layout (diffusers' own model classes, tokenizer files written here):
nothing is downloaded, everything runs through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inbetween.imports import import_beside_torchvision
from inbetween.video import read_image
from keyframes.pretrained import PretrainedKeyframes
from tests.conftest import load_run, run_cli

try:
    diffusers = import_beside_torchvision("diffusers")  # transformers imports torchvision too
except ImportError:
    pytest.skip("needs the pretrained extra: pip install -c constraints.txt -e '.[pretrained]'", allow_module_level=True)

SIZE = 32
PROMPTS = "storyboard=[a red cat on a roof, a red cat jumping]"


def byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE (GPT-2, CLIP) writes bytes as."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + index) for index in range(len(others))]


def byte_level_vocabulary() -> dict[str, int]:
    """A CLIP byte-level BPE vocabulary with no merges: every byte symbol, alone and word-final."""
    symbols = byte_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def tiny_pipeline(folder: Path) -> None:
    """A Stable Diffusion pipeline of a few thousand random weights, saved as a diffusers folder."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: PLC0415

    torch.manual_seed(0)
    vocabulary = byte_level_vocabulary()
    (folder / "tok").mkdir(parents=True)
    (folder / "tok" / "vocab.json").write_text(json.dumps(vocabulary))
    (folder / "tok" / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "tok" / "vocab.json"), str(folder / "tok" / "merges.txt"), model_max_length=77)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocabulary), hidden_size=32, intermediate_size=37,
                                        num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=77,
                                        bos_token_id=vocabulary["<|startoftext|>"],
                                        eos_token_id=vocabulary["<|endoftext|>"], pad_token_id=1))
    unet = diffusers.UNet2DConditionModel(
        sample_size=SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                  norm_num_groups=8, sample_size=SIZE)
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    pipeline = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
    pipeline.save_pretrained(folder / "sd")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pretrained")
    tiny_pipeline(folder)
    return folder / "sd"


def generate(tmp_path: Path, model: Path, output: str, *args: str, env: dict[str, str] | None = None):
    return run_cli("generate", "keyframes=pretrained", f"keyframes.model={model}", f"keyframes.width={SIZE}",
                   f"keyframes.height={SIZE}", "keyframes.steps=2", "between=1", *args,
                   f"output_dir={tmp_path / output}", cwd=tmp_path, env=env)


def keyframes(folder: Path) -> list[np.ndarray]:
    return [read_image(path) for path in sorted((folder / "keyframes").iterdir())]


@pytest.fixture(scope="module")
def first_run(model, tmp_path_factory) -> Path:
    """A finished two-keyframe run with seed 1."""
    folder = tmp_path_factory.mktemp("runs")
    result = generate(folder, model, "first", PROMPTS, "seed=1")
    assert result.returncode == 0, result.stderr
    return folder / "first"


def test_draws_keyframes_of_the_asked_size_reproducibly(tmp_path, model, first_run):
    for name, seed in (("again", 1), ("other", 2)):
        result = generate(tmp_path, model, name, PROMPTS, f"seed={seed}")
        assert result.returncode == 0, result.stderr
    first, again, other = keyframes(first_run), keyframes(tmp_path / "again"), keyframes(tmp_path / "other")
    assert len(first) == 2 and first[0].shape == (SIZE, SIZE, 3)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    run = load_run(first_run)
    assert run["frame_count"] == 3 and run["precision"]["keyframes"] in ("fp32", "bf16")
    assert not np.array_equal(first[0], first[1])  # the prompts differ


def test_redo_changes_only_the_named_keyframe(tmp_path, model, first_run):
    result = generate(tmp_path, model, "redone", PROMPTS, "seed=1", f"reuse={first_run}", "redo=[1]")
    assert result.returncode == 0, result.stderr
    before, after = keyframes(first_run), keyframes(tmp_path / "redone")
    assert np.array_equal(before[0], after[0]) and not np.array_equal(before[1], after[1])


def draw(model: Path, **options) -> torch.Tensor:
    generator = PretrainedKeyframes(str(model), width=SIZE, height=SIZE, steps=2, **options)
    return generator(["a red cat on a roof", "a red cat jumping"], seed=3)


def test_anchoring_to_the_first_keyframe_redraws_the_others_from_it(model):
    plain, anchored = draw(model, scheduler="euler"), draw(model, scheduler="euler", anchor_strength=0.5)
    assert anchored.shape == (2, 3, SIZE, SIZE)
    assert torch.equal(plain[0], anchored[0]) and not torch.equal(plain[1], anchored[1])


@pytest.mark.parametrize("given, words", [
    ("{tmp}/nowhere", "does not exist"),
    ("stabilityai/stable-diffusion-2", "never downloads"),
    ("{tmp}", "without model_index.json"),
    ("{tmp}/weights.ckpt", "is a file"),
], ids=["missing", "hub id", "not a pipeline", "not safetensors"])
def test_bad_model_paths_exit_2_naming_the_path_and_layouts(tmp_path, given, words):
    (tmp_path / "weights.ckpt").write_bytes(b"not a model")
    path = given.format(tmp=tmp_path)
    result = run_cli("generate", "keyframes=pretrained", f"keyframes.model={path}", f"output_dir={tmp_path / 'o'}",
                     cwd=tmp_path)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert path in result.stderr and "model_index.json" in result.stderr


def test_without_the_extra_the_error_says_what_to_install(tmp_path, model):
    hidden = tmp_path / "hide"
    (hidden / "diffusers").mkdir(parents=True)
    (hidden / "diffusers" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'diffusers'\")\n")
    env = {"PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    result = generate(tmp_path, model, "o", PROMPTS, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert 'pip install -c constraints.txt -e ".[pretrained]"' in result.stderr


def test_both_tokenizer_layouts_load_and_tokenize_alike(tmp_path, model):
    """diffusers folders carry tokenizer.json, or vocab.json + merges.txt (older saves): both work."""
    older = tmp_path / "older"
    shutil.copytree(model, older)
    (older / "tokenizer" / "tokenizer.json").unlink()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(model.parent / "tok" / name, older / "tokenizer" / name)
    assert torch.equal(draw(model), draw(older))
