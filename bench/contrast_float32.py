"""Contrast normalisation in float32 against float64 on real faces, and its batch-independence.

    python bench/contrast_float32.py [--n 2000] [--threads 1]

UTKFace at 48 px (RGB) and LFW people at resize=0.5 (grey), from the data
home (``$SKFACE_DATA``): ``local_contrast_normalize`` of float32 images
against the same in float64 (max and mean absolute difference), each
image's float32 result when normalised alone or in batches of 3, 64 and
500 against the whole set at once (must be 0.0), and the features of a
small ``ConvSDAEFeatures`` of faces transformed one at a time against all
at once, with contrast=2.0 and with contrast=None: what is left there comes
from the encoder's float32 convolutions (whose CPU kernels round
differently with the batch size), not from the contrast normalisation.
"""

import argparse
import time

import numpy as np
import torch

from skface import datasets
from skface.estimators import ConvSDAEFeatures
from skface.nn.contrast import local_contrast_normalize


def _batch_diff(x, sizes=(1, 3, 64, 500)):
    whole = local_contrast_normalize(x, 2.0)
    return whole, max(
        float((torch.cat([local_contrast_normalize(x[i : i + size], 2.0)
                          for i in range(0, len(x), size)]) - whole).abs().max())
        for size in sizes
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {
        "UTKFace 48px RGB": datasets.fetch_utkface(size=48, color=True).images[: args.n],
        "LFW resize=0.5 grey": datasets.fetch_lfw_people(resize=0.5).images[: args.n, ..., None],
    }
    for name, images in sets.items():
        x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2)
        x = x.contiguous()
        start = time.perf_counter()
        out, batch_diff = _batch_diff(x)
        seconds32 = (time.perf_counter() - start) / 5  # the whole set and four batchings
        start = time.perf_counter()
        ref = local_contrast_normalize(x.double(), 2.0)
        seconds64 = time.perf_counter() - start
        diff = (out.double() - ref).abs()
        print(f"{name} {tuple(x.shape)}: max|float32 - float64| {float(diff.max()):.3g} "
              f"(mean {float(diff.mean()):.3g}; max|float64| {float(ref.abs().max()):.3g}); "
              f"alone or in batches of 3/64/500 vs all at once: max diff {batch_diff:.3g}; "
              f"{seconds32:.2f} s float32, {seconds64:.2f} s float64")
    faces = sets["UTKFace 48px RGB"][:200]
    for contrast in (2.0, None):
        sdae = ConvSDAEFeatures(layer_channels=(8, 16), pretrain_epochs=1, input_size=48,
                                contrast=contrast, random_state=0, verbose=0).fit(faces)
        whole = sdae.transform(faces[:50])
        alone = np.concatenate([sdae.transform(faces[i : i + 1]) for i in range(50)])
        print(f"ConvSDAEFeatures(contrast={contrast}) features of 50 UTKFace faces one at a "
              f"time vs all at once: max diff {float(np.abs(alone - whole).max()):.3g} "
              f"(max|feature| {float(np.abs(whole).max()):.3g})")


if __name__ == "__main__":
    main()
