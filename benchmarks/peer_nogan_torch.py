"""PyTorch peer of ``kgan.bench --model=colorize --generator=deoldify_*`` NoGAN phases (issue 27).

One process times one phase of DeOldify's NoGAN colourisation training in PyTorch, with the
networks and losses of kgan's phase (kgan.recipes.colorize / restore ``build_phase``):

- networks: DeOldify's generators and critic rebuilt in PyTorch with DeOldify's module tree
  (``tests/fixtures/deoldify_reference.py``: ``artistic()`` DynamicUnetDeep on ResNet-34,
  ``stable()`` DynamicUnetWide on ResNet-101, spectral norm and an extra batch norm in every
  decoder conv, self-attention; ``custom_gan_critic(nf=64)``: kgan's ``--critic_nf`` default).
  The generator is wrapped as kgan's ``deoldify_generator``: RGB in [-1, 1] -> ImageNet
  normalisation -> network -> ``SigmoidRange(-3, 3)`` -> denormalise, clamp to [0, 1] -> [-1, 1].
  Input: gray as 3 equal channels (kgan.data.colorize ``gray3``: BT.601 luma), target: colour.
- content loss: kgan.training.losses ``PerceptualLoss`` preset ``deoldify``: pixel L1 (weight 1)
  + 20 / 70 / 10 x L1 of the VGG16 activations after the ReLUs of block3_conv3 / block4_conv3 /
  block5_conv3, no Gram term, on ``vgg_preprocess`` input ((x + 1) * 127.5, BGR, ImageNet means
  subtracted). torchvision is not installed here, so VGG16's ``features`` are written out as
  torchvision lays them out (``nn.Sequential``, indices 0-29, conv 3x3 padding 1, ReLU, max pool
  2), frozen, random weights as Keras initialises them (Glorot uniform, zero bias; speed only).
  The generated image's features carry the gradient to G; the target's are computed without
  gradient (``--vgg_batch=split``, PyTorch at its best:
  3 VGG forwards' work, the count of kgan's FLOP convention) or, as kgan does, on the
  concatenated batch with the target half detached (``--vgg_batch=concat``).
- ``pretrain_g``: G trained on the content loss; ``Adam(1e-3, betas (0.9, 0.99), eps 1e-8)``
  (the colorize recipe's ``lr``, ``beta_1``, ``beta_2``; kgan's Adam is torch's formula).
- ``pretrain_d``: G in eval mode without gradient; the critic trained on real and generated
  with ``0.5 * (BCE(critic(real), 1) + BCE(critic(fake), 0))`` (BCE with logits, mean over the
  patch map); ``Adam(1e-3, (0.9, 0.99))``.
- ``gan``: a *pair*, as kgan.bench times it: one critic update (as pretrain_d, critic Adam
  ``(gan_lr 1e-4 * critic_lr_mult 5, betas (0, 0.99))``), then one generator update with
  ``1 * BCE(critic(G(x)), 1) + 50 * content`` (``weights_gen``), the critic in eval mode and
  frozen (differentiated through), G Adam ``(1e-4, (0, 0.99))``.

``--precision=bfloat16`` runs every forward under ``torch.autocast("cpu", dtype=bfloat16)`` (the
losses in float32, the backward outside the autocast region; weights and Adam in float32), the
counterpart of Keras ``mixed_bfloat16``. ``--memory_format=channels_last`` converts the networks
and inputs to channels-last. ``torch.set_num_threads(--threads)``.

Measured: the first step, then ``--warmup - 1`` untimed and ``--steps`` timed steps
(kgan.core.measure ``time_steps``, loaded from its file so no TensorFlow enters this process);
the median step; GFLOP/s with kgan's FLOP convention (kgan.core.measure ``nogan_step_flops``
on forward FLOPs counted here by ``torch.utils.flop_counter.FlopCounterMode`` on one forward of
G, the critic and VGG16 to block5_conv3 in eval mode: 2*K^2*Cin*Cout per conv output position,
2*M*K*N per matmul, as kgan.benchmarking.peaks counts a traced Keras graph; the driver
``benchmarks/nogan_speed.py`` uses kgan's own count from kgan.bench's JSON for both sides and
keeps this one as a cross-check); the 3x3 256-channel 64^2 conv peaks of torch in fp32 and bf16
(best of before and after); peak RSS (VmHWM, reset before the networks are built); every loss
term of the first step (a sanity check against kgan's trainer logs).

Run::

    .venv/bin/python benchmarks/peer_nogan_torch.py --generator=deoldify_artistic \\
        --phase=pretrain_g --crop_size=128 --batch_size=8 --precision=bfloat16 \\
        --steps=2 --warmup=1 --output_json=/tmp/torch_pretrain_g.json

A measurement tool, not part of the package (needs torch; no torchvision).
"""

import argparse
import importlib.util
import json
import os

import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = ("pretrain_g", "pretrain_d", "gan")
GENERATORS = ("deoldify_artistic", "deoldify_stable", "deoldify_video")
# kgan.training.losses.PERCEPTUAL_PRESETS["deoldify"]: (torchvision features index after the
# layer's ReLU, weight) for block3_conv3, block4_conv3, block5_conv3.
DEOLDIFY_LAYERS = (("block3_conv3", 15, 20.0), ("block4_conv3", 22, 70.0),
                   ("block5_conv3", 29, 10.0))
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# kgan.recipes.colorize.MODEL_DEFAULTS / TrainConfig defaults.
LR, BETAS = 1e-3, (0.9, 0.99)
GAN_LR, CRITIC_LR_MULT, GAN_BETAS = 1e-4, 5.0, (0.0, 0.99)
WEIGHTS_GEN = (1.0, 50.0)
CRITIC_NF = 64
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def load_file(name, path):
    """Imports a module from its file without importing its package (kgan/__init__ would
    import TensorFlow into this process)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


measure = load_file("kgan_measure", os.path.join(ROOT, "kgan", "core", "measure.py"))
torch_conv_peak = load_file("torch_conv_peak",
                            os.path.join(ROOT, "benchmarks", "torch_conv_peak.py"))
reference = load_file("deoldify_reference",
                      os.path.join(ROOT, "tests", "fixtures", "deoldify_reference.py"))


# ----------------------------------------------------------------------------- networks


class KganDeOldify(nn.Module):
    """kgan's ``deoldify_generator`` around DeOldify's network: [-1, 1] RGB in and out."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(TORCH_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(TORCH_STD).view(1, 3, 1, 1))

    def forward(self, x):
        normalised = ((x + 1.0) * 0.5 - self.mean) / self.std
        y = self.network(normalised)  # SigmoidRange(-3, 3): ImageNet-normalised RGB
        return torch.clamp(y.float() * self.std + self.mean, 0.0, 1.0) * 2.0 - 1.0


def generator_network(name, width=64):
    variant = name.removeprefix("deoldify_")
    network = reference.artistic(width) if variant == "artistic" else reference.stable(width)
    return KganDeOldify(network)


def vgg16_features(last_index=DEOLDIFY_LAYERS[-1][1]):
    """torchvision's ``vgg16().features`` (indices 0-30), cut after ``last_index``."""
    layers, channels = [], 3
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    features = nn.Sequential(*layers[:last_index + 1])
    for layer in features:
        if isinstance(layer, nn.Conv2d):  # Keras' Conv2D defaults (random VGG16 in kgan.bench)
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    for p in features.parameters():
        p.requires_grad_(False)
    return features.eval()


class PerceptualLoss(nn.Module):
    """kgan's ``PerceptualLoss(preset="deoldify")``: per term, batch means (kgan's per-example
    means reduced over the global batch give the same value)."""

    def __init__(self, vgg_batch="split"):
        super().__init__()
        self.features = vgg16_features()
        self.taps = {index: (name, weight) for name, index, weight in DEOLDIFY_LAYERS}
        self.vgg_batch = vgg_batch
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))

    def preprocess(self, x):
        """kgan's ``vgg_preprocess``: [-1, 1] RGB -> 0-255 BGR less the ImageNet means."""
        return (x.float() + 1.0).flip(1) * 127.5 - self.mean

    def _features(self, x):
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                out.append(x)
        return out

    def terms(self, prediction, target, autocast):
        out = {"pixel": F.l1_loss(prediction.float(), target.float())}
        batch = prediction.shape[0]
        with autocast():
            if self.vgg_batch == "concat":
                both = torch.cat([self.preprocess(prediction), self.preprocess(target)])
                pairs = [(f[:batch], f[batch:].detach()) for f in self._features(both)]
            else:
                predicted = self._features(self.preprocess(prediction))
                with torch.no_grad():
                    targets = self._features(self.preprocess(target))
                pairs = list(zip(predicted, targets))
        for (name, weight), (p, t) in zip(self.taps.values(), pairs):
            out["feat_" + name] = weight * F.l1_loss(p.float(), t.float())
        return out


def bce(logits, real):
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def adam(params, lr, betas):
    """torch's Adam (eps 1e-8), fused when this build has the fused CPU kernel."""
    params = [p for p in params if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8, foreach=True)


def set_requires_grad(net, flag):
    for p in net.parameters():
        p.requires_grad_(flag)


# ----------------------------------------------------------------------------- the phases


class Phase:
    """One timed step of ``phase`` (``gan``: a critic update, then a generator update)."""

    def __init__(self, args):
        self.phase = args.phase
        self.bf16 = args.precision == "bfloat16"
        self.generator = generator_network(args.generator, args.width)
        self.critic = (reference.custom_gan_critic(nf=args.critic_nf)
                       if args.phase != "pretrain_g" else None)
        self.content = PerceptualLoss(args.vgg_batch) if args.phase != "pretrain_d" else None
        self.memory_format = (torch.channels_last if args.memory_format == "channels_last"
                              else torch.contiguous_format)
        for net in (self.generator, self.critic, self.content):
            if net is not None:
                net.to(memory_format=self.memory_format)
        if args.phase == "pretrain_g":
            self.g_opt = adam(self.generator.parameters(), LR, BETAS)
        elif args.phase == "pretrain_d":
            set_requires_grad(self.generator, False)
            self.d_opt = adam(self.critic.parameters(), LR, BETAS)
        else:
            self.g_opt = adam(self.generator.parameters(), GAN_LR, GAN_BETAS)
            self.d_opt = adam(self.critic.parameters(), GAN_LR * CRITIC_LR_MULT, GAN_BETAS)
        self.logs = {}

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def _critic_update(self, gray, colour):
        self.generator.eval()
        self.critic.train()
        with torch.no_grad(), self.autocast():
            fake = self.generator(gray)
        fake = fake.contiguous(memory_format=self.memory_format)
        self.d_opt.zero_grad(set_to_none=True)
        with self.autocast():
            real_logits, fake_logits = self.critic(colour), self.critic(fake)
        loss = 0.5 * (bce(real_logits, True) + bce(fake_logits, False))
        loss.backward()
        self.d_opt.step()
        accuracy = torch.cat([(real_logits > 0).float(), (fake_logits <= 0).float()], 1).mean()
        return {"critic": loss.item(), "accuracy": accuracy.item()}

    def _generator_update(self, gray, colour, adversarial_weight=None):
        self.generator.train()
        self.g_opt.zero_grad(set_to_none=True)
        with self.autocast():
            fake = self.generator(gray)
        terms = self.content.terms(fake, colour, self.autocast)
        content = sum(terms.values())
        logs = {"content_" + k: v.item() for k, v in terms.items()}
        logs["content"] = content.item()
        loss = content
        if adversarial_weight is not None:
            self.critic.eval()
            set_requires_grad(self.critic, False)
            with self.autocast():
                adversarial = bce(self.critic(fake), True)
            loss = adversarial_weight * adversarial + WEIGHTS_GEN[1] * content
            logs.update(adversarial=adversarial.item(), generator=loss.item())
        loss.backward()
        if adversarial_weight is not None:
            set_requires_grad(self.critic, True)
        self.g_opt.step()
        return logs

    def step(self, gray, colour):
        if self.phase == "pretrain_g":
            self.logs = self._generator_update(gray, colour)
        elif self.phase == "pretrain_d":
            self.logs = self._critic_update(gray, colour)
        else:
            self.logs = {**self._critic_update(gray, colour),
                         **self._generator_update(gray, colour, WEIGHTS_GEN[0])}


def forward_flops(net, x):
    """Forward FLOPs of ``net`` on ``x`` in eval mode (FlopCounterMode: convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    net.train(was_training)
    return int(counter.get_total_flops())


def phase_flops(phase_obj, gray, colour):
    """kgan's result keys: forward GFLOP of G, critic, VGG and the step (nogan_step_flops)."""
    g = forward_flops(phase_obj.generator, gray)
    c = forward_flops(phase_obj.critic, colour) if phase_obj.critic is not None else 0
    v = (forward_flops(phase_obj.content.features, colour)
         if phase_obj.content is not None else 0)
    if phase_obj.phase == "gan":
        step = (measure.nogan_step_flops("gan_generator", g, c, v)
                + measure.nogan_step_flops("gan_critic", g, c, v))
    else:
        step = measure.nogan_step_flops(phase_obj.phase, g, c, v)
    return {"generator_forward_gflop": g / 1e9, "critic_forward_gflop": c / 1e9,
            "vgg_forward_gflop": v / 1e9, "step_gflop": step / 1e9}


# ----------------------------------------------------------------------------- the run


def batch(args, memory_format):
    """(gray input, colour target) in [-1, 1], NCHW: a smooth random colour image and its
    BT.601 luma on 3 channels (kgan.data.colorize.gray3)."""
    generator = torch.Generator().manual_seed(1)
    shape = (args.batch_size, 3, args.crop_size // 8, args.crop_size // 8)
    colour = torch.rand(shape, generator=generator) * 2 - 1
    colour = F.interpolate(colour, size=(args.crop_size, args.crop_size), mode="bilinear",
                           align_corners=False).clamp(-1, 1)
    luma = (0.299 * colour[:, 0:1] + 0.587 * colour[:, 1:2] + 0.114 * colour[:, 2:3])
    gray = luma.expand(-1, 3, -1, -1)
    return (gray.contiguous(memory_format=memory_format),
            colour.contiguous(memory_format=memory_format))


def run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    memory_format = (torch.channels_last if args.memory_format == "channels_last"
                     else torch.contiguous_format)
    report = {"machine": {**measure.cpu_info(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(),
                          "load_average": list(os.getloadavg())}}
    before = torch_conv_peak.conv_peaks(args.peak_reps, memory_format) if args.peaks else None
    measure.reset_peak_rss()
    phase = Phase(args)
    gray, colour = batch(args, memory_format)
    flops = phase_flops(phase, gray, colour)
    first_logs = []

    def step():
        phase.step(gray, colour)
        if not first_logs:
            first_logs.append(dict(phase.logs))

    timings = measure.time_steps(step, args.steps, args.warmup)
    result = {**timings, **flops,
              "achieved_gflops": flops["step_gflop"] / timings["step_median_s"],
              "updates_per_step": 2 if args.phase == "gan" else 1,
              "peak_rss_gib": measure.peak_rss_gib(),
              "generator_params": sum(p.numel() for p in phase.generator.parameters()),
              "first_step_losses": first_logs[0], "last_step_losses": phase.logs}
    if args.peaks:
        after = torch_conv_peak.conv_peaks(args.peak_reps, memory_format)
        report["peaks"] = {k: max(before[k], after[k]) for k in before}
        report["peaks"]["conv_bf16_over_fp32"] = (report["peaks"]["conv_bf16_gflops"]
                                                  / report["peaks"]["conv_fp32_gflops"])
        tag = "bf16" if args.precision == "bfloat16" else "fp32"
        result["ratio_to_conv_peak"] = (result["achieved_gflops"]
                                        / report["peaks"][f"conv_{tag}_gflops"])
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["config"] = {k: v for k, v in vars(args).items()}
    report["result"] = result
    return report


def format_report(report):
    r, c = report["result"], report["config"]
    lines = [f"torch {report['machine']['torch']} on {report['machine']['threads']} threads, "
             f"{c['generator']} {c['phase']} {c['crop_size']}^2 batch {c['batch_size']} "
             f"{c['precision']} {c['memory_format']}",
             f"  first step {r['first_step_s']:.2f} s, median {r['step_median_s']:.3f} s "
             f"(steps {', '.join(f'{t:.3f}' for t in r['step_times_s'])}), "
             f"{r['step_gflop']:.1f} GFLOP/step, {r['achieved_gflops']:.1f} GFLOP/s"
             + (f" = {100 * r['ratio_to_conv_peak']:.1f}% of the conv peak"
                if "ratio_to_conv_peak" in r else ""),
             f"  peak RSS {r['peak_rss_gib']:.2f} GiB; CPU utilisation "
             f"{r['cpu_utilisation']:.2f}",
             "  first step losses: " + ", ".join(f"{k} {v:.4g}"
                                                 for k, v in r["first_step_losses"].items())]
    if report.get("peaks"):
        p = report["peaks"]
        lines.append(f"  conv peaks fp32 {p['conv_fp32_gflops']:.0f}, bf16 "
                     f"{p['conv_bf16_gflops']:.0f} GFLOP/s")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="deoldify_artistic", choices=GENERATORS)
    parser.add_argument("--phase", default="pretrain_g", choices=PHASES)
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--memory_format", default="channels_last",
                        choices=("channels_last", "contiguous"))
    parser.add_argument("--vgg_batch", default="split", choices=("split", "concat"))
    parser.add_argument("--crop_size", type=int, default=192)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=64, help="ResNet body width (tests: 8)")
    parser.add_argument("--critic_nf", type=int, default=CRITIC_NF)
    parser.add_argument("--peak_reps", type=int, default=5)
    parser.add_argument("--no_peaks", dest="peaks", action="store_false")
    parser.add_argument("--output_json", default="")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1")
    if args.crop_size % 16:
        parser.error("--crop_size must be a multiple of 16 (DeOldify's networks)")
    return args


def main(argv=None):
    args = parse_args(argv)
    report = run(args)
    print(format_report(report), flush=True)
    if args.output_json:
        tmp = args.output_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, args.output_json)


if __name__ == "__main__":
    main()
