"""Small pieces against the ltx-core 1.0.0 functions they port: RoPE, timestep embedding, to_denoised,
perturbation masks. Where torch's float32 `exp` / `pow` enter (machine-dependent roundings), ours is judged by
`parity_criterion` against the same formula in float64 (`reference.float64_reference`)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from ltx_core.model.transformer.rope import (  # noqa: E402
    LTXRopeType,
    generate_freq_grid_np,
    generate_freq_grid_pytorch,
    precompute_freqs_cis,
)
from ltx_core.model.transformer.timestep_embedding import get_timestep_embedding  # noqa: E402

from helpers.inputs import audio_positions, video_positions  # noqa: E402
from unityshots_jax.parity_criterion import assert_parity  # noqa: E402
from unityshots_jax.reference.float64_reference import rope_grid_f64, sinusoidal_embedding_f64  # noqa: E402
from unityshots_jax.ltx.inputs import PERTURBATION_TYPES, Perturbations  # noqa: E402
from unityshots_jax.ltx.rope import frequency_grid, rope_tables  # noqa: E402
from unityshots_jax.ltx.timestep import timestep_embedding  # noqa: E402
from unityshots_jax.ltx.sampling import to_denoised  # noqa: E402

THETA = 10000.0
VIDEO_MAX_POS = (20, 2048, 2048)

# (name, n_axes, dim, heads, max_pos): real LTX sizes (video self-attention, audio self-attention, the A↔V
# cross RoPE over the audio width split over the video heads) and tiny ones with padding in both layouts.
ROPE_SHAPES = [
    ("video-4096", 3, 4096, 32, VIDEO_MAX_POS),
    ("audio-2048", 1, 2048, 32, (20,)),
    ("cross-2048", 1, 2048, 32, (20,)),
    ("video-tiny-pad", 3, 40, 2, VIDEO_MAX_POS),  # 6 freqs × 3 axes = 18 < 20: split pad 2, interleaved pad 4
    ("audio-tiny", 1, 16, 2, (20,)),
]


def _positions(name: str, batch: int = 2) -> np.ndarray:
    if name.startswith("video"):
        pos = video_positions(batch, 3, 4, 6)
    elif name.startswith("cross"):
        pos = video_positions(batch, 3, 4, 6)[:, 0:1]  # time axis only
    else:
        pos = audio_positions(batch, 17)
    pos = pos.copy()
    pos[1] += 0.37  # distinct samples, non-grid values
    return pos


def _reference(pos: np.ndarray, n_axes, dim, heads, max_pos, rope_type, double, out_dtype, pos_dtype=torch.float32):
    return precompute_freqs_cis(
        torch.from_numpy(pos).to(pos_dtype),
        dim=dim,
        out_dtype=out_dtype,
        theta=THETA,
        max_pos=list(max_pos),
        use_middle_indices_grid=True,
        num_attention_heads=heads,
        rope_type=LTXRopeType(rope_type),
        freq_grid_generator=generate_freq_grid_np if double else generate_freq_grid_pytorch,
    )


def _reference64(pos: np.ndarray, n_axes, dim, heads, max_pos, rope_type):
    """The RoPE tables in float64 end to end (positions, grid, angles, cos / sin): the ground truth."""
    return tuple(t.numpy() for t in precompute_freqs_cis(
        torch.from_numpy(pos).to(torch.float64), dim=dim, out_dtype=torch.float64, theta=THETA, max_pos=list(max_pos),
        use_middle_indices_grid=True, num_attention_heads=heads, rope_type=LTXRopeType(rope_type),
        freq_grid_generator=rope_grid_f64))


def _ours(pos, dim, heads, max_pos, rope_type, double, dtype, pos_dtype=jnp.float32):
    tables = rope_tables(jnp.asarray(pos, pos_dtype), dim=dim, heads=heads, max_pos=max_pos, theta=THETA,
                         rope_type=rope_type, double_precision=double, dtype=dtype)
    cos, sin = (np.asarray(jnp.asarray(x, jnp.float32)) for x in (tables.cos, tables.sin))
    if rope_type == "split":  # ours [b, t, heads, d/2], ltx-core [b, heads, t, d/2]
        cos, sin = cos.swapaxes(1, 2), sin.swapaxes(1, 2)
    assert tables.split == (rope_type == "split")
    return cos, sin


@pytest.mark.parametrize("shape", ROPE_SHAPES, ids=[s[0] for s in ROPE_SHAPES])
def test_frequency_grid_float64_is_bit_exact(shape):
    _, n_axes, dim, _, _ = shape
    ours = frequency_grid(THETA, n_axes, dim, True)
    ref = generate_freq_grid_np(THETA, n_axes, dim).numpy()
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("shape", ROPE_SHAPES, ids=[s[0] for s in ROPE_SHAPES])
def test_frequency_grid_float32(shape):
    """The float32 grid (LTX-2 headers): torch's linspace reproduced, then a correctly rounded pow (torch's float32
    pow is not, and rounds differently per machine), judged against the float64 grid."""
    _, n_axes, dim, _, _ = shape
    ours = frequency_grid(THETA, n_axes, dim, False)
    ref32 = generate_freq_grid_pytorch(THETA, n_axes, dim).numpy()
    assert ours.dtype == np.float32 and ours.shape == ref32.shape
    assert_parity("grid", ours, ref32, rope_grid_f64(THETA, n_axes, dim).numpy())
    np.testing.assert_allclose(ours, ref32, rtol=2.4e-7, atol=0)  # ≤ 2 ulp from torch's, whatever the machine


@pytest.mark.parametrize("rope_type", ["split", "interleaved"])
@pytest.mark.parametrize("shape", ROPE_SHAPES, ids=[s[0] for s in ROPE_SHAPES])
def test_rope_tables_float64_grid(shape, rope_type):
    name, n_axes, dim, heads, max_pos = shape
    pos = _positions(name)
    ref_cos, ref_sin = (t.numpy() for t in _reference(pos, n_axes, dim, heads, max_pos, rope_type, True,
                                                          torch.float32))
    cos, sin = _ours(pos, dim, heads, max_pos, rope_type, True, jnp.float32)
    expected_shape = (2, heads, pos.shape[2], dim // (2 * heads)) if rope_type == "split" else (2, pos.shape[2], dim)
    assert cos.shape == ref_cos.shape == expected_shape
    cos64, sin64 = _reference64(pos, n_axes, dim, heads, max_pos, rope_type)
    assert_parity("cos", cos, ref_cos, cos64)
    assert_parity("sin", sin, ref_sin, sin64)
    if (rope_type == "split" and dim // 2 > dim // (2 * n_axes) * n_axes) or (
        rope_type == "interleaved" and dim % (2 * n_axes)
    ):  # the padded slots are the identity rotation
        np.testing.assert_array_equal(np.asarray(cos).reshape(2, -1)[:, 0], 1.0)


_F32_TABLE_SHAPES = [
    ("video-tiny", 3, 32, 2, VIDEO_MAX_POS),
    ("audio-tiny", 1, 16, 2, (20,)),
    ROPE_SHAPES[0],
]


@pytest.mark.parametrize("rope_type", ["split", "interleaved"])
@pytest.mark.parametrize("shape", _F32_TABLE_SHAPES, ids=["video-tiny", "audio-tiny", "video-4096"])
def test_rope_tables_float32_grid(shape, rope_type):
    name, n_axes, dim, heads, max_pos = shape
    pos = _positions(name)
    ref_cos, ref_sin = (t.numpy() for t in _reference(pos, n_axes, dim, heads, max_pos, rope_type, False,
                                                          torch.float32))
    cos, sin = _ours(pos, dim, heads, max_pos, rope_type, False, jnp.float32)
    # torch's float32 pow is not correctly rounded and ours is: ~1 % of the base frequencies sit one ulp apart,
    # and for the highest (≈ π/2·10⁴, ulp 1e-3) that moves an angle by up to 1e-3 rad — as far from the float64
    # truth as torch's own rounding, which is what the criterion asks.
    cos64, sin64 = _reference64(pos, n_axes, dim, heads, max_pos, rope_type)
    assert_parity("cos", cos, ref_cos, cos64)
    assert_parity("sin", sin, ref_sin, sin64)


@pytest.mark.parametrize("rope_type", ["split", "interleaved"])
@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16"])
def test_rope_tables_bf16_positions(rope_type, out_dtype):
    """bf16 video positions (the bf16 pipelines): midpoint and pos / max_pos in bf16, as ltx-core computes them."""
    name, n_axes, dim, heads, max_pos = ROPE_SHAPES[0]
    pos = _positions(name)
    t_out = {"float32": torch.float32, "bfloat16": torch.bfloat16}[out_dtype]
    ref = _reference(pos, n_axes, dim, heads, max_pos, rope_type, True, t_out, pos_dtype=torch.bfloat16)
    ref_cos, ref_sin = (t.to(torch.float32).numpy() for t in ref)
    cos, sin = _ours(pos, dim, heads, max_pos, rope_type, True, jnp.dtype(out_dtype), pos_dtype=jnp.bfloat16)
    atol = 2e-6 if out_dtype == "float32" else 2 ** -8  # one bf16 ulp below 1
    np.testing.assert_allclose(cos, ref_cos, atol=atol, rtol=0)
    np.testing.assert_allclose(sin, ref_sin, atol=atol, rtol=0)
    # and bf16 positions really change the tables (the quantisation is reproduced, not bypassed)
    cos32, _ = _ours(pos, dim, heads, max_pos, rope_type, True, jnp.float32)
    assert np.max(np.abs(cos32 - cos)) > 1e-2


def test_timestep_embedding():
    rng = np.random.default_rng(0)
    t = np.concatenate([[0.0, 1.0, 1000.0, 999.999], rng.uniform(0, 1000, 64)]).astype(np.float32)
    ref = get_timestep_embedding(torch.from_numpy(t), 256, flip_sin_to_cos=True, downscale_freq_shift=0).numpy()
    ref64 = sinusoidal_embedding_f64(torch.from_numpy(t), 256, flip_sin_to_cos=True, downscale_freq_shift=0).numpy()
    ours = np.asarray(timestep_embedding(jnp.asarray(t)))
    assert ours.shape == ref.shape == (len(t), 256) and ours.dtype == np.float32
    assert_parity("timestep embedding", ours, ref, ref64)
    np.testing.assert_array_equal(ours[0], np.r_[np.ones(128), np.zeros(128)])  # t=0: cos 1, sin 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("sigma_kind", ["scalar", "per_token", "per_token_3d"])
def test_to_denoised(dtype, sigma_kind):
    from ltx_core.utils import to_denoised as ref_to_denoised

    rng = np.random.default_rng(1)
    t_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    latent = torch.from_numpy(rng.standard_normal((2, 5, 4)).astype(np.float32)).to(t_dtype)
    velocity = torch.from_numpy(rng.standard_normal((2, 5, 4)).astype(np.float32)).to(t_dtype)
    per_token = rng.uniform(0, 1, (2, 5)).astype(np.float32)
    per_token[:, 0] = 0.0
    if sigma_kind == "scalar":
        ours_sigma, ref_sigma = jnp.float32(0.7), torch.tensor(0.7)
    elif sigma_kind == "per_token":  # ours takes [b, t]; ltx-core's X0Model passes timesteps [b, t, 1]
        ours_sigma, ref_sigma = jnp.asarray(per_token), torch.from_numpy(per_token)[..., None]
    else:
        ours_sigma, ref_sigma = jnp.asarray(per_token)[..., None], torch.from_numpy(per_token)[..., None]
    ref = ref_to_denoised(latent, velocity, ref_sigma)
    ours = to_denoised(jnp.asarray(latent.float().numpy(), dtype), jnp.asarray(velocity.float().numpy(), dtype),
                       ours_sigma)
    assert ours.dtype == jnp.dtype(dtype) and ours.shape == (2, 5, 4)
    np.testing.assert_allclose(np.asarray(ours, np.float32), ref.float().numpy(), rtol=0,
                               atol=1e-6 if dtype == "float32" else 2 ** -6)
    if sigma_kind != "scalar":  # a clean token (sigma 0) is returned unchanged
        np.testing.assert_array_equal(np.asarray(ours[:, 0], np.float32), latent[:, 0].float().numpy())


def test_perturbations_from_spec_matches_ltx_core():
    from unityshots_jax.reference.run_reference import to_perturbations
    from unityshots_jax.reference.verify_cases import VerifyCase
    from ltx_core.guidance.perturbations import PerturbationType

    layers = 4
    spec = (
        (("skip_video_self_attn", (3,)), ("skip_audio_self_attn", (0, 3))),
        (),
        (("skip_a2v_cross_attn", None), ("skip_v2a_cross_attn", (1,)), ("skip_video_self_attn", None)),
    )
    ours = Perturbations.from_spec(spec, layers)
    ref = to_perturbations(VerifyCase("p", None, None, spec))
    for name in PERTURBATION_TYPES:
        mask = np.asarray(getattr(ours, name))
        assert mask.shape == (layers, len(spec)) and mask.dtype == np.float32
        for block in range(layers):
            # ltx-core: 0 where perturbed; ours: 1.0 where perturbed
            expected = 1.0 - ref.mask(PerturbationType(name), block, "cpu", torch.float32).numpy()
            np.testing.assert_array_equal(mask[block], expected, err_msg=f"{name} block {block}")
    assert np.asarray(ours.skip_video_self_attn).sum() == 1 + layers
    none = Perturbations.none(layers, 3)
    assert all(np.asarray(getattr(none, n)).shape == (layers, 3) and not np.asarray(getattr(none, n)).any()
               for n in PERTURBATION_TYPES)


def test_perturbations_from_spec_rejects_bad_input():
    with pytest.raises(ValueError, match="skip_everything"):
        Perturbations.from_spec(((("skip_everything", None),),), 2)
    with pytest.raises(ValueError, match="block 2 outside 0..1"):
        Perturbations.from_spec(((("skip_video_self_attn", (2,)),),), 2)
    with pytest.raises(ValueError, match="block -1"):
        Perturbations.from_spec(((("skip_video_self_attn", (-1,)),),), 2)
