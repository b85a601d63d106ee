"""Portable models: raw storages in pickles, file sizes, and fresh-process save/load per estimator.

Each estimator is fitted briefly (its default architecture, small epochs) on
the 100 real LFW faces that scikit-image ships (25x25 grey, no download).
Rows, per estimator and for a Pipeline:

- ``raw_storages``: tensor storages a plain unpickler rebuilds outside
  skorch's device-safe path (restored with no ``map_location``: a CUDA
  model would not load on a CPU-only machine);
- ``pickle_size`` and ``file_size``: the pickle's bytes and the ``save``
  file's bytes;
- ``fresh_process_max_abs_diff``: the outputs of ``skface.load`` in a new
  Python process (with ``pickle.load`` disabled there) against the
  in-process outputs.

``python bench/persist.py`` runs on this checkout. To measure another
version's pickles (one without ``save``), copy this script and
``tests/_pickle_scan.py`` into that checkout and run it there with
``--pickles-only``.
"""

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import emit  # noqa: E402

from tests._pickle_scan import raw_storages  # noqa: E402  the scan the tests use


def _cases(faces, rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skface.estimators import (
        CenterLossEmbedder,
        ConvSDAEFeatures,
        DBNReconstructor,
        KeypointRegressor,
        SDAEClassifier,
        SDAERegressor,
    )

    n = len(faces)
    identity = np.arange(n) // 10
    brightness = faces[:, :12].mean(axis=(1, 2))
    template = np.array([[8, 10], [17, 10], [12.5, 15], [9, 19], [16, 19]], float)
    points = template + rng.normal(0, 0.5, (n, 5, 2))
    encoder = dict(pretrain_epochs=1, random_state=0)
    return {
        "DBNReconstructor": (DBNReconstructor(pretrain_epochs=1, finetune_epochs=1,
                                              random_state=0), None, "transform"),
        "ConvSDAEFeatures": (ConvSDAEFeatures(**encoder), None, "transform"),
        "SDAEClassifier": (SDAEClassifier(ConvSDAEFeatures(**encoder), max_epochs=1,
                                          random_state=0),
                           (brightness > np.median(brightness)).astype(int), "predict_proba"),
        "SDAERegressor": (SDAERegressor(ConvSDAEFeatures(**encoder), max_epochs=1,
                                        random_state=0), brightness, "predict"),
        "KeypointRegressor": (KeypointRegressor(input_size=48, max_epochs=1, random_state=0),
                              points, "predict"),
        "CenterLossEmbedder": (CenterLossEmbedder(max_epochs=1, batch_size=32, random_state=0),
                               identity, "transform"),
        "Pipeline": (make_pipeline(ConvSDAEFeatures(**encoder),
                                   LogisticRegression(max_iter=300)), identity, "predict_proba"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pickles-only", action="store_true",
                        help="only the raw-storage and pickle-size rows (for versions without save)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import skimage.data
    import torch

    torch.set_num_threads(args.threads)
    faces = skimage.data.lfw_subset()[:100].astype(np.float32)  # the first 100 are faces
    rng = np.random.RandomState(0)
    cases = _cases(faces, rng)
    tmp = Path(tempfile.mkdtemp(prefix="skface-persist-"))
    expected, methods = {}, {}
    for name, (est, target, method) in cases.items():
        start = time.perf_counter()
        est.fit(faces) if target is None else est.fit(faces, target)
        fit_s = time.perf_counter() - start
        config = {"estimator": repr(est).replace("\n", " "), "n_images": len(faces),
                  "image": "25x25 grey (skimage.data.lfw_subset)", "fit_s": round(fit_s, 2)}
        emit("persist", f"{name} raw_storages", raw_storages(est), "storages",
             device="cpu", config=config)
        emit("persist", f"{name} pickle_size", len(pickle.dumps(est)), "bytes", device="cpu")
        if args.pickles_only or name == "Pipeline":
            continue
        start = time.perf_counter()
        path = est.save(tmp / f"{name}.skface")
        save_s = time.perf_counter() - start
        emit("persist", f"{name} file_size", path.stat().st_size, "bytes", device="cpu",
             config={"save_s": round(save_s, 3)})
        expected[name] = getattr(est, method)(faces)
        methods[name] = method
    if args.pickles_only:
        return 0
    np.save(tmp / "faces.npy", faces)
    code = textwrap.dedent(f"""
        import json, pickle, time
        def _refuse(*a, **k):
            raise AssertionError("skface.load unpickled something")
        pickle.load = pickle.loads = _refuse
        import numpy as np, skface
        faces = np.load({str(tmp / 'faces.npy')!r})
        times = {{}}
        for name, method in {json.dumps(methods)}.items():
            start = time.perf_counter()
            model = skface.load({str(tmp)!r} + "/" + name + ".skface", device="cpu")
            times[name] = time.perf_counter() - start
            np.save({str(tmp)!r} + "/" + name + ".out.npy", getattr(model, method)(faces))
        print(json.dumps(times))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        print(result.stderr, file=sys.stderr)
        return 1
    load_s = json.loads(result.stdout.strip().splitlines()[-1])
    for name, out in expected.items():
        got = np.load(tmp / f"{name}.out.npy")
        emit("persist", f"{name} fresh_process_max_abs_diff", float(np.abs(got - out).max()),
             "abs", device="cpu", config={"load_s": round(load_s[name], 3),
                                          "output_shape": list(out.shape)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
