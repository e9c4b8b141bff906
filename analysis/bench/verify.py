"""Benchmark of ``check_model`` on a ResNet-50-shaped network at 224 x 224 (issue 11, point 4).

The network is written here (torchvision's wheel does not load with the CPU torch of this project):
the 53 convolutions of ResNet-50 v1.5 (He et al. 2016; stride 2 in the 3x3 convolution of each first
bottleneck) with their real strides, BatchNorm after each, ReLU, max pooling, the residual sums, global
average pooling and the final linear layer. Target: every layer's spectrum and the certified bound in
<= 60 s and <= 3 GB peak on 2 cores. The table splits the time into the spectra (``module_spectrum``
per convolution) and everything else (tracing, the run, BatchNorm/pooling bounds, the lower bound),
records the load average and the peak resident memory, and flags a run taken under load.
"""

from __future__ import annotations

import resource
import time

import torch
from torch import nn

from orthoconv import verify
from orthoconv.cli.args import positive_int
from orthoconv.io import load_average
from orthoconv.verify import operators

from ..common.harness import experiment_parser, write_json

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet(stages=STAGES, width: int = 64, classes: int = 1000) -> nn.Sequential:
    """ResNet-50 for ``stages=STAGES`` (53 convolutions), smaller ones for other stage lists."""
    layers = [nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    c = width
    for stage_width, blocks, stride in stages:
        for b in range(blocks):
            layers.append(Bottleneck(c, stage_width, stride if b == 0 else 1))
            c = 4 * stage_width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def randomize_batch_norms(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)


def peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None, prog=None) -> int:
    parser = experiment_parser("bench_verify", __doc__.splitlines()[0], prog or "python -m analysis.bench.verify")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    parser.add_argument("--lower-steps", type=int, default=5, help="steps of the empirical lower bound")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads (default: torch's; on a loaded 2-core machine 2 threads made "
                             "small LAPACK calls 10-25x slower)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    model = resnet(STAGES if not args.quick else ((64, 1, 1), (128, 1, 2)))
    with torch.no_grad():
        randomize_batch_norms(model, args.seed)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    spectra_seconds = []
    original = operators.module_spectrum

    def timed(module, input_size, exact_limit=None):
        start = time.perf_counter()
        spectrum = original(module, input_size, exact_limit)
        spectra_seconds.append(time.perf_counter() - start)
        return spectrum

    load_before = load_average()
    operators.module_spectrum = timed
    try:
        start = time.perf_counter()
        report = verify.check_model(model, torch.randn(1, 3, args.size, args.size), lower_steps=args.lower_steps)
        total = time.perf_counter() - start
    finally:
        operators.module_spectrum = original
    load_after = load_average()
    spectra = sum(spectra_seconds)
    exact = sum(layer.exact for layer in report.layers if layer.type == "Conv2d")
    rows = [{"network": "ResNet-50" if not args.quick else "ResNet (quick)", "convolutions": convs,
             "input": f"3x{args.size}x{args.size}", "threads": torch.get_num_threads(),
             "total_s": round(total, 2), "spectra_s": round(spectra, 2),
             "rest_s": round(total - spectra, 2), "peak_gb": round(peak_memory_gb(), 2),
             "exact_convs": exact, "lipschitz_lower": report.lipschitz_lower,
             "lipschitz_upper": report.lipschitz_upper,
             "target": "<= 60 s, <= 3 GB", "met": total <= 60 and peak_memory_gb() <= 3,
             "noisy": bool(load_before and load_before[0] > 1.5)}]
    for key, value in rows[0].items():
        print(f"{key:>16}: {value}")
    print(f"{'load average':>16}: {load_before} -> {load_after} (2 cores; noisy when the 1-minute load > 1.5)")
    slowest = sorted(zip(spectra_seconds, [layer for layer in report.layers if layer.type == "Conv2d"]),
                     key=lambda pair: -pair[0])[:5]
    for seconds, layer in slowest:
        print(f"   {seconds:6.2f} s  {layer.name} {layer.input_shape} {layer.method}")
    write_json(args.out / "bench_verify.json", {"rows": rows,
                                                "layers": [layer.as_dict() for layer in report.layers]}, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
