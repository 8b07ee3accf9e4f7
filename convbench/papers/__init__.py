"""The papers convbench reproduces: short keys and full citations.

Every registered model names one of these keys, so a result row can always say where a model comes from.
Published result tables (package data) live beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    citation: str
    url: str


PAPERS: dict[str, Paper] = {
    paper.key: paper
    for paper in (
        Paper(
            "torchvision",
            "torchvision reference models (ResNet, MobileNetV2/V3, VGG, ConvNeXt)",
            "He et al., CVPR 2016 (ResNet); Sandler et al., CVPR 2018 (MobileNetV2); "
            "Howard et al., ICCV 2019 (MobileNetV3); Simonyan & Zisserman, ICLR 2015 (VGG); "
            "Liu et al., CVPR 2022 (ConvNeXt); as built by torchvision",
            "https://github.com/pytorch/vision",
        ),
        Paper(
            "cnn-mod",
            "CNN Mixture-of-Depths",
            "Cakaj, Mehnert, Yang. CNN Mixture-of-Depths. ACCV 2024. arXiv:2409.17016",
            "https://arxiv.org/abs/2409.17016",
        ),
        Paper(
            "kernelwarehouse",
            "KernelWarehouse: Rethinking the Design of Dynamic Convolution",
            "Li & Yao. KernelWarehouse: Rethinking the Design of Dynamic Convolution. ICML 2024. arXiv:2406.07879",
            "https://arxiv.org/abs/2406.07879",
        ),
        Paper(
            "odconv",
            "Omni-Dimensional Dynamic Convolution",
            "Li, Zhou, Yao. Omni-Dimensional Dynamic Convolution. ICLR 2022. arXiv:2209.07947",
            "https://arxiv.org/abs/2209.07947",
        ),
        Paper(
            "dyconv",
            "Dynamic Convolution: Attention over Convolution Kernels",
            "Chen, Dai, Liu, Chen, Yuan, Liu. Dynamic Convolution: Attention over Convolution Kernels. "
            "CVPR 2020. arXiv:1912.03458",
            "https://arxiv.org/abs/1912.03458",
        ),
        Paper(
            "compconv",
            "CompConv: A Compact Convolution Module for Efficient Feature Learning",
            "Zhang, Xu, Shen. CompConv: A Compact Convolution Module for Efficient Feature Learning. "
            "CVPR Workshops 2021. arXiv:2106.10486",
            "https://arxiv.org/abs/2106.10486",
        ),
        Paper(
            "micronet",
            "MicroNet: Improving Image Recognition with Extremely Low FLOPs",
            "Li, Chen, Dai, Chen, Liu, Yuan, Liu, Zhang, Vasconcelos. MicroNet: Improving Image "
            "Recognition with Extremely Low FLOPs. ICCV 2021. arXiv:2108.05894",
            "https://arxiv.org/abs/2108.05894",
        ),
    )
}
