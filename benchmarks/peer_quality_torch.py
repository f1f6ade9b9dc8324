"""Peer-quality worker: trains the PyTorch reference (pytorch-CycleGAN-and-pix2pix) on an image
folder and writes its held-out outputs. Driven by ``peer_quality.py``; needs ``torch``,
``numpy`` and Pillow, not TensorFlow.

The networks are ``peer_pytorch_reference.py``'s (the reference's ``ResnetGenerator``,
``NLayerDiscriminator``, ``init_weights``, ``ImagePool``), plus the reference's
``UnetGenerator`` for pix2pix. The rest is the reference's training as ``train.py`` runs it:

- data (``data/unaligned_dataset.py``, ``data/aligned_dataset.py``, ``data/base_dataset.py``):
  PIL RGB, ``Resize([load_size, load_size], BICUBIC)``, ``RandomCrop(crop_size)``, random
  horizontal flip, ``Normalize(0.5, 0.5)``; A is a shuffled pass per epoch (the DataLoader's
  ``shuffle=True``), B an independent ``random.randint`` per step; an aligned pair is split
  from one AB image and shares its crop and flip;
- ``CycleGANModel.optimize_parameters`` (lsgan, lambda 10, identity 0.5, pool 50) and
  ``Pix2PixModel.optimize_parameters`` (vanilla GAN on ``cat(A, B)``, L1 x 100, no pool);
- ``Adam(lr, betas=(0.5, 0.999))`` (torch's epsilon 1e-8), and the ``linear`` policy's
  ``LambdaLR`` ``1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1)``, stepped
  after each epoch;
- the outputs are written in training mode, as the reference's ``test.py`` without ``--eval``.

``--adam_eps=keras`` and ``--b_draw=pass`` change the reference toward kgan's old choices
(the ablation of ``peer_quality.py``).
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from peer_pytorch_reference import (
    ImagePool,
    init_weights,
    nlayer_discriminator,
    resnet_generator,
)
from PIL import Image
from torch import nn

# The reference's UNet and BatchNorm PatchGAN, as the conversion tests rebuild them (same
# modules, same order): tests/pytorch_reference_nets.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
from pytorch_reference_nets import NLayerDiscriminator, UnetGenerator  # noqa: E402

def init_batchnorm(net, gain=0.02):
    """The rest of the reference's ``init_weights``: BatchNorm weight ~ N(1, gain), bias 0."""
    init_weights(net, gain)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.constant_(m.bias, 0.0)
    return net


# ----------------------------------------------------------------------------- data


def list_images(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith((".png", ".jpg", ".jpeg")))


def to_tensor(image):
    array = np.asarray(image, np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def transform(images, load_size, crop_size, flip=True):
    """The reference's ``get_transform`` on images sharing one crop and flip (an aligned pair:
    the reference draws one ``get_params`` for both)."""
    images = [im.resize((load_size, load_size), Image.BICUBIC) for im in images]
    x = random.randint(0, max(0, load_size - crop_size))
    y = random.randint(0, max(0, load_size - crop_size))
    flipped = flip and random.random() > 0.5
    out = []
    for im in images:
        im = im.crop((x, y, x + crop_size, y + crop_size))
        if flipped:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(to_tensor(im))
    return out


class UnalignedData:
    """``UnalignedDataset`` + a shuffled DataLoader with batch 1."""

    def __init__(self, root, load_size, crop_size, b_draw="random"):
        self.a = [Image.open(p).convert("RGB") for p in list_images(os.path.join(root, "trainA"))]
        self.b = [Image.open(p).convert("RGB") for p in list_images(os.path.join(root, "trainB"))]
        self.load_size, self.crop_size, self.b_draw = load_size, crop_size, b_draw

    def __len__(self):
        return max(len(self.a), len(self.b))

    def epoch(self):
        order = torch.randperm(len(self)).tolist()
        b_order = torch.randperm(len(self.b)).tolist()
        for step, index in enumerate(order):
            image_a = self.a[index % len(self.a)]
            if self.b_draw == "random":
                image_b = self.b[random.randint(0, len(self.b) - 1)]
            else:  # kgan's old choice: a shuffled pass of B, independent of A.
                image_b = self.b[b_order[step % len(self.b)]]
            real_a, = transform([image_a], self.load_size, self.crop_size)
            real_b, = transform([image_b], self.load_size, self.crop_size)
            yield real_a[None], real_b[None]


class AlignedData:
    """``AlignedDataset`` on side-by-side AB images (A left, B right) + a shuffled loader."""

    def __init__(self, root, load_size, crop_size):
        self.ab = []
        for path in list_images(os.path.join(root, "train")):
            image = Image.open(path).convert("RGB")
            w, h = image.size
            self.ab.append((image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h))))
        self.load_size, self.crop_size = load_size, crop_size

    def __len__(self):
        return len(self.ab)

    def epoch(self):
        for index in torch.randperm(len(self)).tolist():
            real_a, real_b = transform(self.ab[index], self.load_size, self.crop_size)
            yield real_a[None], real_b[None]


# ----------------------------------------------------------------------------- models


def adam(params, lr, eps_mode):
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999),
                            eps=1e-8 if eps_mode == "torch" else 1e-7)


def keras_epsilon(optimizers, step, beta_2=0.999):
    """Keras' epsilon (1e-7 added to sqrt(v) before the bias correction) in torch's form."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["eps"] = 1e-7 / math.sqrt(1.0 - beta_2 ** step)


def set_requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


class CycleGAN:
    def __init__(self, args):
        self.netG_A, self.netG_B = (init_weights(resnet_generator(args.ngf, args.n_blocks))
                                    for _ in range(2))
        self.netD_A, self.netD_B = (init_weights(nlayer_discriminator(args.ndf))
                                    for _ in range(2))
        params = lambda *nets: [p for n in nets for p in n.parameters()]
        self.optimizers = [adam(params(self.netG_A, self.netG_B), args.lr, args.adam_eps),
                           adam(params(self.netD_A, self.netD_B), args.lr, args.adam_eps)]
        self.fake_A_pool, self.fake_B_pool = ImagePool(), ImagePool()
        self.mse, self.l1 = nn.MSELoss(), nn.L1Loss()

    def gan(self, prediction, real):
        return self.mse(prediction, torch.full_like(prediction, 1.0 if real else 0.0))

    def backward_D(self, netD, real, fake):
        loss = 0.5 * (self.gan(netD(real), True) + self.gan(netD(fake.detach()), False))
        loss.backward()

    def step(self, real_A, real_B):
        opt_G, opt_D = self.optimizers
        fake_B = self.netG_A(real_A)
        rec_A = self.netG_B(fake_B)
        fake_A = self.netG_B(real_B)
        rec_B = self.netG_A(fake_A)
        set_requires_grad([self.netD_A, self.netD_B], False)
        opt_G.zero_grad()
        idt_A = self.netG_A(real_B)
        idt_B = self.netG_B(real_A)
        loss_G = (self.gan(self.netD_A(fake_B), True) + self.gan(self.netD_B(fake_A), True)
                  + 10.0 * (self.l1(rec_A, real_A) + self.l1(rec_B, real_B))
                  + 5.0 * (self.l1(idt_A, real_B) + self.l1(idt_B, real_A)))
        loss_G.backward()
        opt_G.step()
        set_requires_grad([self.netD_A, self.netD_B], True)
        opt_D.zero_grad()
        self.backward_D(self.netD_A, real_B, self.fake_B_pool.query(fake_B))
        self.backward_D(self.netD_B, real_A, self.fake_A_pool.query(fake_A))
        opt_D.step()

    def outputs(self, held_a, held_b):
        with torch.no_grad():
            return {"AtoB": self.netG_A(held_a), "BtoA": self.netG_B(held_b)}


class Pix2Pix:
    def __init__(self, args):
        self.netG = init_batchnorm(UnetGenerator(3, 3, args.num_downs, args.ngf, norm="batch"))
        self.netD = init_batchnorm(NLayerDiscriminator(6, args.ndf, norm="batch"))
        self.optimizers = [adam(self.netG.parameters(), args.lr, args.adam_eps),
                           adam(self.netD.parameters(), args.lr, args.adam_eps)]
        self.bce, self.l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()

    def gan(self, prediction, real):
        return self.bce(prediction, torch.full_like(prediction, 1.0 if real else 0.0))

    def step(self, real_A, real_B):
        opt_G, opt_D = self.optimizers
        fake_B = self.netG(real_A)
        set_requires_grad([self.netD], True)
        opt_D.zero_grad()
        loss_D = 0.5 * (self.gan(self.netD(torch.cat([real_A, fake_B], 1).detach()), False)
                        + self.gan(self.netD(torch.cat([real_A, real_B], 1)), True))
        loss_D.backward()
        opt_D.step()
        set_requires_grad([self.netD], False)
        opt_G.zero_grad()
        loss_G = (self.gan(self.netD(torch.cat([real_A, fake_B], 1)), True)
                  + 100.0 * self.l1(fake_B, real_B))
        loss_G.backward()
        opt_G.step()

    def outputs(self, held_a, held_b):
        with torch.no_grad():  # train mode: batch statistics and dropout, as test.py
            return {"AtoB": torch.cat([self.netG(x[None]) for x in held_a])}


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["cyclegan", "pix2pix"], required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--output", required=True, help="An .npz of the held-out outputs.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--n_blocks", type=int, default=6)
    parser.add_argument("--num_downs", type=int, default=7)
    parser.add_argument("--load_size", type=int, default=72)
    parser.add_argument("--crop_size", type=int, default=64)
    parser.add_argument("--n_epochs", type=int, required=True)
    parser.add_argument("--n_epochs_decay", type=int, required=True)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--adam_eps", choices=["torch", "keras"], default="torch")
    parser.add_argument("--b_draw", choices=["random", "pass"], default="random")
    parser.add_argument("--threads", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.task == "cyclegan":
        data = UnalignedData(args.data_dir, args.load_size, args.crop_size, args.b_draw)
        model = CycleGAN(args)
    else:
        data = AlignedData(args.data_dir, args.load_size, args.crop_size)
        model = Pix2Pix(args)
    rule = lambda epoch: 1.0 - max(0, epoch + 1 - args.n_epochs) / float(args.n_epochs_decay + 1)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, rule) for o in model.optimizers]
    start, steps = time.time(), 0
    for _ in range(args.n_epochs + args.n_epochs_decay):
        for real_a, real_b in data.epoch():
            steps += 1
            if args.adam_eps == "keras":
                keras_epsilon(model.optimizers, steps)
            model.step(real_a, real_b)
        for scheduler in schedulers:
            scheduler.step()
    seconds = time.time() - start
    held = np.load(os.path.join(args.data_dir, "heldout.npz"))
    to_torch = lambda x: torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    outputs = model.outputs(to_torch(held["A"]), to_torch(held["B"]) if "B" in held else None)
    arrays = {k: np.clip(v.numpy().transpose(0, 2, 3, 1), -1, 1) for k, v in outputs.items()}
    np.savez(args.output, **arrays)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump({"steps": steps, "seconds": seconds, "threads": torch.get_num_threads(),
                   "torch": torch.__version__, "settings": vars(args)}, f, indent=2)
    print(f"reference {args.task} seed {args.seed}: {steps} steps in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
