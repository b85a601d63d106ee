"""Named demo settings: how much data and training each stage of the demo gets."""

from dataclasses import dataclass, replace

__all__ = ["DemoSettings", "PRESETS", "get_settings"]


@dataclass(frozen=True)
class DemoSettings:
    """How much data and training each stage of ``skface demo`` gets.

    ``n_*`` fields cap the number of training images (None: all of them).

    Parameters
    ----------
    name : str
        The preset's name, shown in the report.
    align_n_frames : int
        YouTube Faces keypoint test frames the alignment stage detects faces in.
    dbn_layers : tuple of int
        ``DBNReconstructor.hidden_layer_sizes``.
    dbn_pretrain_epochs, dbn_finetune_epochs : int
        Contrastive-divergence epochs per RBM, then fine-tuning epochs.
    dbn_n_train : int or None
        LFW ``dev_train`` faces the DBN trains on.
    sdae_size : int
        Side of the UTKFace images given to ``ConvSDAEFeatures`` (RGB).
    sdae_channels : tuple of int
        ``ConvSDAEFeatures.layer_channels``.
    sdae_pretrain_epochs : int
        Denoising epochs per layer.
    sdae_n_faces : int or None
        UTKFace faces used (80% train, 20% test).
    kp_size : int
        ``KeypointRegressor.input_size`` (grey).
    kp_channels : tuple of int
        ``KeypointRegressor.layer_channels`` (one conv per block).
    kp_epochs : int
        Training epochs.
    kp_n_train : int or None
        Training frames of ``youtube_faces_keypoints``.
    emb_size : int
        Crop size the embedder trains on (random crops of ``emb_size + emb_size // 8``).
    emb_width : int
        Width of the ``small_cnn`` backbone.
    emb_epochs : int
        Training epochs of ``CenterLossEmbedder``.
    emb_n_train : int or None
        LFW ``dev_train`` images the embedder trains on.
    """

    name: str
    align_n_frames: int = 200
    # The defaults are the "quick" preset: about 4 minutes on 2 quiet CPU cores
    # (cold cache), so that a busy machine still finishes in under 10.
    dbn_layers: tuple = (512, 256, 64)
    dbn_pretrain_epochs: int = 5
    dbn_finetune_epochs: int = 30
    dbn_n_train: int = None
    sdae_size: int = 32
    sdae_channels: tuple = (32, 64, 128)
    sdae_pretrain_epochs: int = 8
    sdae_n_faces: int = None
    kp_size: int = 48
    kp_channels: tuple = (32, 64, 128, 128)
    kp_epochs: int = 25
    kp_n_train: int = None
    emb_size: int = 48
    emb_width: int = 24
    emb_epochs: int = 12
    emb_n_train: int = None


PRESETS = {
    # For the test suite: every stage runs end to end in seconds; the numbers mean little.
    "smoke": DemoSettings(
        name="smoke", align_n_frames=16,
        dbn_layers=(64, 16), dbn_pretrain_epochs=1, dbn_finetune_epochs=2, dbn_n_train=200,
        sdae_size=16, sdae_channels=(8, 16), sdae_pretrain_epochs=1, sdae_n_faces=200,
        kp_size=32, kp_channels=(8, 16, 16), kp_epochs=2, kp_n_train=200,
        emb_size=32, emb_width=8, emb_epochs=2, emb_n_train=400,
    ),
    # The default: the whole demo in under 10 minutes on 2 CPU cores.
    "quick": DemoSettings(name="quick"),
    # Larger models and more epochs: meant for a GPU.
    "full": DemoSettings(
        name="full", align_n_frames=770,
        dbn_layers=(1000, 500, 250, 64), dbn_pretrain_epochs=20, dbn_finetune_epochs=50,
        dbn_n_train=None,
        sdae_size=48, sdae_channels=(32, 64, 128, 256), sdae_pretrain_epochs=10,
        sdae_n_faces=None,
        kp_size=96, kp_channels=(32, 64, 128, 256, 256), kp_epochs=80, kp_n_train=None,
        emb_size=96, emb_width=32, emb_epochs=30, emb_n_train=None,
    ),
}


def get_settings(preset, **overrides):
    """The named preset, with fields replaced by ``overrides``.

    Raises
    ------
    ValueError
        For an unknown preset name or field.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown demo preset {preset!r}; choose one of {sorted(PRESETS)}.")
    try:
        return replace(PRESETS[preset], **overrides)
    except TypeError as exc:
        raise ValueError(f"Bad demo setting: {exc}") from None
