"""Where the face's landmarks sit in an aligned crop: OpenFace's and dlib's mean faces, 68 points and 5."""

import numpy as np

__all__ = ["FIVE_POINTS", "TEMPLATES", "template_points"]

# OpenFace's mean face (align_dlib.py, Apache 2.0): the 68 iBUG points of many
# dlib-aligned faces, (x, y), scaled so that the points span [0, 1] (MINMAX).
_OPENFACE_68 = np.array([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
    (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
    (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
    (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
    (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
    (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
    (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
    (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
    (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
    (0.8707571886, 0.235293377042), (0.51534533827, 0.31863546193),
    (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
    (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
    (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
    (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
    (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
    (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
    (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
    (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
    (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
    (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
    (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
    (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
    (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951),
])
_OPENFACE_68 = (_OPENFACE_68 - _OPENFACE_68.min(0)) / np.ptp(_OPENFACE_68, axis=0)

# dlib's mean face (get_face_chip_details in dlib/image_transforms/interpolation.h, Boost
# licence): points 17-67 (no jaw line), (x, y), spanning [0, 1] as dlib gives them. dlib's
# face chips (150x150, padding 0.25), on which its ResNet face descriptor was trained, are
# framed on it.
_DLIB_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)
_DLIB_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)
# In the 68-point layout; dlib has no jaw line, so points 0-16 are NaN.
_DLIB_68 = np.full((68, 2), np.nan)
_DLIB_68[17:] = np.column_stack([_DLIB_X, _DLIB_Y])

TEMPLATES = ("openface", "dlib")

# The five points MTCNN gives, in the 68-point layout: the eye centres (mean of
# each eye's six points), the nose tip and the mouth corners. Left and right are
# the image's (the subject's right eye is on the image's left).
FIVE_POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
_FIVE_FROM_68 = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))

# The 68 points fitted when aligning on 68: brows, nose, eyes and mouth. The jaw
# line (0-16) moves with head turn and expression more than the face's frame.
ALIGN_68 = np.arange(17, 68)
# dlib fits its chips on the nose, eyes and upper lip only (27-54 and 60-64): the brows
# and the lower lip move with expression.
ALIGN_68_DLIB = np.r_[27:55, 60:65]


def align_indices(template):
    """The 68-point indices a template's 68-point alignment fits."""
    return ALIGN_68_DLIB if template == "dlib" else ALIGN_68


def five_from_68(points):
    """The 5 MTCNN-style points of 68-point sets.

    Parameters
    ----------
    points : ndarray of shape (..., 68, 2)

    Returns
    -------
    five : ndarray of shape (..., 5, 2)
    """
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., list(idx), :].mean(axis=-2) for idx in _FIVE_FROM_68], axis=-2)


def template_points(n_points, size, padding, template="openface"):
    """The template's landmarks in pixels of an aligned ``size x size`` crop.

    Parameters
    ----------
    n_points : {5, 68}
    size : int
        Side of the aligned crop, in pixels.
    padding : float
        Margin around the 68-point template's box, as a fraction of that box
        on each side: 0 puts the outermost points (jaw, brows) on the crop's
        edges, as OpenFace does; 0.25 leaves a quarter of the face's size of
        background (hair, ears) around it.
    template : {"openface", "dlib"}, default="openface"
        Whose mean face: OpenFace's (its box spans jaw to brows), or dlib's
        (points 17-67, its box spans brows to mouth; with ``size=150,
        padding=0.25`` these are dlib's face chips, as its ResNet face
        descriptor expects them).

    Returns
    -------
    points : ndarray of shape (n_points, 2)
        (x, y) in pixels, the crop spanning [0, size] (the top-left pixel's
        centre at (0.5, 0.5)), as skface's keypoints are. dlib's 68 points
        0-16 (the jaw line, which it does not have) are NaN.
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}.")
    mean = _OPENFACE_68 if template == "openface" else _DLIB_68
    unit = mean if n_points == 68 else five_from_68(mean)
    points = (unit + padding) / (1 + 2 * padding) * size
    if template == "dlib":
        # dlib puts pixel centres on integer coordinates; skface on half-integers.
        points = points + 0.5
    return points
