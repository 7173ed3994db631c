"""Write the ONNX files that tests/test_onnx.py imports, as PyTorch's two exporters write them.

Needs torch (not needed by the tests): python tests/data/make_onnx_fixtures.py
Writes torch_mlp_<exporter>.onnx and torch_mlp_<exporter>.npz (an input batch and
what torch computed for it) for exporter = legacy (dynamo=False) and dynamo, and
torch_view_legacy.onnx/.npz (a reshape whose shape is computed from the input's).
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class MLP(nn.Module):
    """Every MLP piece the importer reads: Linear, the activations, a residual Add,
    Sub, Mul, Concat, Flatten, Dropout and Softmax."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(32, 8)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = self.flatten(x)                        # (N, 3, 4) -> (N, 12)
        h = torch.tanh(self.fc1(x))
        r = nn.functional.silu(self.fc2(h)) + h    # residual
        g = torch.sigmoid(r) * nn.functional.elu(r, alpha=0.5) - h
        c = torch.cat([g, nn.functional.leaky_relu(r, 0.1)], dim=1)
        z = self.drop(nn.functional.softplus(self.fc3(c)))
        return torch.softmax(self.out(torch.relu(z)), dim=-1)


class View(nn.Module):
    """x.view(x.size(0), -1): the legacy exporter computes the shape from Shape and Gather."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc(x.view(x.size(0), -1))


def view():
    torch.manual_seed(1)
    model = View().eval()
    x = torch.randn(2, 3, 4)
    torch.onnx.export(model, (x,), str(HERE / "torch_view_legacy.onnx"), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}}, dynamo=False)
    with torch.no_grad():
        np.savez(HERE / "torch_view_legacy.npz", x=x.numpy(), y=model(x).numpy())


def main():
    torch.manual_seed(0)
    model = MLP().eval()
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        y = model(x).numpy()
    for exporter, dynamo in (("legacy", False), ("dynamo", True)):
        path = HERE / f"torch_mlp_{exporter}.onnx"
        kwargs = ({"dynamic_shapes": {"x": {0: torch.export.Dim("batch")}}} if dynamo else
                  {"dynamic_axes": {"x": {0: "batch"}, "probs": {0: "batch"}}})
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["probs"],
                          dynamo=dynamo, opset_version=18, external_data=False, **kwargs)
        np.savez(HERE / f"torch_mlp_{exporter}.npz", x=x.numpy(), probs=y)
        print("wrote", path)
    view()


if __name__ == "__main__":
    main()
