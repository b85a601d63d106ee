"""Face dataset fetchers in the ``sklearn.datasets`` style, and their plugin registry."""

from ._celeba import fetch_celeba
from ._download import ChecksumError, DownloadError
from ._home import get_cache_home, get_data_home
from ._imdb_wiki import fetch_imdb_wiki
from ._keypoints import (
    fetch_facial_keypoints,
    fetch_youtube_faces_keypoints,
    write_keypoints_submission,
)
from ._lfw import fetch_lfw_gender, fetch_lfw_pairs, fetch_lfw_people
from ._olivetti import fetch_olivetti_faces
from ._orl import fetch_orl_faces
from ._registry import DatasetInfo, fetch, get_dataset_info, get_fetcher, list_datasets
from ._utkface import fetch_utkface

__all__ = [
    "ChecksumError",
    "DatasetInfo",
    "DownloadError",
    "fetch",
    "fetch_celeba",
    "fetch_facial_keypoints",
    "fetch_imdb_wiki",
    "fetch_lfw_gender",
    "fetch_lfw_pairs",
    "fetch_lfw_people",
    "fetch_olivetti_faces",
    "fetch_orl_faces",
    "fetch_utkface",
    "fetch_youtube_faces_keypoints",
    "get_cache_home",
    "get_data_home",
    "get_dataset_info",
    "get_fetcher",
    "list_datasets",
    "write_keypoints_submission",
]
