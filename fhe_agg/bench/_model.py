"""A real torch model for the benchmarks: a small CIFAR-style ResNet built in code.

Three stages of two basic blocks (16, 32, 64 channels), batch norm, a linear head: the
ResNet-14 shape of He et al. 2016, section 4.2, about 175k parameters. Its ``state_dict``
includes BatchNorm buffers, so the benchmark exercises the real flatten path (integer
``num_batches_tracked`` buffers stay local).
"""

from __future__ import annotations

from typing import Any

__all__ = ["resnet_state_dict"]


def resnet_state_dict(seed: int = 0) -> dict[str, Any] | None:
    """The ``state_dict`` of a freshly initialised small ResNet, or None without torch."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x: Any) -> Any:
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self, classes: int = 10) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
            layers: list[nn.Module] = []
            cin = 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.head = nn.Linear(64, classes)

        def forward(self, x: Any) -> Any:
            out = self.layers(torch.relu(self.stem(x)))
            return self.head(out.mean(dim=(2, 3)))

    torch.manual_seed(seed)
    model = ResNet()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))  # a forward pass: BatchNorm statistics are not trivial
    return dict(model.state_dict())
