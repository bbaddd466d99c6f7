"""The toy world (`unityshots_jax/toy_world/`): its codecs (video box filter + DCT, audio sine projections), the
exactness of its detectors on codec round trips (every identity, voice, world, lighting, framing and action),
cut strengths, the hash text encoder (pinned vectors), the ground truth of sampled stories, the training records
of `ToyWorldSource` (valid, deterministic, equal to the renders' encodings) and the trainer's toy-world loader."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from unityshots_jax.config_files import load_config
from unityshots_jax.data.record_validation import validate_record
from unityshots_jax.data.story_record import CONTINUE, FIRST, HARD, decode_record
from unityshots_jax.prompt.story_prompt import compose_shot_texts
from unityshots_jax.toy_world import text_encoder
from unityshots_jax.toy_world import world_spec as ws
from unityshots_jax.toy_world.codec import CodecError, ToyAudioCodec, ToyVideoCodec
from unityshots_jax.toy_world.detectors import (
    read_frame,
    read_identity,
    read_voice,
    transition_strength,
    unrelated_distance,
)
from unityshots_jax.toy_world.render import (
    channel_amplitudes,
    render_portrait,
    render_shot_audio,
    render_shot_video,
    render_voice_clip,
)
from unityshots_jax.toy_world.text_encoder import HashTextEncoder, words
from unityshots_jax.toy_world.toy_records import ToyWorldSource, durations_for, story_prompt

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "toy_world.py"
VC, AC = ToyVideoCodec(), ToyAudioCodec()
FRAMES_PER_SECOND_AUDIO = ws.SAMPLE_RATE // ws.AUDIO_HOP  # 20 audio latent frames per second


# ----------------------------------------------------------------------------------------------------- helpers


def _identity_attributes(identity: int) -> tuple[str, str, str]:
    """(colour, pattern, shape) of an identity index (the inverse of the world's identity numbering)."""
    shape = identity % len(ws.SHAPES)
    pattern = (identity // len(ws.SHAPES)) % len(ws.PATTERNS)
    return list(ws.COLOURS)[identity // (len(ws.SHAPES) * len(ws.PATTERNS))], ws.PATTERNS[pattern], ws.SHAPES[shape]


def character(identity: int, name: str = "pip") -> ws.Character:
    return ws.Character(name, *_identity_attributes(identity))


def plan(cut: str, framing: str, action: str, x: float, *, duration: float = 1.0,
         syllables: tuple[float, ...] | None = None) -> ws.ShotPlan:
    """A shot standing on the ground at x; silent unless `syllables` (one loudness per audio latent frame)."""
    n_audio = round(duration * FRAMES_PER_SECOND_AUDIO)
    syllables = (0.0,) * n_audio if syllables is None else tuple(syllables)
    dialogue = "ba lo mi" if max(syllables, default=0.0) > 0 else None
    return ws.ShotPlan(duration, cut, framing, action, float(x), ws.ground_y(framing), dialogue, syllables)


def story(char: ws.Character, shots, *, world: str = "meadow", lighting: str = "bright", music: bool = False):
    return ws.ToyStory("test", world, lighting, music, char, tuple(shots))


def continue_from(prev: ws.ShotPlan, action: str | None = None, duration: float = 1.0) -> ws.ShotPlan:
    """A CONTINUE shot starting where `prev` ends (the position one frame after its last)."""
    x = ws.shot_positions(dataclasses.replace(prev, duration=prev.duration + 1 / ws.FPS))[-1, 0]
    return plan("CONTINUE", prev.framing, action or prev.action, x, duration=duration)


def video_round_trip(frames: np.ndarray) -> np.ndarray:
    return VC.decode(VC.encode(frames))


def random_frames(seed: int, frames: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (frames, ws.FRAME_SIZE, ws.FRAME_SIZE, 3)).astype(np.float32)


def sampled_stories(count: int = 40, shots: int = 5):
    return [ws.sample_story(np.random.default_rng(seed), shots, story_id=f"s{seed}") for seed in range(count)]


@pytest.fixture(scope="module")
def run():
    """The toy-world run configuration, loaded the way `unityshots train --config` loads it (no worker processes)."""
    from unityshots_jax.train.train_config import run_config

    cfg = load_config(str(CONFIG))
    cfg.data.worker_count = 0
    cfg.batch_size = 2
    return run_config(cfg)


@pytest.fixture(scope="module")
def dims(run):
    return {"video_context_dim": run.ltx.video.context_dim, "audio_context_dim": run.ltx.audio.context_dim}


# ------------------------------------------------------------------------------------------------ video codec


def test_video_latent_shape_and_encoded_render_shape():
    assert VC.latent_shape(8, 24, 24) == (2, 6, 6, 48)
    assert VC.latent_shape(16, 8, 12) == (4, 2, 3, 48)
    s = story(character(5), [plan("FIRST", "wide shot", "walks right", 8, duration=1.5)])
    frames = render_shot_video(s, 0)
    assert frames.shape == (12, 24, 24, 3) and frames.dtype == np.float32
    z = VC.encode(frames)
    assert z.shape == (3, 6, 6, 48) and z.dtype == np.float32
    assert z.shape == VC.latent_shape(*frames.shape[:3])


def test_video_decode_encode_is_the_temporal_box_filter():
    s = story(character(13), [plan("FIRST", "close-up", "walks left", 15, duration=2.0)], world="desert")
    for frames in (render_shot_video(s, 0), random_frames(0, 12)):
        mean = frames.reshape(-1, 4, *frames.shape[1:]).mean(axis=1)
        out = video_round_trip(frames)
        assert out.shape == frames.shape
        np.testing.assert_allclose(out, np.repeat(mean, 4, axis=0), atol=1e-5)
    still = render_shot_video(story(character(0), [plan("FIRST", "wide shot", "stands still", 11)]), 0)
    np.testing.assert_allclose(video_round_trip(still), still, atol=1e-5)  # a static shot is lossless


def test_video_encode_of_decode_is_identity():
    for seed in range(3):
        z = VC.encode(random_frames(seed))
        np.testing.assert_allclose(VC.encode(VC.decode(z)), z, atol=1e-5)


def test_video_flat_frame_lights_only_the_dc_channels():
    """Channel colour·16 + 4u + v; a flat colour g has DC coefficient 4·(2g − 1) / DCT_SCALE[0, 0] and no AC energy."""
    rgb = np.asarray([0.25, 0.5, 0.9], np.float32)
    z = VC.encode(np.broadcast_to(rgb, (4, 24, 24, 3)))
    expected = np.zeros(48, np.float32)
    expected[[0, 16, 32]] = 4.0 * (2.0 * rgb - 1.0) / 1.6
    np.testing.assert_allclose(z, np.broadcast_to(expected, z.shape), atol=1e-5)


def test_video_codec_rejects_bad_shapes():
    bad_frames = [
        np.zeros((8, 24, 24), np.float32),  # no colour axis
        np.zeros((8, 24, 24, 4), np.float32),  # four colours
        np.zeros((6, 24, 24, 3), np.float32),  # not whole groups of 4 frames
        np.zeros((8, 22, 24, 3), np.float32),  # not whole 4 px patches
        np.zeros((0, 24, 24, 3), np.float32),  # no frames
    ]
    for frames in bad_frames:
        with pytest.raises(CodecError):
            VC.encode(frames)
    for latents in (np.zeros((2, 6, 6, 47), np.float32), np.zeros((2, 6, 48), np.float32)):
        with pytest.raises(CodecError):
            VC.decode(latents)
    with pytest.raises(CodecError):
        VC.latent_shape(9, 24, 24)


# ------------------------------------------------------------------------------------------------ audio codec


def test_audio_round_trip_on_renders_matches_the_ground_truth_amplitudes():
    for s in sampled_stories(6, 4):
        for music in (False, True):
            s = dataclasses.replace(s, music=music)
            start = 0
            for i, shot in enumerate(s.shots):
                wave = render_shot_audio(s, i)
                z = AC.encode(wave[:, None])
                n = len(shot.syllables)
                assert wave.shape == (n * ws.AUDIO_HOP,) and z.shape == (n, 16)
                truth = channel_amplitudes(s.character.voice, np.asarray(shot.syllables), music, start)
                np.testing.assert_allclose(z, 8.0 * truth - 1.0, atol=1e-4)
                np.testing.assert_allclose(AC.encode(AC.decode(z)), z, atol=1e-4)
                start += n


@pytest.mark.parametrize("channel", [0, 7, 15])
def test_audio_pure_sine_reads_8a_minus_1_in_its_channel(channel):
    amplitude = 0.3
    t = np.arange(3 * ws.AUDIO_HOP) / ws.SAMPLE_RATE
    wave = amplitude * np.sin(2 * np.pi * ws.AUDIO_FREQS[channel] * t + 0.7)  # any phase
    z = AC.encode(wave[:, None])
    expected = np.full((3, 16), -1.0, np.float32)
    expected[:, channel] = 8.0 * amplitude - 1.0
    np.testing.assert_allclose(z, expected, atol=1e-4)


def test_audio_decode_with_start_sample_is_phase_continuous():
    z = np.random.default_rng(1).uniform(-1.0, 1.0, (10, 16)).astype(np.float32)
    start = 200  # a quarter frame: phases differ from start 0
    whole = AC.decode(z, start_sample=start)
    halves = np.concatenate([AC.decode(z[:4], start_sample=start),
                             AC.decode(z[4:], start_sample=start + 4 * ws.AUDIO_HOP)])
    assert whole.shape == (10 * ws.AUDIO_HOP, 1)
    np.testing.assert_allclose(halves, whole, atol=1e-5)
    assert not np.allclose(AC.decode(z[4:], start_sample=0), whole[4 * ws.AUDIO_HOP:], atol=1e-3)
    np.testing.assert_allclose(AC.encode(whole), z, atol=1e-4)  # magnitudes do not depend on the phase


def test_audio_codec_rejects_bad_shapes():
    for wave in (np.zeros((800, 2), np.float32), np.zeros(800, np.float32), np.zeros((799, 1), np.float32),
                 np.zeros((0, 1), np.float32)):
        with pytest.raises(CodecError):
            AC.encode(wave)
    for latents in (np.zeros((4, 15), np.float32), np.zeros(16, np.float32), np.zeros((2, 4, 16), np.float32)):
        with pytest.raises(CodecError):
            AC.decode(latents)
    assert AC.latent_shape(1600) == (2, 16) and AC.latent_rate == 20.0


# -------------------------------------------------------------------------------------------------- detectors


def identity_cases():
    """Every identity × every (world, lighting); the (framing, action) pair and position rotate so that each
    identity also meets all 8 framing × action pairs and the left edge, centre and right edge of the frame."""
    scenes = list(itertools.product(ws.WORLDS, ws.LIGHTING))
    pairs = list(itertools.product(ws.FRAMINGS, ws.ACTIONS))
    for identity in range(ws.NUM_IDENTITIES):
        for j, (world, lighting) in enumerate(scenes):
            framing, action = pairs[(identity + j) % len(pairs)]
            r = ws.FRAMINGS[framing]
            x = (r, 11.5, ws.FRAME_SIZE - 1 - r)[(identity + j) % 3]
            yield identity, world, lighting, framing, action, x


def test_identity_cases_cover_every_attribute():
    cases = list(identity_cases())
    for column, values in enumerate([range(ws.NUM_IDENTITIES), ws.WORLDS, ws.LIGHTING, ws.FRAMINGS, ws.ACTIONS]):
        assert {case[column] for case in cases} == set(values)
    per_identity = {(c[0], c[3], c[4]) for c in cases}
    assert len(per_identity) == ws.NUM_IDENTITIES * len(ws.FRAMINGS) * len(ws.ACTIONS)


def test_read_identity_is_exact_on_codec_round_trips():
    wrong = []
    for identity, world, lighting, framing, action, x in identity_cases():
        char = character(identity)
        assert char.identity == identity
        s = story(char, [plan("FIRST", framing, action, x)], world=world, lighting=lighting)
        reading = read_identity(video_round_trip(render_shot_video(s, 0)))
        if (reading.identity, reading.colour, reading.pattern, reading.shape) != (identity, char.colour,
                                                                                 char.pattern, char.shape):
            wrong.append((identity, world, lighting, framing, action, x, reading))
    assert not wrong, wrong[:5]


def test_read_identity_of_an_empty_world_is_nobody():
    from unityshots_jax.toy_world.render import background

    frames = np.repeat(background("lake", "dim")[None], 4, axis=0)
    assert read_identity(video_round_trip(frames)).identity == -1


def test_every_portrait_reads_as_its_identity():
    for identity in range(ws.NUM_IDENTITIES):
        portrait = render_portrait(character(identity))
        assert read_frame(portrait).identity == identity
        assert read_identity(video_round_trip(np.repeat(portrait[None], 4, axis=0))).identity == identity


def voice_characters() -> dict[int, ws.Character]:
    """The first identity with each voice."""
    out: dict[int, ws.Character] = {}
    for identity in range(ws.NUM_IDENTITIES):
        out.setdefault(character(identity).voice, character(identity))
    return out


@pytest.mark.parametrize("music", [False, True])
def test_read_voice_recovers_every_voice(music):
    chars = voice_characters()
    assert sorted(chars) == list(range(ws.NUM_VOICES))
    for voice, char in chars.items():
        syllables = ws.syllable_rhythm(np.random.default_rng(voice), 20, True)
        s = story(char, [plan("FIRST", "wide shot", "jumps", 10, syllables=syllables)], music=music)
        wave = render_shot_audio(s, 0)
        assert read_voice(wave) == voice
        assert read_voice(AC.decode(AC.encode(wave[:, None]))) == voice
        assert read_voice(render_voice_clip(char)) == voice


@pytest.mark.parametrize("music", [False, True])
def test_read_voice_of_silence_is_minus_one(music):
    s = story(character(3), [plan("FIRST", "close-up", "stands still", 12, duration=1.5)], music=music)
    wave = render_shot_audio(s, 0)
    assert read_voice(wave) == -1
    assert read_voice(AC.decode(AC.encode(wave[:, None]))) == -1


def test_continue_cut_is_much_weaker_than_a_hard_cut():
    """A HARD cut inside one world (same background) scores well under 1, but far above a CONTINUE cut."""
    scale = unrelated_distance(64)
    assert np.isfinite(scale) and scale > 0
    char = character(9)
    for action in ("walks right", "stands still"):
        first = plan("FIRST", "wide shot", action, 8)
        cont = continue_from(first)
        hard = plan("HARD", "close-up", action, 15)
        s = story(char, [first, cont, hard], world="street", lighting="dim")
        frames = [render_shot_video(s, i) for i in range(3)]
        soft = transition_strength(frames[0][-1], frames[1][0], scale)
        strong = transition_strength(frames[1][-1], frames[2][0], scale)
        assert strong > 0.1, (action, strong)
        assert soft < 0.25 * strong, (action, soft, strong)


# ----------------------------------------------------------------------------------------------- text encoder


def one(enc: HashTextEncoder, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One caption through the batch interface: (video `[S, Dv]`, audio `[S, Da]`, mask `[S]`)."""
    out = enc.encode([text])
    return out.video[0], out.audio[0], out.mask[0]


def test_text_encoder_shapes_and_mask():
    enc = HashTextEncoder(tokens=6, video_dim=64, audio_dim=32)
    v, a, m = one(enc, "Pip, walks LEFT!")
    assert v.shape == (6, 64) and a.shape == (6, 32) and m.shape == (6,) and m.dtype == np.int32
    assert words("Pip, walks LEFT!") == ["pip", "walks", "left"]
    assert m.tolist() == [1, 1, 1, 0, 0, 0]
    assert np.all(v[3:] == 0) and np.all(a[3:] == 0) and np.all(np.any(v[:3] != 0, axis=1))
    v, a, m = one(enc, "")
    assert m.tolist() == [1, 0, 0, 0, 0, 0] and not v.any() and not a.any()
    batch = enc.encode(["pip", "", "tam jumps"])
    assert batch.video.shape == (3, 6, 64) and batch.audio.shape == (3, 6, 32) and batch.mask.shape == (3, 6)
    np.testing.assert_array_equal(batch.video[2], one(enc, "tam jumps")[0])
    with pytest.raises(TypeError):
        enc.encode("one string")


def test_text_encoder_truncates_to_its_context_length():
    enc = HashTextEncoder(tokens=4, video_dim=16, audio_dim=8)
    long_text = "a b c d e f g"
    assert enc.truncated(long_text) and not enc.truncated("a b c d") and not enc.truncated("")
    v, a, m = one(enc, long_text)
    assert m.tolist() == [1, 1, 1, 1]
    kept = one(enc, "a b c d")
    np.testing.assert_array_equal(v, kept[0])
    np.testing.assert_array_equal(a, kept[1])


def test_text_encoder_is_deterministic_and_pinned():
    text = "pip walks left"
    first = one(HashTextEncoder(8, 64, 32), text)
    text_encoder._word_vector.cache_clear()  # recompute the hashes from scratch
    second = one(HashTextEncoder(8, 64, 32), text)
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    # token 0's position code is sin(0) = 0 on the first half: these are the word vector of "pip" itself
    v, a, _ = one(HashTextEncoder(8, 64, 32), "pip")
    np.testing.assert_allclose(v[0, :4], [1.0541731, -0.34126747, 1.4597942, 1.4218657], atol=1e-6)
    np.testing.assert_allclose(a[0, :4], [1.1067545, 1.365301, 0.92644435, -1.0368978], atol=1e-6)


def test_text_encoder_separates_words_positions_and_streams():
    enc = HashTextEncoder(4, 32, 32)
    pip, tam = one(enc, "pip")[0][0], one(enc, "tam")[0][0]
    assert np.abs(pip - tam).max() > 0.5
    v, a, _ = one(enc, "pip pip")
    assert np.abs(v[0] - v[1]).max() > 0.1  # the position code makes order visible
    assert np.abs(v[0] - a[0]).max() > 0.5  # video and audio streams read independent vectors


# ------------------------------------------------------------------------------------------- sampled stories


def test_sampled_stories_have_consistent_ground_truth():
    cuts = set()
    for s in sampled_stories():
        assert s.shots[0].cut == "FIRST"
        for i, shot in enumerate(s.shots):
            cuts.add(shot.cut)
            assert shot.duration in (1.0, 1.5, 2.0)
            assert len(shot.syllables) == round(shot.duration * FRAMES_PER_SECOND_AUDIO)
            assert (shot.dialogue is None) == (max(shot.syllables) == 0)
            assert shot.y == ws.ground_y(shot.framing)
            r = ws.FRAMINGS[shot.framing]
            pos = ws.shot_positions(shot)
            assert pos.shape == (shot.frames, 2) and pos[:, 0].min() >= r and pos[:, 0].max() <= ws.FRAME_SIZE - 1 - r
            if i == 0:
                continue
            assert shot.cut in ("CONTINUE", "HARD")
            if shot.cut == "CONTINUE":
                prev = s.shots[i - 1]
                assert shot.framing == prev.framing
                assert shot.x == pytest.approx(continue_from(prev).x)
                assert abs(shot.x - ws.shot_positions(prev)[-1, 0]) <= ws.WALK_SPEED + 1e-9
    assert cuts == {"FIRST", "CONTINUE", "HARD"}


def test_sampled_stories_use_the_allowed_durations():
    for seed in range(5):
        s = ws.sample_story(np.random.default_rng(seed), 4, durations=(0.5, 2.5))
        assert {shot.duration for shot in s.shots} <= {0.5, 2.5}


def test_composed_texts_name_the_character_only_in_the_opening_shot():
    identity_words = set(ws.COLOURS) | set(ws.PATTERNS) | set(ws.SHAPES)
    for s in sampled_stories(20, 4):
        texts = compose_shot_texts(story_prompt(s))
        assert len(texts) == len(s.shots)
        c = s.character
        assert {c.colour, c.pattern, c.shape} <= set(words(texts[0]))
        assert s.world in words(texts[0])
        for i, (text, shot) in enumerate(zip(texts, s.shots)):
            assert shot.framing in text and shot.action in text and c.name in words(text)
            assert (shot.dialogue is not None) == ("speaking" in words(text))
            if i:
                assert not identity_words & set(words(text)), text
                assert s.world not in words(text)


# ---------------------------------------------------------------------------------------------------- records


def test_durations_for_the_toy_config(run):
    assert durations_for(run.story) == (1.0, 1.5, 2.0)


def test_toy_records_decode_and_validate(run, dims):
    source = ToyWorldSource(run.story, n=8, seed=3, **dims)
    assert len(source) == 8
    for key in range(len(source)):
        record = decode_record(source[key])
        validate_record(record, run.story, dims["video_context_dim"], dims["audio_context_dim"])
        s, ref_image, ref_voice = source.story(key)
        assert record.story_id == s.story_id == f"toy-3-{key}"
        assert 3 <= record.num_shots <= run.story.max_shots
        assert record.cut_type.tolist() == [{"FIRST": FIRST, "CONTINUE": CONTINUE, "HARD": HARD}[x.cut]
                                            for x in s.shots]
        assert record.n_frames.tolist() == [x.frames // ws.TEMPORAL_SCALE for x in s.shots]
        assert record.n_audio.tolist() == [len(x.syllables) for x in s.shots]
        assert record.has_ref_image == ref_image
        assert record.allowed_modes[:, 2].tolist() == [ref_image] * record.num_shots
        assert set(np.unique(record.ref_audio_mask).tolist()) == {int(ref_voice)}


def test_toy_record_latents_are_the_codec_encodings_of_the_renders(run, dims):
    source = ToyWorldSource(run.story, n=8, seed=3, **dims)
    for key in (0, 5):
        record = decode_record(source[key])
        s, _, _ = source.story(key)
        video = VC.encode(render_shot_video(s, 0))
        n = len(video)
        np.testing.assert_array_equal(record.video_latents[0, :n], video)
        assert not record.video_latents[0, n:].any()  # padding
        audio = AC.encode(render_shot_audio(s, 0)[:, None])
        np.testing.assert_array_equal(record.audio_latents[0, : len(audio)], audio)


def test_toy_source_is_deterministic(run, dims):
    a = ToyWorldSource(run.story, n=8, seed=3, **dims)
    b = ToyWorldSource(run.story, n=8, seed=3, **dims)
    other = ToyWorldSource(run.story, n=8, seed=4, **dims)
    for key in (0, 7):
        blob = a[key]
        assert blob == a[key] == b[key]
        assert blob != other[key]
    assert a[0] != a[1]
    assert repr(a) == repr(b) and "seed=3" in repr(a) and repr(a) != repr(other)


def test_toy_source_bounds(run, dims):
    source = ToyWorldSource(run.story, n=8, seed=3, **dims)
    for key in (8, -1):
        with pytest.raises(IndexError):
            source[key]
        with pytest.raises(IndexError):
            source.story(key)
    with pytest.raises(ValueError):
        ToyWorldSource(run.story, n=0, seed=3, **dims)


def test_trainer_loader_reads_the_toy_world(run):
    from unityshots_jax.train.trainer import _loader

    assert run.data_source == "toy_world"
    batch = next(iter(_loader(run)))
    assert batch.video_latents.shape == (2, 4, 4, 6, 6, 48)
    assert batch.audio_latents.shape == (2, 4, 40, 16)
    assert batch.video_context.shape == (2, 4, 32, 64)
    assert batch.audio_context.shape == (2, 4, 32, 32)
    assert batch.context_mask.shape == (2, 4, 32)
    assert np.isfinite(batch.video_latents).all() and batch.shot_valid[:, :3].all()
