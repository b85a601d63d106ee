"""Square LFW face crops sized for embedding networks."""

__all__ = ["LFW_FACE_BOX", "lfw_crop"]

# A 110 px square around the face of the deep-funneled (and funneled) 250x250
# LFW images: brow to chin and cheek to cheek with a small margin, from the
# mean image (eyes at y ~ 107, mouth at y ~ 158, centred at x = 125).
LFW_FACE_BOX = (70, 78, 180, 188)


def lfw_crop(input_size=96, *, jitter=8, color=True, box=LFW_FACE_BOX):
    """Keyword arguments for ``fetch_lfw_people`` / ``fetch_lfw_pairs`` giving square face crops.

    The face box is resized to ``input_size + jitter`` pixels so that a
    model trained on random ``input_size`` crops (``crop_size`` of
    :class:`~skface.estimators.CenterLossEmbedder`) sees the whole face
    with a few pixels of translation, and uses the centre crop at test
    time.

    Parameters
    ----------
    input_size : int, default=96
        The backbone's input size (96 for NN4.Small2).
    jitter : int, default=8
        Extra pixels on each side length for random crops; 0 for none.
    color : bool, default=True
        RGB (NN4.Small2's input) or grey.
    box : tuple of int (left, upper, right, lower), default=LFW_FACE_BOX
        Face box in the 250x250 image.

    Returns
    -------
    kwargs : dict
        ``box``, ``resize`` (a (height, width) tuple) and ``color``.

    Examples
    --------
    >>> lfw_crop(96)
    {'box': (70, 78, 180, 188), 'resize': (104, 104), 'color': True}
    """
    if int(input_size) < 1 or int(jitter) < 0:
        raise ValueError(
            f"input_size must be positive and jitter non-negative, got {input_size!r}, {jitter!r}."
        )
    size = int(input_size) + int(jitter)
    return {"box": tuple(box), "resize": (size, size), "color": bool(color)}
