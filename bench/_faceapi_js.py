"""Run the face-api JavaScript package (TensorFlow.js, cpu backend) on images, for parity benchmarks and fixtures."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "faceapi_reference.cjs"
# The exact releases the reference runs on; npm resolves nothing else.
PACKAGES = ("@vladmandic/face-api@1.7.15", "@tensorflow/tfjs@4.22.0",
            "@tensorflow/tfjs-backend-wasm@4.22.0")


def js_root():
    """A folder whose node_modules holds PACKAGES (npm-installed once, scripts off)."""
    root = Path(os.environ.get("SKFACE_FACEAPI_JS", Path.home() / ".cache" / "skface" / "faceapi-js"))
    if not (root / "node_modules" / "@vladmandic" / "face-api" / "model").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--prefix", str(root), *PACKAGES], check=True, capture_output=True)
    return root


def reference(net, images, *, timeout=3600):
    """The JavaScript package's raw outputs for ``images``.

    Parameters
    ----------
    net : {"recognition", "age_gender", "landmark68", "tiny_face_detector", "ssd_mobilenetv1"}
    images : ndarray of shape (n, h, w, 3)
        RGB in [0, 255] (uint8 or float), at the net's input size.

    Returns
    -------
    outputs : dict
        Each output name to an ndarray (n, ...), plus ``ms_per_image``
        (float) and ``tfjs`` (its version).
    """
    root = js_root()
    images = np.ascontiguousarray(images, dtype="<f4")
    with tempfile.TemporaryDirectory(prefix="faceapi_js_") as tmp:
        src, out = Path(tmp) / "in.f32", Path(tmp) / "out.json"
        images.tofile(src)
        (Path(tmp) / "in.f32.json").write_text(json.dumps({"shape": list(images.shape)}))
        env = dict(os.environ, NODE_PATH=str(root / "node_modules"))
        model_dir = root / "node_modules" / "@vladmandic" / "face-api" / "model"
        subprocess.run(["node", str(SCRIPT), net, str(model_dir), str(src), str(out)],
                       check=True, env=env, capture_output=True, timeout=timeout)
        raw = json.loads(out.read_text())
    result = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            result[key] = np.asarray(value["data"], dtype=np.float32).reshape(value["shape"])
        else:
            result[key] = value
    return result
