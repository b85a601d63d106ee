"""Dataset loading: skface's LFW fetcher against scikit-learn's on the same files.

Prints one JSON object per row (see bench/README.md). Needs the real data
(``SKFACE_DATA`` or ``--data-home``); no GPU involved, so there is one mode.

    python bench/datasets.py --data-home ../shared/data
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path




from _common import emit  # noqa: E402  (bench/ is on sys.path)


def _row(what, value, unit, baseline=None, config=None):
    emit("datasets", what, value, unit, device="cpu", baseline=baseline, config=config)


def _timed(func, **kwargs):
    start = time.perf_counter()
    out = func(**kwargs)
    return out, time.perf_counter() - start


def _sklearn_home(data_home, tmp):
    """scikit-learn reads <home>/lfw_home/lfw_funneled: link it to the deep-funneled files."""
    lfw_home = Path(tmp) / "lfw_home"
    lfw_home.mkdir(parents=True)
    (lfw_home / "lfw_funneled").symlink_to(data_home / "lfw" / "lfw-deepfunneled")
    for name in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
        (lfw_home / name).symlink_to(data_home / "lfw" / name)
    return Path(tmp)


_PEAK_SNIPPET = """
import resource, sys
from skface.datasets import fetch_lfw_people
b = fetch_lfw_people(data_home=sys.argv[1])
print(len(b.images), b.images.nbytes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-home", default=os.environ.get("SKFACE_DATA", "../shared/data"))
    args = parser.parse_args()
    data_home = Path(args.data_home).resolve()

    import numpy as np
    from sklearn.datasets import fetch_lfw_people as sk_fetch

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKFACE_CACHE"] = str(Path(tmp) / "cache")
        from skface.datasets import fetch_lfw_people

        cfg = {"min_faces_per_person": 70, "variant": "deepfunneled", "defaults": "sklearn's"}
        sk_home = _sklearn_home(data_home, Path(tmp) / "sk")
        theirs, sk_cold = _timed(sk_fetch, data_home=sk_home, min_faces_per_person=70,
                                 download_if_missing=False)
        _, sk_warm = _timed(sk_fetch, data_home=sk_home, min_faces_per_person=70,
                            download_if_missing=False)
        ours, cold = _timed(fetch_lfw_people, data_home=data_home, min_faces_per_person=70)
        warms = [_timed(fetch_lfw_people, data_home=data_home, min_faces_per_person=70)[1]
                 for _ in range(5)]
        warm = float(np.median(warms))

        same = (
            ours.images.shape == theirs.images.shape
            and np.array_equal(ours.target, theirs.target)
            and np.array_equal(ours.target_names, theirs.target_names)
        )
        max_diff = float(np.abs(ours.images - theirs.images).max()) if same else None
        _row("lfw_people agrees with sklearn (1=yes)", int(same and max_diff < 1e-6),
             "bool", config={**cfg, "shape": list(ours.images.shape),
                             "n_people": len(ours.target_names), "max_abs_diff": max_diff})
        _row("lfw_people cold load, vs sklearn cold", round(cold, 3), "s",
             round(sk_cold, 3), cfg)
        _row("lfw_people warm load, vs sklearn warm (joblib cache)", round(warm, 4),
             "s", round(sk_warm, 4), cfg)
        _row("lfw_people warm load, vs skface cold", round(warm, 4), "s",
             round(cold, 3), {**cfg, "speedup": round(cold / warm, 1)})

        # Peak memory of loading all 13,233 faces with the defaults, in a fresh process.
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_SNIPPET, str(data_home)],
            capture_output=True, text=True, check=True, env=os.environ,
        ).stdout.split()
        n, nbytes, peak = (int(v) for v in out)
        _row("lfw_people all faces: peak RSS, vs array size", round(peak / 2**20, 1),
             "MiB", round(nbytes / 2**20, 1), {"n_images": n, "limit_MiB": 1536})


if __name__ == "__main__":
    main()
