"""Face detection and alignment: FaceDetector and FaceAligner, scikit-learn transformers."""

from ._aligner import FaceAligner, NoFaceError, similarity_matrix
from ._detector import Detections, FaceDetector
from ._templates import FIVE_POINTS, template_points

__all__ = [
    "Detections",
    "FIVE_POINTS",
    "FaceAligner",
    "FaceDetector",
    "NoFaceError",
    "similarity_matrix",
    "template_points",
]
