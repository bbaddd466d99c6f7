"""Several characters: each shot is bound to its speaker's voice and its subject's portrait (story fields
`speaker` / `subject`), never to another character's; ambiguity and unknown names are refused naming the field; a
one-character story gives the sampler the same inputs as before per-shot references existed; and the sampler's
per-shot references equal to the story's broadcast give bit-identical latents."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from unityshots_jax.pipeline.story_conditioning import prepare_story, stack_stories
from unityshots_jax.prompt.story_prompt import StoryPromptError, compose_shot_texts, parse_story_prompt, to_dict
from unityshots_jax.story.shot_sequence import References
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_inputs import StoryInputError, make_story_inputs

# the toy world's story configuration (configs/toy_world.py), 4 shots
TOY = StoryConfig(
    max_shots=4, video_frames=4, height=6, width=6, latent_channels=48, audio_frames=40, audio_channels=16,
    text_tokens=32, ltm_frames=1, stm_frames=2, frame_limit=32, ref_image_frames=1, ref_audio_frames=20, fps=8.0,
    temporal_scale=4, spatial_scale=4, audio_hop_seconds=0.0125, audio_downsample=4,
)  # fmt: skip
LOOKS = {"pip": ("red", "striped", "square"), "bo": ("cyan", "solid", "diamond")}


@functools.cache
def toy_codecs():
    from unityshots_jax.story.story_codecs import story_codecs

    return story_codecs("toy_world", TOY, 64, 32)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The folder holding `NAME.png` (portrait) and `NAME.wav` (voice, 0.5 s: shorter than Fr) of pip and bo."""
    from PIL import Image

    from unityshots_jax.media.media_files import write_wav
    from unityshots_jax.toy_world.render import render_portrait, render_voice_clip
    from unityshots_jax.toy_world.world_spec import Character

    folder = tmp_path_factory.mktemp("characters")
    for name, look in LOOKS.items():
        character = Character(name, *look)
        Image.fromarray((render_portrait(character) * 255).astype(np.uint8)).save(folder / f"{name}.png")
        write_wav(folder / f"{name}.wav", render_voice_clip(character, seconds=0.5 if name == "bo" else 1.5), 16000)
    return folder


def encoded(folder, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(portrait `[R, h, w, C]`, voice `[Fr, Ca]`, voice mask `[Fr]`) of a character, encoded here, independently of
    `prepare_story`, the way a story's reference files are read."""
    from unityshots_jax.media.media_files import load_audio, load_image

    codecs = toy_codecs()
    frame = load_image(folder / f"{name}.png", size=codecs.frame_size)
    portrait = codecs.video.encode(np.repeat(frame[None], codecs.video.temporal_scale, 0))[:1]
    wave = load_audio(folder / f"{name}.wav", codecs.audio.sample_rate)
    hop = round(codecs.audio.sample_rate / codecs.audio.latent_rate)  # samples per audio latent frame
    frames = min(len(wave) // hop, TOY.ref_audio_frames)
    voice = np.zeros((TOY.ref_audio_frames, TOY.audio_channels), np.float32)
    voice[:frames] = codecs.audio.encode(wave[: frames * hop, None])
    return np.repeat(portrait, TOY.ref_image_frames, 0), voice, (np.arange(TOY.ref_audio_frames) < frames).astype(np.float32)


def character(name: str, portrait: bool = True, voice: bool = True) -> dict:
    return {"name": name, "description": "a " + " ".join(LOOKS[name]),
            **({"reference_image": f"{name}.png"} if portrait else {}), **({"reference_voice": f"{name}.wav"} if voice else {})}


def two_characters() -> dict:
    """pip and bo, each with a portrait and a voice; each speaks, and each is the subject of an r2v shot."""
    return {
        "caption": "a meadow in bright light",
        "characters": [character("pip"), character("bo")],
        "shots": [
            {"duration": 1, "caption": "wide shot. pip walks right", "dialogue": "ba lo", "speaker": "pip"},
            {"duration": 1, "caption": "close-up. bo jumps", "mode": "r2v", "subject": "bo", "dialogue": "mi ta",
             "speaker": "BO"},
            {"duration": 1.5, "caption": "close-up. pip stands still", "mode": "r2v", "subject": "pip"},
        ],
    }  # fmt: skip


def shot_ref(references: References, shot: int, story: int = 0) -> References:
    return jax.tree.map(lambda x: np.asarray(x)[shot, story], references)


# ------------------------------------------------------------------------------------------ the story format
def story_error(data: dict) -> StoryPromptError:
    with pytest.raises(StoryPromptError) as info:
        parse_story_prompt(data, check_files=False)
    return info.value


def test_speaker_and_subject_are_bound_and_round_trip():
    prompt = parse_story_prompt(two_characters(), check_files=False)
    assert [(s.speaker, s.subject) for s in prompt.shots] == [("pip", None), ("bo", "bo"), (None, "pip")]
    assert parse_story_prompt(to_dict(prompt), check_files=False) == prompt
    texts = compose_shot_texts(prompt)
    assert texts[0].endswith("wide shot. pip walks right. pip speaking: ba lo")
    assert texts[1] == "close-up. bo jumps. bo speaking: mi ta"
    # defaults: the only voiced (portrayed) character; one character's text keeps the unnamed form
    data = two_characters()
    data["characters"] = [character("pip", portrait=False), character("bo", voice=False)]
    for shot in data["shots"]:
        shot.pop("speaker", None), shot.pop("subject", None)
    prompt = parse_story_prompt(data, check_files=False)
    assert [(s.speaker, s.subject) for s in prompt.shots] == [("pip", None), ("pip", "bo"), (None, "bo")]
    data["characters"] = [character("pip")]
    assert compose_shot_texts(parse_story_prompt(data, check_files=False))[1] == "close-up. bo jumps. speaking: mi ta"


def _without(field: str, shot: int):
    def mutate(data):
        del data["shots"][shot][field]
    return mutate


def _set(shot: int, **values):
    def mutate(data):
        data["shots"][shot].update(values)
    return mutate


BAD = {
    "ambiguous speaker": (_without("speaker", 1), "shots[1].speaker", "2 characters have a reference voice (pip, bo)"),
    "ambiguous subject": (_without("subject", 2), "shots[2].subject", "2 characters have a reference image (pip, bo)"),
    "unknown speaker": (_set(0, speaker="zed"), "shots[0].speaker", "'zed' is not a character"),
    "unknown subject": (_set(0, subject="zed"), "shots[0].subject", "characters: pip, bo"),
    "speaker not a name": (_set(0, speaker="pip and bo"), "shots[0].speaker", "not one word"),
    "speaker without dialogue": (_set(2, speaker="pip"), "shots[2].speaker", "only when the shot has dialogue"),
    "r2v subject without portrait": (lambda d: d["characters"][1].pop("reference_image"), "shots[1].subject",
                                     "bo has no reference_image"),
}


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
def test_ambiguous_or_unknown_names_are_refused_naming_the_field(case):
    mutate, field, reason = case
    data = two_characters()
    mutate(data)
    error = story_error(data)
    assert error.field == field and reason in error.reason, str(error)


def test_r2v_without_portraits_names_the_mode_and_errors_come_in_document_order():
    data = two_characters()
    for c in data["characters"]:
        c.pop("reference_image")
    data["shots"][1].pop("subject")
    data["shots"][2].pop("subject")
    assert story_error(data).field == "shots[1].mode"
    data = two_characters()
    data["shots"][2].pop("subject")
    data["shots"][0]["speaker"] = "zed"  # earlier in the document than shots[2].subject
    assert story_error(data).field == "shots[0].speaker"


# ------------------------------------------------------------------------------------ conditioning: per shot
def test_each_shot_carries_its_own_characters_references(media):
    data = two_characters()
    data["shots"].insert(1, {"duration": 1, "caption": "bo walks left", "subject": "bo"})  # silent: bo's voice
    prompt = parse_story_prompt(data, base_dir=media)
    story = prepare_story(prompt, TOY, toy_codecs())
    # shot 0 (t2v, pip speaks, no subject among two portraits) carries no portrait: only r2v shots look at one
    assert story.ref_owners == ((None, "pip"), ("bo", "bo"), ("bo", "bo"), ("pip", "pip"))
    pip, bo = encoded(media, "pip"), encoded(media, "bo")
    assert not np.array_equal(pip[0], bo[0]) and not np.array_equal(pip[1], bo[1])
    inputs = stack_stories([story], TOY, toy_codecs())
    assert inputs.shot_refs is not None and inputs.num_shots == TOY.max_shots
    for i, (portrait, (_, voice, mask)) in enumerate([(None, pip), (bo[0], bo), (bo[0], bo), (pip[0], pip)]):
        ref = shot_ref(inputs.per_shot_refs(), i)
        assert ref.image_valid == (portrait is not None), f"shot {i}"
        np.testing.assert_array_equal(ref.image, np.zeros_like(pip[0]) if portrait is None else portrait, err_msg=f"shot {i}")
        np.testing.assert_array_equal(ref.audio, voice, err_msg=f"shot {i}")
        np.testing.assert_array_equal(ref.audio_mask, mask, err_msg=f"shot {i}")
    assert bo[2].sum() < TOY.ref_audio_frames  # bo's clip is shorter than Fr: its padding stays masked
    # a shot with no subject among several portraits carries none; one whose speaker has no voice carries none
    data = two_characters()
    data["characters"][1].pop("reference_voice")
    data["shots"].append({"duration": 1, "caption": "both stand still", "dialogue": "so ri", "speaker": "bo"})
    story = prepare_story(parse_story_prompt(data, base_dir=media), TOY, toy_codecs())
    assert story.ref_owners == ((None, "pip"), ("bo", None), ("pip", "pip"), (None, None))
    ref = shot_ref(stack_stories([story], TOY, toy_codecs()).shot_refs, 3)
    assert ref.image_valid == 0 and not ref.image.any() and not ref.audio_mask.any() and not ref.audio.any()


def test_one_character_story_gives_the_inputs_it_always_had(media):
    data = two_characters()
    data["characters"] = [character("pip")]
    for shot in data["shots"]:
        shot.pop("speaker", None), shot.pop("subject", None)
    story = prepare_story(parse_story_prompt(data, base_dir=media), TOY, toy_codecs())
    portrait, voice, mask = encoded(media, "pip")
    k = len(data["shots"])
    np.testing.assert_array_equal(story.shot_ref_image, np.broadcast_to(portrait, (k, *portrait.shape)))
    np.testing.assert_array_equal(story.shot_ref_audio, np.broadcast_to(voice, (k, *voice.shape)))
    np.testing.assert_array_equal(story.shot_ref_audio_mask, np.broadcast_to(mask, (k, *mask.shape)))
    inputs = stack_stories([story], TOY, toy_codecs())
    assert inputs.shot_refs is None  # story-level references, as before per-shot references existed
    np.testing.assert_array_equal(inputs.refs.image[0], portrait)
    np.testing.assert_array_equal(inputs.refs.audio[0], voice)
    np.testing.assert_array_equal(inputs.refs.audio_mask[0], mask)
    assert float(inputs.refs.image_valid[0]) == 1.0
    # the same story with its per-shot references given explicitly: every real shot sees exactly `refs`
    explicit = make_story_inputs(TOY, **_arguments(story), shot_refs=References(
        story.shot_ref_image[None], story.shot_ref_image_valid[None], story.shot_ref_audio[None],
        story.shot_ref_audio_mask[None]))
    assert jax.tree.all(jax.tree.map(np.array_equal, explicit.shots, inputs.shots))
    broadcast = inputs.per_shot_refs()
    for name in ("image", "image_valid", "audio", "audio_mask"):
        ours, theirs = np.asarray(getattr(explicit.shot_refs, name)), np.asarray(getattr(broadcast, name))
        np.testing.assert_array_equal(ours[:k], theirs[:k], err_msg=name)
        assert not ours[k:].any(), name  # padding shots: zeros, invalid


def _arguments(story) -> dict:
    """`make_story_inputs` arguments of one prepared story's shots (no references)."""
    names = ("video_context", "audio_context", "context_mask", "modes", "cut_strength", "n_frames", "n_audio", "first_frame")
    return {name: getattr(story, name)[None] for name in names}


def test_shot_refs_are_checked_naming_the_field(media):
    story = prepare_story(parse_story_prompt(two_characters(), base_dir=media), TOY, toy_codecs())
    good = References(story.shot_ref_image[None], story.shot_ref_image_valid[None], story.shot_ref_audio[None],
                      story.shot_ref_audio_mask[None])
    bad = {
        "shot_refs.image": good.replace(image=good.image[:, :2]),
        "shot_refs.audio": good.replace(audio=good.audio[..., :8]),
        "shot_refs.audio_mask": good.replace(audio_mask=good.audio_mask * 0.5),
        "shot_refs.image_valid": good.replace(image_valid=np.zeros_like(good.image_valid)),  # r2v shots need one
    }
    for field, refs in bad.items():
        with pytest.raises(StoryInputError, match=field.replace(".", r"\.")):
            make_story_inputs(TOY, **_arguments(story), shot_refs=refs)
    with pytest.raises(StoryInputError, match="shot_refs"):
        make_story_inputs(TOY, **_arguments(story), shot_refs={"image": good.image})


# ------------------------------------------------------------------------------------------- the sampler
def test_generate_story_with_broadcast_shot_refs_is_bit_identical():
    from helpers.story_fixtures import EXEC, SC, default_model, story

    from unityshots_jax.ltx.sampler import SamplerConfig
    from unityshots_jax.story.shot_scan import SamplingConfig, generate_story

    graphdef, params = default_model()
    k = 2
    inputs = story(SC, k, [["r2v", "t2v"], ["t2v", "r2v"]], seed=4)
    host = jax.tree.map(np.asarray, inputs.refs)
    per_shot = jax.tree.map(lambda x: np.repeat(x[:, None], k, 1), host)  # [batch, k, …]
    given = make_story_inputs(SC, **_story_arguments(inputs, k), ref_image=host.image, ref_audio=host.audio,
                              ref_audio_mask=host.audio_mask, shot_refs=per_shot)
    sampling = SamplingConfig(SamplerConfig(steps=2))
    key = jax.random.key(3)
    video, audio, _ = generate_story(graphdef, params, inputs, key, sampling, EXEC)
    video_g, audio_g, _ = generate_story(graphdef, params, given, key, sampling, EXEC)
    assert np.abs(np.asarray(video[:k])).mean() > 0.05
    np.testing.assert_array_equal(np.asarray(video_g), np.asarray(video))
    np.testing.assert_array_equal(np.asarray(audio_g), np.asarray(audio))
    # another voice on shot 1 only: shot 0 is unchanged, shot 1 hears it
    other = per_shot.replace(audio=per_shot.audio.copy())
    other.audio[:, 1] = np.random.default_rng(9).standard_normal(other.audio[:, 1].shape)
    changed = given.replace(shot_refs=make_story_inputs(SC, **_story_arguments(inputs, k), shot_refs=other).shot_refs)
    video_c, audio_c, _ = generate_story(graphdef, params, changed, key, sampling, EXEC)
    np.testing.assert_array_equal(np.asarray(audio_c[0]), np.asarray(audio[0]))
    np.testing.assert_array_equal(np.asarray(video_c[0]), np.asarray(video[0]))
    assert np.abs(np.asarray(audio_c[1]) - np.asarray(audio[1])).max() > 1e-4


def _story_arguments(inputs, k: int) -> dict:
    """The `make_story_inputs` arguments (batch first, k shots) that rebuild `inputs`' shots and negatives."""
    shots = jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1)[:, :k], inputs.shots)
    names = {"modes": "mode", **{n: n for n in ("video_context", "audio_context", "context_mask", "cut_strength",
                                                 "boundary", "n_frames", "n_audio", "first_frame")}}
    negatives = {f"negative_{n}": np.asarray(getattr(inputs, f"negative_{n}"))
                 for n in ("video_context", "audio_context", "context_mask")}
    return {arg: getattr(shots, field) for arg, field in names.items()} | negatives
