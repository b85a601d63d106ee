"""The face-api (dlib) ResNet face descriptor as a registered model: an aligner to dlib's chips, then the network."""

from ..models import ModelSource
from ._faceapi import HOMEPAGE, LICENSE, faceapi_weights

__all__ = ["FACEAPI_RECOGNITION", "build_recognition", "recognition_pipeline"]

# dlib's face chips, which its ResNet was trained on: 150x150, padding 0.25 around dlib's
# mean face (brows to mouth).
CHIP_SIZE = 150
CHIP_PADDING = 0.25


def recognition_pipeline(embedder, *, detector=None):
    """``FaceAligner`` to dlib's 150x150 chips, then ``embedder`` frozen.

    Parameters
    ----------
    embedder : CenterLossEmbedder
        Fitted, with the ``faceapi_resnet`` backbone.
    detector : FaceDetector, default=None
        None: the aligner's default (MTCNN, whose 5 points place the chip).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``"align"`` and ``"embed"`` (a ``FrozenEstimator``: fitting
        the pipeline, or a pipeline around it, never retrains the network;
        ``pipeline[-1].estimator`` is the embedder itself, to fine-tune).
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    from ..align import FaceAligner

    aligner = FaceAligner(detector, size=CHIP_SIZE, padding=CHIP_PADDING, template="dlib")
    return Pipeline([("align", aligner.fit()), ("embed", FrozenEstimator(embedder))])


def build_recognition(path, *, cache_home=None):
    """Convert the face-api recognition network into an skface model file at ``path``."""
    from .._persist import save
    from ..estimators import CenterLossEmbedder
    from ..nn.faceapi_resnet import FACEAPI_MEAN_RGB, state_dict_from_tfjs

    weights = state_dict_from_tfjs(faceapi_weights("face_recognition_model", cache_home=cache_home))
    embedder = CenterLossEmbedder.from_backbone_weights(
        weights, image_shape=(CHIP_SIZE, CHIP_SIZE, 3),
        mean=[m / 255 for m in FACEAPI_MEAN_RGB], std=[1.0, 1.0, 1.0],
        backbone="faceapi_resnet", test_flip=False, device="cpu", verbose=0,
    )
    # Saved with device="auto": the loaded model runs on a GPU where there is one.
    embedder.set_params(device="auto")
    return save(recognition_pipeline(embedder), path, info={
        "model": "faceapi_recognition", "source": FACEAPI_RECOGNITION.homepage,
        "license": FACEAPI_RECOGNITION.license,
    })


FACEAPI_RECOGNITION = ModelSource(
    build=build_recognition,
    filename="faceapi_recognition.skface",
    description=(
        "dlib's ResNet-29 face descriptor (face-api 1.7.15 weights), behind MTCNN and "
        "dlib-chip alignment; dlib reports 99.38% on LFW."
    ),
    input="images of any size (arrays, lists, files); aligned to 150x150 dlib chips",
    output="(n, 128) unit-length face descriptors (compare by cosine similarity)",
    license=LICENSE + "; network trained by Davis King (dlib, Boost licence)",
    homepage=HOMEPAGE,
    citation=(
        "D. E. King, 'Dlib-ml: A Machine Learning Toolkit', JMLR 10, 2009; K. He et al., "
        "'Deep Residual Learning for Image Recognition', CVPR 2016"
    ),
)
