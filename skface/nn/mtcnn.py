"""MTCNN's three networks (P-Net, R-Net, O-Net), laid out to load facenet-pytorch's weights."""

# The architecture is that of Zhang, Zhang, Li and Qiao, "Joint Face Detection
# and Alignment using Multi-task Cascaded Convolutional Networks" (IEEE SPL
# 2016), written after facenet-pytorch's port (models/mtcnn.py, Copyright (c)
# 2019 Timothy Esler, MIT licence: https://github.com/timesler/facenet-pytorch),
# whose converted Caffe weights these modules load as they are: the attribute
# names are the weights' state_dict keys.

import torch
from torch import nn

__all__ = ["ONet", "PNet", "RNet"]


def _caffe_flatten(x):
    # The dense layers were trained in Caffe on images stored transposed (width
    # before height): flatten in (width, height, channel) order, as the
    # weights expect, not in PyTorch's (channel, height, width).
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12x12 face / no-face scanner.

    Applied to a whole image, each output cell scores the 12x12 window at
    twice its coordinates (stride 2).

    Input: float tensor (N, 3, H, W), RGB scaled as ``(pixel - 127.5) / 128``,
    H and W at least 12. Output: ``(prob, reg)`` with ``prob`` of shape
    (N, H', W'), the probability that the window holds a face, and ``reg``
    of shape (N, 4, H', W'), the window's box corrections (x0, y0, x1, y1)
    as fractions of its size, where ``H' = ceil((H - 2) / 2) - 4``.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        # Channel 1 of the softmax over (no face, face) is the face probability.
        prob = torch.softmax(self.conv4_1(x), dim=1)[:, 1]
        return prob, self.conv4_2(x)


class RNet(nn.Module):
    """Refinement network: rescores and corrects 24x24 crops of P-Net's proposals.

    Input: float tensor (N, 3, 24, 24), scaled as for :class:`PNet`.
    Output: ``(prob, reg)``, the face probability (N,) and the box
    corrections (N, 4) as fractions of the crop's size.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_caffe_flatten(x)))
        prob = torch.softmax(self.dense5_1(x), dim=1)[:, 1]
        return prob, self.dense5_2(x)


class ONet(nn.Module):
    """Output network: final score, box and five landmarks from 48x48 crops.

    Input: float tensor (N, 3, 48, 48), scaled as for :class:`PNet`.
    Output: ``(prob, reg, points)``: the face probability (N,), the box
    corrections (N, 4) as fractions of the crop's size, and the landmarks
    (N, 10) as fractions of the crop's width and height: the five x first,
    then the five y, in the order left eye, right eye, nose, left mouth
    corner, right mouth corner (left and right as seen in the image).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_caffe_flatten(x)))
        prob = torch.softmax(self.dense6_1(x), dim=1)[:, 1]
        return prob, self.dense6_2(x), self.dense6_3(x)
