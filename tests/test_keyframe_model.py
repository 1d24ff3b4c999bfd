"""Stage one's parts: open_clip text encoder (built-in and pretrained-from-disk), the text UNet,
model folders, the diffusion keyframe generator and its training task."""

from __future__ import annotations

import json

import pytest
import torch

from inbetween.errors import InbetweenError
from inbetween.world import all_captions, parse_caption
from tests.conftest import load_run, run_cli
from keyframes.clip import SPEC_FILE, import_open_clip, load_text_encoder, pretrained_clip, world_clip
from keyframes.diffusion import DiffusionKeyframes, KeyframeModel
from keyframes.training import SLOT_NAMES, WorldCaptions, one_slot_variants, slot_retrieval
from keyframes.unet import TextUNet

CAPTIONS = ["a large red circle at the left on a black background", "a small blue star at the top right on a gray background"]
TINY_UNET = {"patch": 4, "channels": [16, 32], "attention": [False, True], "heads": 2}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return world_clip()


def test_open_clip_imports_here():
    open_clip = import_open_clip()
    assert hasattr(open_clip, "CLIP") and hasattr(open_clip.loss, "ClipLoss")


def test_token_features_mask_and_pooled_embedding(encoder):
    tokens, mask, pooled = encoder.encode(CAPTIONS + [""])
    assert tokens.shape == (3, 24, encoder.width) and pooled.shape == (3, encoder.embed_dim)
    # start + words + end are real tokens (ids are zero after the end); "" is start and end only
    ids = encoder.tokenize(CAPTIONS + [""])
    assert mask.sum(dim=1).tolist() == (ids != 0).sum(dim=1).tolist() and mask[2].sum() == 2
    reference = torch.nn.functional.normalize(encoder.clip.encode_text(encoder.tokenize(CAPTIONS + [""])), dim=-1)
    torch.testing.assert_close(pooled, reference)
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(3))


def test_built_in_encoder_round_trips_through_its_folder(encoder, tmp_path):
    encoder.save(tmp_path)
    loaded = load_text_encoder(tmp_path)
    tokens, _, pooled = encoder.encode(CAPTIONS)
    loaded_tokens, _, loaded_pooled = loaded.encode(CAPTIONS)
    # weights are stored as float16: equal to that precision
    torch.testing.assert_close(loaded_tokens, tokens, atol=2e-2, rtol=0)
    assert not any(parameter.requires_grad for parameter in loaded.parameters())


def _register_tiny_open_clip_config(tmp_path) -> str:
    open_clip = import_open_clip()
    name = "inbetween-test-tiny"
    config = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1,
                                              "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


def test_pretrained_open_clip_checkpoint_from_local_disk(tmp_path):
    """The `model` + `pretrained` route: a checkpoint this test saves is loaded back by name."""
    open_clip = import_open_clip()
    name = _register_tiny_open_clip_config(tmp_path)
    torch.manual_seed(3)
    original = open_clip.create_model(name)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(original.state_dict(), checkpoint)

    encoder = pretrained_clip(name, checkpoint)
    for key, value in original.state_dict().items():
        torch.testing.assert_close(encoder.clip.state_dict()[key], value)
    tokens, mask, pooled = encoder.encode(CAPTIONS)
    assert tokens.shape[:2] == mask.shape and pooled.shape == (2, 32)

    folder = tmp_path / "encoder"
    encoder.save(folder)  # records name + path, copies no weights
    assert json.loads((folder / SPEC_FILE).read_text()) == {"model": name, "pretrained": str(checkpoint.resolve())}
    torch.testing.assert_close(load_text_encoder(folder).encode(CAPTIONS)[2], pooled)


def test_pretrained_open_clip_errors_name_the_problem(tmp_path):
    with pytest.raises(InbetweenError, match="does not exist"):
        pretrained_clip("ViT-B-32", tmp_path / "missing.pt")
    (tmp_path / "file.pt").write_bytes(b"")
    with pytest.raises(InbetweenError, match="not an open_clip model"):
        pretrained_clip("no-such-model", tmp_path / "file.pt")
    with pytest.raises(InbetweenError, match="text_encoder.json"):
        load_text_encoder(tmp_path)


def test_unet_shapes_and_size_check(encoder):
    unet = TextUNet(encoder.width, encoder.embed_dim, **TINY_UNET)
    context, mask, pooled = encoder.encode(CAPTIONS)
    out = unet(torch.randn(2, 3, 32, 32), torch.tensor([0, 999]), context, mask, pooled)
    assert out.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple of 8"):
        unet(torch.randn(2, 3, 36, 36), torch.tensor([0, 1]), context, mask, pooled)


def test_unet_reads_the_caption(encoder):
    """Changing a caption word changes the output at every level (cross-attention and pooled)."""
    torch.manual_seed(0)
    unet = TextUNet(encoder.width, encoder.embed_dim, **TINY_UNET)
    for parameter in unet.parameters():  # undo zero-inits so every branch is live
        torch.nn.init.normal_(parameter, std=0.05)
    x, t = torch.randn(1, 3, 32, 32).expand(2, -1, -1, -1), torch.tensor([500, 500])
    context, mask, pooled = encoder.encode(["a red circle", "a blue circle"])
    out = unet(x, t, context, mask, pooled)
    assert not torch.allclose(out[0], out[1])


@pytest.fixture(scope="module")
def tiny_model_folder(encoder, tmp_path_factory):
    torch.manual_seed(1)
    model = KeyframeModel.build(encoder, {"size": 32, "unet": TINY_UNET, "schedule": "cosine", "prediction": "v"})
    folder = tmp_path_factory.mktemp("tiny_keyframes")
    model.save(folder)
    return folder


def test_model_folder_round_trip_is_exact(tiny_model_folder):
    first, second = KeyframeModel.load(tiny_model_folder), KeyframeModel.load(tiny_model_folder)
    noise = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    images = first.generate(CAPTIONS, noise, steps=4, precision="fp32")
    assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1
    assert torch.equal(images, second.generate(CAPTIONS, noise, steps=4, precision="fp32"))


def test_not_a_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InbetweenError, match="not a keyframe model folder"):
        KeyframeModel.load(tmp_path)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp_2m"])
def test_generator_same_seed_same_keyframes_other_seed_others(tiny_model_folder, sampler):
    generator = DiffusionKeyframes(str(tiny_model_folder), sampler=sampler, steps=3)
    first = generator(CAPTIONS, seed=5)
    assert torch.equal(first, generator(CAPTIONS, seed=5))
    assert not torch.allclose(first, generator(CAPTIONS, seed=6))


def test_consistency_switch_shares_the_starting_noise(tiny_model_folder):
    shared = DiffusionKeyframes(str(tiny_model_folder), consistency="shared_noise").noise(3, seed=1)
    independent = DiffusionKeyframes(str(tiny_model_folder), consistency="independent").noise(3, seed=1)
    assert torch.equal(shared[0], shared[2]) and not torch.equal(independent[0], independent[2])
    with pytest.raises(InbetweenError, match="consistency must be one of"):
        DiffusionKeyframes(str(tiny_model_folder), consistency="magic")


def test_hard_negatives_change_exactly_one_slot_and_cover_every_slot():
    captions = all_captions()
    anchors = torch.randint(len(captions), (300,), generator=torch.Generator().manual_seed(0))
    variants = one_slot_variants(anchors, 3, torch.Generator().manual_seed(1))
    assert variants.shape == (300, 3)
    changed = []
    for anchor, row in zip(anchors.tolist(), variants.tolist()):
        scene = parse_caption(captions[anchor])
        for variant in row:
            other = parse_caption(captions[variant])
            differing = [slot for slot in SLOT_NAMES if getattr(scene, slot) != getattr(other, slot)]
            assert len(differing) == 1, (captions[anchor], captions[variant])
            changed.append(differing[0])
    assert set(changed) == set(SLOT_NAMES)


@pytest.fixture(scope="module")
def world_captions_64():
    return WorldCaptions(64)


def test_slot_retrieval_is_at_chance_for_an_untrained_encoder_and_high_for_the_shipped_one(encoder,
                                                                                          world_captions_64):
    untrained = slot_retrieval(encoder, world_captions_64)
    assert set(untrained) == set(SLOT_NAMES) and untrained["position"] < 0.4
    shipped = slot_retrieval(load_text_encoder(), world_captions_64)
    assert min(shipped.values()) >= 0.99, shipped


TINY_TRAIN = ["trainer.steps=2", "trainer.batch_size=8", "trainer.warmup_steps=1", "trainer.checkpoint_every=2",
              "trainer.sample_every=2", "trainer.log_every=1"]


def test_train_clip_then_keyframes_then_generate_with_it(tmp_path):
    """Both stage-one trainings at tiny scale through `inbetween train`, then the trained folder
    drives `inbetween generate` (outputs exist; the quality is the shipped model's tests' job)."""
    clip_config = ('task.config={embed_dim: 16, vision_cfg: {image_size: 32, patch_size: 8, width: 32, layers: 1, '
                   'head_width: 16}, text_cfg: {context_length: 24, width: 16, heads: 2, layers: 1}}')
    clip = run_cli("train", "stage=clip", clip_config, "task.size=32", "task.grid_captions=4", *TINY_TRAIN,
                   f"output_dir={tmp_path / 'clip'}", cwd=tmp_path)
    assert clip.returncode == 0, clip.stderr
    assert (tmp_path / "clip" / "model" / SPEC_FILE).is_file()

    keyframes = run_cli("train", "stage=keyframes", f"task.text_encoder={tmp_path / 'clip' / 'model'}",
                        "task.size=32", "task.unet.channels=[16,32]", "task.unet.attention=[false,true]",
                        "task.unet.heads=2", "task.grid_captions=2", "task.grid_steps=2", *TINY_TRAIN,
                        f"output_dir={tmp_path / 'keyframes'}", cwd=tmp_path)
    assert keyframes.returncode == 0, keyframes.stderr
    model = tmp_path / "keyframes" / "model"
    assert json.loads((model / "config.json").read_text())["size"] == 32
    assert (tmp_path / "keyframes" / "samples" / "step_000002.png").is_file()

    out = tmp_path / "generated"
    generated = run_cli("generate", "keyframes=diffusion", f"keyframes.checkpoint={model}", "keyframes.steps=2",
                        "storyboard=[a red circle at the left,a red circle at the right]", "between=1",
                        f"output_dir={out}", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    assert load_run(out)["size_hw"] == [32, 32] and len(list((out / "frames").glob("*.png"))) == 3
