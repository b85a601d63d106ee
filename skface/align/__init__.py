"""Face detection and alignment: FaceDetector and FaceAligner, scikit-learn transformers."""

from ._aligner import FaceAligner, NoFaceError, similarity_matrix
from ._backends import DetectorBackend, list_detectors
from ._detector import Detections, FaceDetector
from ._templates import FIVE_POINTS, template_points

__all__ = [
    "DetectorBackend",
    "Detections",
    "FIVE_POINTS",
    "FaceAligner",
    "FaceDetector",
    "NoFaceError",
    "fetch_mtcnn_weights",
    "list_detectors",
    "similarity_matrix",
    "template_points",
]


def __getattr__(name):
    # MTCNN imports torch: only when its weights are asked for.
    if name == "fetch_mtcnn_weights":
        from ._mtcnn import fetch_mtcnn_weights

        return fetch_mtcnn_weights
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    # The lazy fetch_mtcnn_weights too, as documented: tab completion and dir() list it.
    return sorted(set(globals()) | set(__all__))
