"""Pack UTKFace into one small .npz of JPEGs, for bench runs on a machine without the data.

The device machine gets the repository, not the shared data, and carries at
most 64 MiB. This writes the faces that ``bench/sdae.py`` reads, resized by
``fetch_utkface``, re-encoded as JPEG (quality 95: about 32 MB for the
11,997 faces at 64x64 RGB, mean absolute change 2 of 255 grey levels),
beside 48x48 grey for the PCA rows, with ages and genders. Point the bench at
it with ``--data-home``. The file is derived from the data: keep it in a
git-ignored folder (``.gpu_data/``) and never commit it.

    python bench/pack_utkface.py --size 64 --out .gpu_data/utkface.npz
    python bench/sdae.py --data-home .gpu_data/utkface.npz ...
"""

import argparse
import io
import warnings

import numpy as np

from _common import default_data_home  # noqa: E402  (bench/ is on sys.path)

PCA_SIZE = 48  # the PCA rows' grey faces
QUALITY = 95


def _jpegs(images):
    """Concatenated JPEG bytes of float images in [0, 1], and their offsets."""
    from PIL import Image

    chunks = []
    for image in images:
        pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=QUALITY)
        chunks.append(np.frombuffer(buffer.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(c) for c in chunks])
    return np.concatenate(chunks), offsets


def pack(data_home, size, out):
    from skface.datasets import fetch_utkface

    arrays, names = {}, []
    for key, (side, color) in {"rgb": (size, True), "grey": (PCA_SIZE, False)}.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the malformed file names, named in `skipped`
            faces = fetch_utkface(data_home=data_home, size=side, color=color,
                                  download_if_missing=False)
        arrays[f"{key}_jpeg"], arrays[f"{key}_offsets"] = _jpegs(faces.images)
        arrays[f"{key}_size"] = np.array(side)
        names.append(list(faces.filenames))
    assert names[0] == names[1], "the two loads listed the faces in different orders"
    np.savez(out, age=faces.age, gender=faces.gender, **arrays)


def unpack(path, size, color):
    """Faces (n, size, size[, 3]) float32 in [0, 1], genders and ages from a packed file."""
    from PIL import Image

    packed = np.load(path)
    key = "rgb" if color else "grey"
    if int(packed[f"{key}_size"]) != size:
        raise ValueError(f"{path} holds {key} faces of {int(packed[f'{key}_size'])} px, "
                         f"not {size}: pack it again with --size {size}.")
    data, offsets = packed[f"{key}_jpeg"], packed[f"{key}_offsets"]
    images = np.stack([
        np.asarray(Image.open(io.BytesIO(data[start:end].tobytes())))
        for start, end in zip(offsets[:-1], offsets[1:])
    ]).astype(np.float32) / 255
    return images, packed["gender"], packed["age"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--size", type=int, default=64, help="side of the RGB faces")
    parser.add_argument("--out", default=".gpu_data/utkface.npz")
    args = parser.parse_args()
    from pathlib import Path

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pack(args.data_home, args.size, args.out)
    print(f"wrote {args.out}: {Path(args.out).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
