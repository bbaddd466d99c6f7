"""The LTX video VAE in Flax NNX (channels-last): config, layers, causal encoder, decoder, tiling, loading.

Entry points: `keys.load_video_encoder` / `keys.load_video_decoder` (official file or converted directory),
`tiling.Tiling` + `tiling.tiled_decode` / `tiling.tiled_encode`.
"""
