"""Shape and coefficient configuration of the story model (everything fixed per compilation)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """Boundary-aware gate (paper Eq. 2, §4.2, §4.4).

    b = clamp(τ·(α·s_vis + β·s_aud + γ·s_beat), 0, 1); g_ltm = ltm[0] + ltm[1]·b; g_stm = (stm[0] + stm[1]·b)·ρ.
    z_max scales the LTM write weight z = z_max·b (Eq. 3; 1.0 = App. Table 1 / Alg. 2).
    rho_*: the content-aware refinement MLP (pooled previous shot, pooled noisy shot, cut embedding → ρ).
    rho_clamp: clamp ρ to [0.5, 1] (the paper's warm-up for the first 500 training steps).
    """

    alpha: float = 0.5
    beta: float = 0.3
    gamma: float = 0.0
    ltm: tuple[float, float] = (0.1, 0.6)
    stm: tuple[float, float] = (0.3, 0.7)
    z_max: float = 1.0
    rho_hidden: int = 128
    rho_cut_dim: int = 16
    rho_init_bias: float = 4.6  # sigmoid(4.6) ≈ 0.99: starts as the rule gate
    rho_clamp: bool = False
    learned_rho: bool = True


MEMORY_SLOTS = ("both", "ltm", "stm", "none")


@dataclasses.dataclass(frozen=True)
class StoryConfig:
    """Fixed shapes of a story; stories with fewer shots or shorter shots are padded and masked.

    video_frames / height / width: latent grid of the longest shot (a shot uses its first n_frames frames).
    audio_frames: audio latent frames of the longest shot (25 per second in LTX-2.3).
    ltm_frames / stm_frames: memory slot sizes in latent frames (paper: 2 and 4).
    frame_limit: f_lim, the temporal index ceiling of Strata-RoPE (paper: 128); the STM band is
      [f_lim − P, f_lim − 1], the LTM band [f_lim − 2P, f_lim − P − 1] with the LTM in its first frames.
    ref_image_frames: latent frames of the reference identity (an image encodes to 1).
    ref_audio_frames: audio latent frames kept from the reference voice clip (cropped / padded + masked).
    fps: video frame rate; temporal_scale / spatial_scale: VAE compression (LTX: 8, 32).
    cut_priors: the numeric priors τ of FIRST, CONTINUE, HARD (paper: 0, 0.4, 1.0).
    memory_slots: which memory slots the transformer sees — "both" (the model), or an ablation: "ltm" (long-term
      only), "stm" (short-term only), "none" (no memory); a hidden slot is masked out of attention, as at shot 0.
    """

    max_shots: int = 9
    video_frames: int = 16
    height: int = 24
    width: int = 43
    latent_channels: int = 128
    audio_frames: int = 126
    audio_channels: int = 128
    text_tokens: int = 1024
    ltm_frames: int = 2
    stm_frames: int = 4
    frame_limit: int = 128
    ref_image_frames: int = 1
    ref_audio_frames: int = 128
    fps: float = 24.0
    temporal_scale: int = 8
    spatial_scale: int = 32
    audio_hop_seconds: float = 0.01
    audio_downsample: int = 4
    cut_priors: tuple[float, float, float] = (0.0, 0.4, 1.0)
    gate: GateConfig = GateConfig()
    memory_slots: str = "both"

    def __post_init__(self) -> None:
        checks = {
            "max_shots": self.max_shots >= 1,
            "video_frames": self.video_frames >= self.stm_frames >= self.ltm_frames >= 1,
            "frame_limit": self.frame_limit >= self.video_frames + self.ref_image_frames + 2 * self.stm_frames,
            "ltm_frames": self.ltm_frames <= self.stm_frames,
            "cut_priors": list(self.cut_priors) == sorted(self.cut_priors) and len(set(self.cut_priors)) == 3,
            "memory_slots": self.memory_slots in MEMORY_SLOTS,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"StoryConfig.{name}: inconsistent value ({getattr(self, name)!r})")

    @property
    def frame_tokens(self) -> int:
        return self.height * self.width

    @property
    def video_tokens(self) -> int:
        """Tokens of the video sequence: shot, reference image, LTM, STM."""
        return self.frame_tokens * (self.video_frames + self.ref_image_frames + self.ltm_frames + self.stm_frames)

    def shift_tokens(self, override: int = 0) -> int:
        """The token count that shifts the σ distribution (training) and the LTX2 schedule (generation): `override`
        if set (e.g. 4096, LTX's maximum), else the shot's own video tokens F·H·W."""
        return int(override) or self.video_frames * self.frame_tokens

    @property
    def audio_tokens(self) -> int:
        return self.audio_frames + self.ref_audio_frames
