"""Peer benchmark: the PyTorch reference's CycleGAN iteration (pytorch-CycleGAN-and-pix2pix).

Runs in its own environment with PyTorch (no TensorFlow, no kgan import), e.g.::

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    /tmp/torchvenv/bin/python benchmarks/peer_pytorch_reference.py --steps=7 --warmup=2 \
        --output_json=/tmp/peer_pytorch_fp32.json

The networks and the iteration are the reference's, rewritten here in ~150 lines because the
reference is not an installable package:

- ``ResnetGenerator`` (``--netG resnet_9blocks``, ngf 64): reflect pad 3, 7x7 conv, two
  stride-2 3x3 convs, 9 ``ResnetBlock``s (reflect pad 1, 3x3 conv, norm, ReLU, reflect pad 1,
  3x3 conv, norm, add), two ``ConvTranspose2d(3, stride 2, padding 1, output_padding 1)``,
  reflect pad 3, 7x7 conv, tanh; ``InstanceNorm2d(affine=False, track_running_stats=False)``,
  so every conv has a bias (``use_bias = norm_layer == InstanceNorm2d``); no dropout.
- ``NLayerDiscriminator`` (``--netD basic``, ndf 64, 3 layers): 4x4 convs padding 1, strides
  2, 2, 2, 1, then a 4x4 conv to 1 channel; LeakyReLU 0.2; norm after all but the first.
- ``init_weights(init_type="normal", init_gain=0.02)``.
- ``CycleGANModel.optimize_parameters``: forward (fake_B, rec_A, fake_A, rec_B); D frozen;
  G loss = LSGAN(D_A(fake_B)) + LSGAN(D_B(fake_A)) + 10 x L1 cycle (both) + 0.5 x 10 x L1
  identity (both, two more generator forwards); backward, ``Adam(2e-4, (0.5, 0.999))`` over
  both generators; D unfrozen; each D on (real, pooled fake.detach()) with loss
  0.5 x (MSE(real, 1) + MSE(fake, 0)), backward; one Adam step over both discriminators.
  The image pool holds 50 images as in the reference.

Figures follow ``kgan.benchmarking.bench``'s conventions so they can be set beside it: forward FLOPs
are counted from the conv layers (2 x k^2 x C_in x C_out per output position; transposed convs on
their input grid), the step is ``3 x 6 x G + 16 x D`` (1.88 TFLOP at 256^2, batch 1); matmul and
3x3-conv peaks are measured by PyTorch in this process before and after the step (best of both) in
fp32 and bf16; the first step, the median of ``--steps`` steps after ``--warmup`` (the first
included), a short matmul probe after each timed step (the "concurrent" peak), CPU utilisation and
the process's peak RSS (VmHWM after a reset just before the models are built).
``--precision=bfloat16`` runs the forward passes under ``torch.autocast("cpu", bfloat16)``, the
reference's nearest mixed-precision equivalent on a CPU.
"""

import os
import random
import sys
import time

import peer_report  # this folder, on sys.path when run as a script
import torch_conv_peak  # this folder
import torch
from torch import nn

# kgan.core.measure needs no TensorFlow (kgan/__init__ imports nothing heavy), so it loads here.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kgan.core import measure  # noqa: E402

# ----------------------------------------------------------------------------- networks


def resnet_block(dim):
    return nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim),
        nn.ReLU(True),
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = resnet_block(dim)

    def forward(self, x):
        return x + self.conv_block(x)


def resnet_generator(ngf=64, n_blocks=9):
    model = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=True), nn.InstanceNorm2d(ngf),
             nn.ReLU(True)]
    for i in range(2):
        mult = 2 ** i
        model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                  nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
    model += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
    for i in range(2):
        mult = 2 ** (2 - i)
        model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                     output_padding=1, bias=True),
                  nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
    model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*model)


def nlayer_discriminator(ndf=64, n_layers=3):
    seq = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    nf_mult = 1
    for n in range(1, n_layers):
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
        seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
    nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
    seq += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, stride=1, padding=1, bias=True),
            nn.InstanceNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
    seq += [nn.Conv2d(ndf * nf_mult, 1, 4, stride=1, padding=1)]
    return nn.Sequential(*seq)


def init_weights(net, gain=0.02):
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
    return net


def conv_forward_flops(net, x):
    """Forward FLOPs of ``net`` on ``x`` counted from its conv layers (kgan.benchmarking.bench convention)."""
    total = [0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            grid = inputs[0].shape[0] * inputs[0].shape[2] * inputs[0].shape[3]
        else:
            grid = output.shape[0] * output.shape[2] * output.shape[3]
        total[0] += 2 * k * module.in_channels * module.out_channels * grid

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return total[0]


# ----------------------------------------------------------------------------- the iteration


class ImagePool:
    """The reference's image pool: 50 images; half the time a stored one is returned."""

    def __init__(self, pool_size=50):
        self.pool_size, self.images = pool_size, []

    def query(self, images):
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                idx = random.randint(0, self.pool_size - 1)
                out.append(self.images[idx].clone())
                self.images[idx] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class CycleGANIteration:
    """``CycleGANModel.optimize_parameters`` of the reference (lsgan, lambda 10, identity 0.5)."""

    def __init__(self, ngf, ndf, autocast_dtype=None):
        self.netG_A, self.netG_B = (init_weights(resnet_generator(ngf)) for _ in range(2))
        self.netD_A, self.netD_B = (init_weights(nlayer_discriminator(ndf)) for _ in range(2))
        params = lambda *nets: [p for n in nets for p in n.parameters()]  # noqa: E731
        self.optimizer_G = torch.optim.Adam(params(self.netG_A, self.netG_B), lr=2e-4,
                                            betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam(params(self.netD_A, self.netD_B), lr=2e-4,
                                            betas=(0.5, 0.999))
        self.fake_A_pool, self.fake_B_pool = ImagePool(), ImagePool()
        self.mse, self.l1 = nn.MSELoss(), nn.L1Loss()
        self.autocast_dtype = autocast_dtype

    def _autocast(self):
        return torch.autocast("cpu", dtype=self.autocast_dtype,
                              enabled=self.autocast_dtype is not None)

    def gan_loss(self, prediction, target_is_real):
        target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
        return self.mse(prediction.float(), target.float())

    def set_requires_grad(self, nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def backward_D(self, netD, real, fake):
        with self._autocast():
            loss = 0.5 * (self.gan_loss(netD(real), True)
                          + self.gan_loss(netD(fake.detach()), False))
        loss.backward()
        return loss

    def __call__(self, real_A, real_B):
        with self._autocast():
            fake_B = self.netG_A(real_A)
            rec_A = self.netG_B(fake_B)
            fake_A = self.netG_B(real_B)
            rec_B = self.netG_A(fake_A)
        self.set_requires_grad([self.netD_A, self.netD_B], False)
        self.optimizer_G.zero_grad()
        with self._autocast():
            idt_A = self.netG_A(real_B)
            idt_B = self.netG_B(real_A)
            loss_G = (self.gan_loss(self.netD_A(fake_B), True)
                      + self.gan_loss(self.netD_B(fake_A), True)
                      + 10.0 * (self.l1(rec_A.float(), real_A) + self.l1(rec_B.float(), real_B))
                      + 5.0 * (self.l1(idt_A.float(), real_B) + self.l1(idt_B.float(), real_A)))
        loss_G.backward()
        self.optimizer_G.step()
        self.set_requires_grad([self.netD_A, self.netD_B], True)
        self.optimizer_D.zero_grad()
        self.backward_D(self.netD_A, real_B, self.fake_B_pool.query(fake_B))
        self.backward_D(self.netD_B, real_A, self.fake_A_pool.query(fake_A))
        self.optimizer_D.step()
        return loss_G.detach().item()


# ----------------------------------------------------------------------------- measurements


def matmul_gflops(dtype, size, reps):
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def peaks(size, reps):
    return {"matmul_fp32_gflops": matmul_gflops(torch.float32, size, reps),
            "matmul_bf16_gflops": matmul_gflops(torch.bfloat16, size, reps),
            **torch_conv_peak.conv_peaks(reps)}


def run(args):
    torch.manual_seed(0)
    random.seed(0)
    report = {"machine": {**measure.cpu_info(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(),
                          "load_average": list(os.getloadavg()),
                          "mkldnn": torch.backends.mkldnn.is_available()}}
    peaks_before = peaks(args.peak_size, args.peak_reps) if args.peaks else None
    measure.reset_peak_rss()
    bf16 = args.precision == "bfloat16"
    iteration = CycleGANIteration(args.ngf, args.ndf, torch.bfloat16 if bf16 else None)
    shape = (args.batch_size, 3, args.crop_size, args.crop_size)
    real_A, real_B = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    g_flops = conv_forward_flops(iteration.netG_A, real_A)
    d_flops = conv_forward_flops(iteration.netD_A, real_A)
    step_flops = measure.cyclegan_step_flops(g_flops, d_flops, identity=True)

    def step():
        iteration(real_A, real_B)

    probe_dtype = torch.bfloat16 if bf16 else torch.float32
    probe = (lambda: matmul_gflops(probe_dtype, 1024, 3)) if args.probe else None
    timings = measure.time_steps(step, args.steps, args.warmup, probe)
    result = {
        **timings, "peak_rss_gib": measure.peak_rss_gib(),
        "generator_params": sum(p.numel() for p in iteration.netG_A.parameters()),
        "discriminator_params": sum(p.numel() for p in iteration.netD_A.parameters()),
        "generator_forward_gflop": g_flops / 1e9, "discriminator_forward_gflop": d_flops / 1e9,
        "step_gflop": step_flops / 1e9,
        "achieved_gflops": step_flops / timings["step_median_s"] / 1e9}
    peaks_after = peaks(args.peak_size, args.peak_reps) if args.peaks else None
    peer_report.add_peak_ratios(report, result, bf16, peaks_before, peaks_after)
    report["precision"] = args.precision
    report["config"] = vars(args)
    report["result"] = result
    report["machine"]["load_average_end"] = list(os.getloadavg())
    return report


def parse_args(argv=None):
    parser = peer_report.common_parser(__doc__.split("\n\n")[0], ["float32", "bfloat16"])
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        raise SystemExit("--steps and --warmup must be >= 1.")
    report = run(args)
    title = (f"PyTorch reference CycleGAN peer, torch {report['machine']['torch']} on "
             f"{report['machine']['threads']} threads")
    peer_report.print_and_write(report, title, args.output_json)


if __name__ == "__main__":
    main()
