"""face-api's recognition ResNet: skface's torch port against the JavaScript package, on real LFW faces.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs node >= 18 (the package is npm-installed once into a
scratch folder, see ``bench/_faceapi_js.py``), the face-api weights
(``skface.pretrained._faceapi.faceapi_weights``) and, for the real-image rows,
the shared data (``SKFACE_DATA`` or ``--data-home``).

    python bench/faceapi_parity_recognition.py              # 32 LFW faces
    python bench/faceapi_parity_recognition.py --n-images 64 --crop 120
    python bench/faceapi_parity_recognition.py --write-fixture  # rewrites the test fixture

The faces are the first ``--n-images`` deep-funneled LFW files in sorted
order, one per person, cut to the central ``--crop`` x ``--crop`` box of the
250x250 image, resized to 150x150 (bilinear, PIL) and kept as uint8: the same
pixels go to both implementations. Rows:

- ``max_abs_diff``: largest |torch - JS| over every descriptor component.
- ``max_rel_diff``: largest ||torch - JS|| / ||JS|| over the images.
- ``min_cosine``: smallest cosine similarity between matching descriptors.
- ``images_per_s``: the torch port's throughput (batches of 32, eval, no
  grad, ``--threads`` torch threads, best of ``--repeats``), baseline the JS
  package's images/s (``1000 / ms_per_image``, one image at a time through its
  own ``forwardInput``, tfjs cpu backend, as bench/faceapi_reference.cjs runs it).

``--write-fixture`` runs the JS package on the synthetic inputs of
``tests/test_faceapi_resnet.py`` (``synthetic_faces``) and stores only its
descriptors, the seed and the inputs' sum: no real data goes into the fixture.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from _common import default_data_home, emit as common_emit  # noqa: E402
from tests._faceapi_fixture import save_fixture  # noqa: E402

BENCH = "faceapi_parity_recognition"
FIXTURE = ROOT / "tests" / "data" / "faceapi" / "recognition_reference.json"


def lfw_faces(data_home, n_images, crop):
    """``(images uint8 (n, 150, 150, 3), file names)``: central crops of the first people's first files."""
    from PIL import Image

    folder = Path(data_home) / "lfw" / "lfw-deepfunneled"
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    files = [sorted(p.glob("*.jpg"))[0] for p in people[:n_images]]
    images = []
    for path in files:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            left, top = (w - crop) // 2, (h - crop) // 2
            img = img.crop((left, top, left + crop, top + crop))
            if crop != 150:
                img = img.resize((150, 150), Image.BILINEAR)
            images.append(np.asarray(img, dtype=np.uint8))
    return np.stack(images), [p.name for p in files]


def pretrained_model():
    from skface.nn.faceapi_resnet import FaceRecognitionResNet, state_dict_from_tfjs
    from skface.pretrained._faceapi import faceapi_weights

    model = FaceRecognitionResNet()
    model.load_state_dict(state_dict_from_tfjs(faceapi_weights("face_recognition_model")))
    return model.eval()


def torch_descriptors(model, images, batch_size=32):
    import torch

    from tests.test_faceapi_resnet import preprocess

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(model(preprocess(images[start:start + batch_size])).numpy())
    return np.concatenate(out)


def write_fixture(path=FIXTURE):
    """Run the JS package on the tests' synthetic faces and store its descriptors in ``path``."""
    from _faceapi_js import reference

    from tests.test_faceapi_resnet import N_IMAGES, SEED, synthetic_faces

    images = synthetic_faces(SEED, N_IMAGES)
    ref = reference("recognition", images)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_fixture(
        path,
        descriptors=ref["output"].astype(np.float32),
        seed=np.int64(SEED),
        n_images=np.int64(N_IMAGES),
        input_sum=np.float64(images.astype(np.float64).sum()),
        recipe=np.str_("tests/test_faceapi_resnet.py synthetic_faces(seed, n_images), 150x150 RGB "
                       "float32 in [0, 255]; descriptors: @vladmandic/face-api 1.7.15 "
                       f"faceRecognitionNet.forwardInput, tfjs {ref.get('tfjs')} cpu backend"),
    )
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--n-images", type=int, default=32)
    parser.add_argument("--crop", type=int, default=150,
                        help="side of the central box cut from the 250x250 LFW image (default 150)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also append the rows to this file")
    parser.add_argument("--write-fixture", action="store_true",
                        help="regenerate the synthetic-input test fixture and exit")
    args = parser.parse_args(argv)

    if args.write_fixture:
        write_fixture()
        return

    import torch

    from _faceapi_js import reference

    torch.set_num_threads(args.threads)
    images, names = lfw_faces(args.data_home, args.n_images, args.crop)
    model = pretrained_model()
    ref = reference("recognition", images)
    js = ref["output"].astype(np.float64)
    out = torch_descriptors(model, images, args.batch_size).astype(np.float64)

    config = {"n_images": len(images), "crop": args.crop, "input": "150x150 uint8 RGB",
              "data": "lfw-deepfunneled, first file of the first people (sorted)",
              "js": f"@vladmandic/face-api 1.7.15, tfjs {ref.get('tfjs')} cpu backend"}
    device = "cpu"

    def emit(what, value, unit, **kw):
        common_emit(BENCH, what, value, unit, device=device, config=config, out=args.out, **kw)

    norms = np.linalg.norm(js, axis=1)
    rel = np.linalg.norm(out - js, axis=1) / norms
    cosine = (out * js).sum(1) / (np.linalg.norm(out, axis=1) * norms)
    emit("max_abs_diff", float(np.abs(out - js).max()), "abs",
         descriptor_norm_range=[round(float(norms.min()), 4), round(float(norms.max()), 4)])
    emit("max_rel_diff", float(rel.max()), "rel", worst_file=names[int(rel.argmax())])
    emit("min_cosine", float(cosine.min()), "cosine")

    # Speed: the same images, tiled to a few full batches, best of the repeats.
    tiled = np.concatenate([images] * max(1, -(-96 // len(images))))[:max(96, len(images))]
    torch_descriptors(model, tiled[:args.batch_size], args.batch_size)  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        torch_descriptors(model, tiled, args.batch_size)
        best = min(best, time.perf_counter() - start)
    js_ips = 1000.0 / ref["ms_per_image"]
    emit("images_per_s", round(len(tiled) / best, 2), "images/s", baseline=round(js_ips, 2),
         torch_threads=torch.get_num_threads(), batch_size=args.batch_size,
         js_ms_per_image=round(ref["ms_per_image"], 2), timed_images=len(tiled))


if __name__ == "__main__":
    main()
