"""Training data pipeline: record codec and validation, ArrayRecord writer, grain loader (determinism, host
sharding, iterator state, padding, boundary derivation). Tiny shapes; runs in seconds on CPU."""

from __future__ import annotations

import dataclasses
import json
import struct

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from unityshots_jax.data import (
    IteratorHandler,
    IteratorRestore,
    IteratorSave,
    RandomStorySource,
    RecordError,
    StoryRecord,
    decode_record,
    derive_boundary,
    encode_record,
    make_story_loader,
    open_story_source,
    pad_story,
    random_story,
    read_manifest,
    restore_iterator_state,
    save_iterator_state,
    validate_record,
    write_records,
)
from unityshots_jax.data.story_record import OPTIONAL_FIELDS, REQUIRED_FIELDS
from unityshots_jax.story.boundary_gate import boundary_score
from unityshots_jax.story.story_config import StoryConfig

CFG = StoryConfig(
    max_shots=5, video_frames=6, height=2, width=3, latent_channels=4, audio_frames=7, audio_channels=4,
    text_tokens=5, ltm_frames=1, stm_frames=2, frame_limit=32, ref_audio_frames=6,
)  # fmt: skip
DV, DA = 6, 3
DIMS = dict(video_context_dim=DV, audio_context_dim=DA)


def story(seed=0, **kw) -> StoryRecord:
    return random_story(CFG, np.random.default_rng(seed), **DIMS, **kw)


def assert_records_equal(a: StoryRecord, b: StoryRecord) -> None:
    assert a.story_id == b.story_id and bool(a.has_ref_image) == bool(b.has_ref_image)
    for name in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        if name == "has_ref_image":
            continue
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            x, y = np.asarray(x), np.asarray(y)
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name


def loader(source, seed=0, **kw):
    kw.setdefault("batch_size", 2)
    return make_story_loader(source, CFG, **DIMS, seed=seed, **kw)


def batches_equal(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)


def row_keys(batch) -> list[bytes]:
    """An identity per story in a batch (its padded video latents' bytes)."""
    return [batch.video_latents[i].tobytes() for i in range(batch.video_latents.shape[0])]


# ---------------------------------------------------------------- record format


@pytest.mark.unit
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_encode_decode_bit_exact(dtype):
    for seed, source in enumerate(("given", "signals", "prior")):
        rec = story(seed, dtype=dtype, boundary_source=source)
        back = decode_record(encode_record(rec))
        assert_records_equal(rec, back)
        validate_record(back, CFG, DV, DA)
    assert np.asarray(back.video_latents).dtype == np.dtype(dtype)


@pytest.mark.unit
def test_bytes_are_safetensors():
    blob = encode_record(story(1))
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    assert n % 8 == 0 and header["__metadata__"]["story_id"].startswith("random-")
    assert header["video_latents"]["dtype"] == "F32" and header["has_ref_image"]["shape"] == []


def _expect(field, fn, record_name=None):
    with pytest.raises(RecordError) as e:
        fn()
    assert e.value.field == field and field in str(e.value), str(e.value)
    if record_name:
        assert record_name in str(e.value), str(e.value)
    return e.value


@pytest.mark.unit
def test_validation_errors_name_field_and_record():
    rec = story(2, k=3)
    sid = rec.story_id
    bad_shape = dataclasses.replace(rec, video_latents=np.zeros((3, 6, 2, 5, 4), np.float32))
    _expect("video_latents", lambda: validate_record(bad_shape, CFG, DV, DA), sid)
    too_many = story(3, k=CFG.max_shots + 1)
    _expect("video_latents", lambda: validate_record(too_many, CFG, DV, DA), too_many.story_id)
    nan = np.array(rec.audio_context)
    nan[1, 2, 0] = np.nan
    err = _expect("audio_context", lambda: validate_record(dataclasses.replace(rec, audio_context=nan), CFG, DV, DA), sid)
    assert "NaN" in str(err)
    _expect("video_context", lambda: validate_record(rec, CFG, DV + 1, DA), sid)
    short = dataclasses.replace(rec, n_frames=np.full(3, CFG.stm_frames - 1, np.int32))
    _expect("n_frames", lambda: validate_record(short, CFG, DV, DA), sid)
    _expect("cut_type", lambda: validate_record(dataclasses.replace(rec, cut_type=np.array([1, 1, 2])), CFG, DV, DA), sid)
    _expect("n_audio", lambda: validate_record(dataclasses.replace(rec, n_audio=np.ones(3, np.float32)), CFG, DV, DA), sid)
    no_ref = dataclasses.replace(rec, has_ref_image=False, allowed_modes=np.ones((3, 3), bool))
    _expect("allowed_modes", lambda: validate_record(no_ref, CFG, DV, DA), sid)
    _expect("boundary", lambda: validate_record(dataclasses.replace(rec, boundary=np.full(3, 1.5, np.float32)), CFG, DV, DA), sid)


@pytest.mark.unit
def test_corrupt_bytes_raise_record_error():
    blob = encode_record(story(4))
    _expect("bytes", lambda: decode_record(blob[: len(blob) - 3], source="record 9"), "record 9")
    _expect("bytes", lambda: decode_record(blob[:20]))
    _expect("bytes", lambda: decode_record(blob + b"\0"))
    (n,) = struct.unpack("<Q", blob[:8])
    _expect("bytes", lambda: decode_record(blob[:8] + b"x" + blob[9:]))  # bad JSON
    header = json.loads(blob[8 : 8 + n])
    header["n_frames"]["data_offsets"][1] += 4  # bad offsets
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    _expect("bytes", lambda: decode_record(struct.pack("<Q", len(raw)) + raw + blob[8 + n :]))
    header["n_frames"]["data_offsets"][1] -= 4
    header["__metadata__"]["format"] = "other"
    raw = json.dumps(header).encode()
    _expect("format", lambda: decode_record(struct.pack("<Q", len(raw)) + raw + blob[8 + n :]))


# ---------------------------------------------------------------- writer + reader


@pytest.mark.unit
def test_write_read_round_trip(tmp_path):
    records = [story(10 + i, dtype=ml_dtypes.bfloat16) for i in range(6)]
    paths = write_records(str(tmp_path / "ds" / "train"), records, 2, cfg=CFG, **DIMS, codec="toy_world")
    manifest, listed = read_manifest(str(tmp_path / "ds" / "train"))
    assert listed == paths and manifest["count"] == 6 and [s["count"] for s in manifest["shards"]] == [3, 3]
    assert manifest["codec"] == "toy_world"
    assert not list((tmp_path / "ds").glob("*.tmp-*"))
    src = open_story_source(str(tmp_path / "ds" / "train"), cfg=CFG, **DIMS)
    by_id = {r.story_id: r for r in records}
    read = [decode_record(src[i]) for i in range(len(src))]
    assert sorted(r.story_id for r in read) == sorted(by_id)
    for r in read:
        assert_records_equal(by_id[r.story_id], r)
    got = [k for b in loader(src, num_epochs=1, shuffle=False, batch_size=3) for k in row_keys(b)]
    want = [pad_story(r, CFG).video_latents.tobytes() for r in read]
    assert got == want
    other_dims = dict(video_context_dim=7, audio_context_dim=DA)
    _expect("config_fingerprint", lambda: open_story_source(str(tmp_path / "ds" / "train"), cfg=CFG, **other_dims))
    _expect("codec", lambda: open_story_source(str(tmp_path / "ds" / "train"), cfg=CFG, **DIMS, codec="ltx23"))
    assert len(open_story_source(str(tmp_path / "ds" / "train"), cfg=CFG, **DIMS, codec="toy_world")) == 6


@pytest.mark.unit
def test_writer_validates_and_leaves_nothing(tmp_path):
    bad = dataclasses.replace(story(20), n_frames=np.zeros(story(20).num_shots, np.int32))
    with pytest.raises(RecordError, match="n_frames"):
        write_records(str(tmp_path / "x"), [story(21), bad], 2, cfg=CFG, **DIMS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_loader_raises_on_corrupt_record():
    good = RandomStorySource(CFG, 3, 0, **DIMS)
    blobs = [good[0], good[1][:-5], good[2]]
    with pytest.raises(RecordError, match="record 1 of list.*bytes"):
        list(loader(blobs, num_epochs=1, shuffle=False, batch_size=1))


# ---------------------------------------------------------------- loader behaviour


@pytest.mark.unit
def test_determinism():
    src = RandomStorySource(CFG, 8, 0, **DIMS)
    first = [next(it) for it in [iter(loader(src, seed=5))] for _ in range(4)]
    again = [next(it) for it in [iter(loader(src, seed=5))] for _ in range(4)]
    other = [next(it) for it in [iter(loader(src, seed=6))] for _ in range(4)]
    assert all(batches_equal(a, b) for a, b in zip(first, again))
    assert not all(batches_equal(a, b) for a, b in zip(first, other))


@pytest.mark.unit
def test_host_shards_are_disjoint_and_cover():
    import grain

    src = RandomStorySource(CFG, 8, 1, **DIMS)
    seen = []
    for index in (0, 1):
        opts = grain.sharding.ShardOptions(shard_index=index, shard_count=2, drop_remainder=True)
        seen.append([k for b in loader(src, seed=3, shard_options=opts, num_epochs=1) for k in row_keys(b)])
    everything = {pad_story(src.record(i), CFG).video_latents.tobytes() for i in range(8)}
    assert len(seen[0]) == len(seen[1]) == 4
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == everything


@pytest.mark.unit
def test_iterator_state_resumes_exactly(tmp_path):
    src = RandomStorySource(CFG, 6, 2, **DIMS)
    it = iter(loader(src, seed=9))
    for _ in range(2):
        next(it)
    save_iterator_state(str(tmp_path / "state"), it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]  # crosses an epoch boundary (3 batches per epoch)
    resumed = restore_iterator_state(str(tmp_path / "state"), iter(loader(src, seed=9)))
    assert all(batches_equal(a, b) for a, b in zip(expected, [next(resumed) for _ in range(4)]))
    again = iter(loader(src, seed=9))
    again.set_state(state)
    assert batches_equal(expected[0], next(again))
    with pytest.raises(ValueError, match="Sampler"):
        iter(loader(src, seed=10)).set_state(state)


@pytest.mark.unit
def test_iterator_state_in_orbax_manager(tmp_path):
    import orbax.checkpoint as ocp

    src = RandomStorySource(CFG, 6, 2, **DIMS)
    it = iter(loader(src, seed=4))
    next(it)
    mgr = ocp.CheckpointManager(str(tmp_path / "ckpt"), item_names=("iter",), item_handlers={"iter": IteratorHandler()})
    mgr.save(1, args=ocp.args.Composite(iter=IteratorSave(it)))
    mgr.wait_until_finished()
    expected = [next(it) for _ in range(2)]
    fresh = iter(loader(src, seed=4))
    mgr.restore(1, args=ocp.args.Composite(iter=IteratorRestore(fresh)))
    mgr.close()
    assert all(batches_equal(a, next(fresh)) for a in expected)


@pytest.mark.unit
def test_padding_to_max_shots():
    rec = story(30, k=2, boundary_source="prior", p_ref_audio=1.0, ref_audio_frames=CFG.ref_audio_frames + 3)
    ex = pad_story(rec, CFG, latent_dtype=ml_dtypes.bfloat16)
    assert ex.video_latents.shape == (5, 6, 2, 3, 4) and ex.video_latents.dtype == ml_dtypes.bfloat16
    assert ex.shot_valid.tolist() == [True, True, False, False, False]
    assert ex.n_frames[2:].tolist() == [CFG.video_frames] * 3 and ex.n_audio[2:].tolist() == [CFG.audio_frames] * 3
    assert (ex.context_mask[2:] == 1).all() and not ex.video_latents[2:].astype(np.float32).any()
    assert ex.allowed_modes[2:].tolist() == [[True, False, False]] * 3
    f = rec.video_latents.shape[1]
    assert np.array_equal(ex.video_latents[:2, :f], rec.video_latents.astype(ml_dtypes.bfloat16))
    assert not ex.video_latents[:, f:].astype(np.float32).any()
    assert ex.ref_audio.shape == (CFG.ref_audio_frames, 4) and ex.ref_audio_mask.shape == (CFG.ref_audio_frames,)


@pytest.mark.unit
def test_boundary_derivation():
    g, pri = CFG.gate, np.asarray(CFG.cut_priors, np.float32)
    cut = np.array([0, 1, 2, 2], np.int32)
    tau = pri[cut]
    base = story(40, k=4, boundary_source="prior")
    base = dataclasses.replace(base, cut_type=cut)
    ex = pad_story(base, CFG)
    assert np.allclose(ex.cut_strength[:4], tau) and np.allclose(ex.boundary[:4], np.clip(tau * (g.alpha + g.beta + g.gamma), 0, 1))
    given = np.array([0.0, 0.3, 0.9, 0.2], np.float32)
    assert np.array_equal(pad_story(dataclasses.replace(base, boundary=given), CFG).boundary[:4], given)
    s_vis, s_aud = np.array([0.1, 0.5, 0.9, 0.2], np.float32), np.array([1.0, 0.0, 0.4, 0.7], np.float32)
    with_signals = dataclasses.replace(base, s_vis=s_vis, s_aud=s_aud)
    ones = np.ones(4, np.float32)
    want = np.asarray(boundary_score(jnp.asarray(tau), s_vis, s_aud, ones, g))
    assert np.allclose(derive_boundary(with_signals, tau, g), want, atol=1e-7)
    assert np.allclose(pad_story(with_signals, CFG).boundary[:4], want, atol=1e-7)


@pytest.mark.unit
def test_record_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(RecordError("story 'a' (record 3)", "n_frames", "too short")))
    assert (err.record, err.field, str(err)) == ("story 'a' (record 3)", "n_frames", "story 'a' (record 3): n_frames: too short")


@pytest.mark.slow
def test_worker_processes_give_the_same_batches():
    src = RandomStorySource(CFG, 6, 2, **DIMS)
    ref = iter(loader(src, seed=9))
    it = iter(loader(src, seed=9, worker_count=1))
    assert all(batches_equal(next(ref), next(it)) for _ in range(4))
    state = it.get_state()
    expected = next(it)
    resumed = iter(loader(src, seed=9, worker_count=1))
    resumed.set_state(state)
    assert batches_equal(expected, next(resumed))
