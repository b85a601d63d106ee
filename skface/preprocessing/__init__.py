"""Face preprocessing: LFW crops sized for embedding networks, local contrast normalisation."""

from ._contrast import LocalContrastNormalizer
from ._crop import LFW_FACE_BOX, lfw_crop

__all__ = ["LFW_FACE_BOX", "LocalContrastNormalizer", "lfw_crop"]
