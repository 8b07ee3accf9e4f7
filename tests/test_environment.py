"""The installed torch/torchvision pair works (a CPU-only torch beside a CUDA torchvision does not)."""

import torch
import torchvision


def test_torchvision_ops_load_with_this_torch():
    # torchvision's C++ ops register against torch at import; a mismatched pair fails here with
    # "operator torchvision::nms does not exist".
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_torchvision_builds_and_runs_a_model():
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000)
