"""face-api's age and gender net: skface's torch port against the JavaScript package on real UTKFace faces.

Prints one JSON object per row (``bench, what, value, unit, baseline, ratio,
device, config``). Needs node (the reference runs the package's own
``forwardInput`` under TensorFlow.js, cpu backend; bench/_faceapi_js.py
npm-installs the pinned packages once), the face-api weights
(``skface.pretrained._faceapi.faceapi_weights`` downloads them once) and,
except for ``--write-fixture``, the shared data (``SKFACE_DATA`` or
``--data-home``).

    python bench/faceapi_parity_age_gender.py                  # parity + speed on 32 faces
    python bench/faceapi_parity_age_gender.py --accuracy       # + gender accuracy, age MAE on all faces
    python bench/faceapi_parity_age_gender.py --write-fixture  # regenerate the test fixture

Parity: ``--n`` UTKFace aligned-and-cropped faces (200x200 files, a seeded
random subset), resized to 112x112 uint8 with PIL's bilinear filter (the
net's input size, so face-api's own resize is the identity), given to both
implementations: max abs difference of the age (years), of the two gender
probabilities, max relative difference of the age, and how often the
predicted gender agrees. Speed: images/s of the torch port (eval, no grad,
batches of ``--batch``, the median of ``--repeats`` passes after one warm-up)
against the JavaScript package's images/s on the same faces (one image at a
time, as it runs them; its first image's warm-up excluded by also timing the
first two alone and subtracting). ``--accuracy``: every shared UTKFace face
through the torch port (gender = argmax; UTKFace's gender 0 = male is
column 0 here too), against the labels in the file names.

The face-api tutorial (TUTORIAL.md, "Age and Gender Recognition Model") says
the model was trained and tested with an 80/20 split on each of UTK, FGNET,
Chalearn, Wiki, IMDB, CACD, MegaAge and MegaAge-Asian (UTK test split: MAE
5.25 years, gender accuracy 0.93): most shared UTKFace faces were likely in
its training set, so the accuracy here is optimistic.
"""

import argparse
import importlib.util
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import default_data_home, device_name, emit  # noqa: E402
from _faceapi_js import reference  # noqa: E402

from skface.nn.faceapi_age_gender import AgeGenderNet, state_dict_from_tfjs  # noqa: E402
from skface.pretrained._faceapi import faceapi_weights  # noqa: E402
sys.path.insert(0, str(HERE.parent))  # tests/, for the fixture format
from tests._faceapi_fixture import save_fixture  # noqa: E402

BENCH = "faceapi_parity_age_gender"
FIXTURE = HERE.parent / "tests" / "data" / "faceapi" / "age_gender_reference.json"
TESTS = HERE.parent / "tests" / "test_faceapi_age_gender.py"
_NAME = re.compile(r"^(\d+)_([01])_\d_\d+\.jpg\.chip\.jpg$")


def load_net():
    """AgeGenderNet with face-api's weights, in eval mode."""
    net = AgeGenderNet()
    net.load_state_dict(state_dict_from_tfjs(faceapi_weights("age_gender_model")))
    return net.eval()


def utkface_files(data_home):
    """Sorted UTKFace files with a well-formed name, their ages and genders, and the count left out."""
    folder = Path(data_home) / "utkface" / "UTKFace"
    files, ages, genders, skipped = [], [], [], 0
    for path in sorted(folder.glob("*.jpg")):
        match = _NAME.match(path.name)
        if match is None:
            skipped += 1
            continue
        files.append(path)
        ages.append(int(match.group(1)))
        genders.append(int(match.group(2)))
    if not files:
        raise SystemExit(f"no UTKFace faces under {folder} (set SKFACE_DATA or --data-home)")
    return files, np.array(ages), np.array(genders), skipped


def read_faces(files, size=112):
    """The files as uint8 RGB (n, size, size, 3), resized with PIL's bilinear filter."""
    from PIL import Image

    out = np.empty((len(files), size, size, 3), np.uint8)
    for i, path in enumerate(files):
        with Image.open(path) as img:
            out[i] = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
    return out


def torch_outputs(net, images, batch=32):
    """Ages (n,) and gender probabilities (n, 2) of uint8 NHWC faces."""
    ages, probs = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float() / 255
            age, logits = net(x)
            ages.append(age.numpy())
            probs.append(torch.softmax(logits, dim=1).numpy())
    return np.concatenate(ages), np.concatenate(probs)


def torch_images_per_s(net, images, batch, repeats):
    """Median images/s over ``repeats`` passes (after one warm-up) in batches of ``batch``."""
    torch_outputs(net, images[:batch], batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch_outputs(net, images, batch)
        times.append(time.perf_counter() - start)
    return len(images) / float(np.median(times))


def write_fixture(seed, n):
    """Run the JavaScript package on the test's synthetic faces and save its outputs (a few KB)."""
    spec = importlib.util.spec_from_file_location("test_faceapi_age_gender", TESTS)
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    images = tests.synthetic_faces(seed, n)
    js = reference("age_gender", images)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    save_fixture(
        FIXTURE, seed=seed, n=n, size=images.shape[1],
        recipe="tests/test_faceapi_age_gender.py::synthetic_faces(seed, n, size)",
        age=js["age"].astype(np.float32), gender=js["gender"].astype(np.float32),
        tfjs=js["tfjs"], package="@vladmandic/face-api@1.7.15 (tfjs cpu backend)",
    )
    net = load_net()
    age, prob = torch_outputs(net, images)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes); torch vs JS: "
          f"age {np.abs(age - js['age']).max():.3g} y, gender {np.abs(prob - js['gender']).max():.3g}")


def parity(args, net, files, cpu):
    config = {"n": args.n, "seed": args.seed, "input": "UTKFace chips, PIL bilinear to 112x112 uint8"}
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(files), size=args.n, replace=False))
    images = read_faces([files[i] for i in pick])
    age, prob = torch_outputs(net, images, args.batch)
    js = reference("age_gender", images)
    js_age, js_prob = js["age"], js["gender"]
    emit(BENCH, "age_max_abs_diff", float(np.abs(age - js_age).max()), "years", device=cpu, config=config)
    emit(BENCH, "age_max_rel_diff", float((np.abs(age - js_age) / np.abs(js_age)).max()), "fraction",
         device=cpu, config=config)
    emit(BENCH, "gender_prob_max_abs_diff", float(np.abs(prob - js_prob).max()), "probability",
         device=cpu, config=config)
    agree = float(np.mean(prob.argmax(1) == js_prob.argmax(1)))
    emit(BENCH, "gender_agreement", agree, "fraction", device=cpu, config=config)
    # The JS runner's mean includes its first image's warm-up: time the first
    # two alone and take them out.
    first = reference("age_gender", images[:2])["ms_per_image"]
    js_ms = (js["ms_per_image"] * args.n - first * 2) / (args.n - 2)
    js_ips = 1000.0 / js_ms
    torch_ips = torch_images_per_s(net, images, args.batch, args.repeats)
    speed = {**config, "batch": args.batch, "repeats": args.repeats,
             "js": f"tfjs {js['tfjs']} cpu backend, one image at a time, "
                   f"{js_ms:.1f} ms/image warm ({js['ms_per_image']:.1f} with warm-up)"}
    emit(BENCH, "torch_images_per_s", round(torch_ips, 1), "images/s", baseline=round(js_ips, 2),
         device=cpu, config=speed)


def accuracy(net, files, ages, genders, skipped, cpu, batch):
    config = {"n": len(files), "skipped_names": skipped, "batch": batch,
              "note": "face-api's model was trained on 80% of UTKFace (TUTORIAL.md): optimistic"}
    age, prob = [], []
    for start in range(0, len(files), 1000):
        a, p = torch_outputs(net, read_faces(files[start:start + 1000]), batch)
        age.append(a)
        prob.append(p)
    age, prob = np.concatenate(age), np.concatenate(prob)
    emit(BENCH, "utkface_gender_accuracy", round(float(np.mean(prob.argmax(1) == genders)), 4),
         "fraction", device=cpu, config=config)
    emit(BENCH, "utkface_age_mae", round(float(np.mean(np.abs(age - ages))), 3), "years",
         device=cpu, config=config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--n", type=int, default=32, help="faces for parity and speed (>= 24)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--accuracy", action="store_true", help="also score every UTKFace face")
    parser.add_argument("--write-fixture", action="store_true",
                        help="write tests/data/faceapi/age_gender_reference.json and stop")
    parser.add_argument("--fixture-n", type=int, default=8)
    args = parser.parse_args(argv)
    if args.write_fixture:
        write_fixture(args.seed, args.fixture_n)
        return
    if args.n < 3:
        parser.error("--n must be at least 3")
    cpu = device_name("cpu")
    net = load_net()
    files, ages, genders, skipped = utkface_files(args.data_home)
    parity(args, net, files, cpu)
    if args.accuracy:
        accuracy(net, files, ages, genders, skipped, cpu, args.batch)


if __name__ == "__main__":
    main()
