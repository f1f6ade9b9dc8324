"""torchvision ResNet weights onto the bodies of DeOldify's generators
(kgan.interop.torchvision_bodies): every body layer takes its torchvision tensor, the body then
computes what torchvision's ResNet computes (live torch), a file of another architecture or
width stops with one line, a missing file names the file and the folder, and a training run
with ``--generator=deoldify_*`` resolves it before training."""

import os
import sys

import keras
import numpy as np
import tensorflow as tf
from helpers import ROOT

from kgan.interop import torch_pickle
from kgan.interop.pytorch_weights import WeightMismatchError
from kgan.interop.torchvision_bodies import (
    TORCHVISION_FILES,
    BodyWeightsMissingError,
    body_layers,
    load_body_weights,
    resolve_body_weights,
)
from kgan.models.deoldify import deoldify_generator
from kgan.recipes import colorize
from kgan.recipes.config import TrainConfig

WIDTH = 4
BLOCKS = (1, 1, 1, 1)


def _fake_state_dict(model, seed=0):
    """A torchvision-format state dict for ``model``'s body (random values, torch layouts)."""
    rng = np.random.default_rng(seed)
    state = {"fc.weight": np.zeros((10, 8 * WIDTH), np.float32)}
    for prefix, layer in body_layers(model).items():
        if type(layer).__name__ == "Conv2D":
            kh, kw, cin, cout = layer.kernel.shape
            state[prefix + ".weight"] = rng.normal(0, 0.1, (cout, cin, kh, kw)).astype(np.float32)
        else:
            n = layer.gamma.shape[0]
            state[prefix + ".weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
            state[prefix + ".bias"] = rng.normal(0, 0.1, n).astype(np.float32)
            state[prefix + ".running_mean"] = rng.normal(0, 0.1, n).astype(np.float32)
            state[prefix + ".running_var"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
            state[prefix + ".num_batches_tracked"] = np.array(7, np.int64)
    return state


class TorchvisionBodiesTest(tf.test.TestCase):

    def _generator(self, variant="artistic"):
        return deoldify_generator(variant, width=WIDTH, blocks=BLOCKS, wide_nf=16)

    def test_every_body_layer_takes_its_torchvision_tensor(self):
        model = self._generator()
        state = _fake_state_dict(model)
        path = os.path.join(self.get_temp_dir(), TORCHVISION_FILES["resnet34"])
        torch_pickle.save_state_dict(state, path)
        layers = body_layers(model)
        # conv1, bn1 and per BasicBlock 2 convs + 2 BNs (+ 2 for a downsample from stage 2 on)
        self.assertLen(layers, 2 + 4 * 4 + 3 * 2)
        self.assertEqual(load_body_weights(model, path), len(layers))
        self.assertAllClose(layers["layer2.0.downsample.0"].kernel.numpy(),
                            state["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))
        bn = layers["layer4.0.bn2"]
        self.assertAllClose(bn.moving_variance.numpy(), state["layer4.0.bn2.running_var"])
        self.assertAllClose(bn.gamma.numpy(), state["layer4.0.bn2.weight"])

    def test_the_body_computes_torchvisions_resnet(self):
        try:
            import torch
        except ImportError:
            self.skipTest("torch is not installed")
        sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
        import deoldify_reference as reference

        torch.manual_seed(0)
        net = reference.ResNet(reference.BasicBlock, BLOCKS, width=WIDTH).eval()
        for module in net.modules():  # non-trivial running statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        path = os.path.join(self.get_temp_dir(), "resnet.pth")
        torch.save(net.state_dict(), path)
        model = self._generator()
        load_body_weights(model, path)
        body = keras.Model(model.get_layer("conv1_pad").input,
                           model.get_layer("layer4_0_out").output)
        x = np.random.default_rng(1).normal(size=(1, 64, 80, 3)).astype(np.float32)
        with torch.no_grad():
            t = torch.from_numpy(x.transpose(0, 3, 1, 2))
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                         "layer4"):
                t = getattr(net, name)(t)
        expected = t.numpy().transpose(0, 2, 3, 1)
        got = body(x).numpy()
        self.assertAllClose(got, expected, atol=1e-4)
        # A body left at its initial weights is far from it (the bound can fail).
        fresh = self._generator()
        fresh_body = keras.Model(fresh.get_layer("conv1_pad").input,
                                 fresh.get_layer("layer4_0_out").output)
        self.assertGreater(np.abs(fresh_body(x).numpy() - expected).max(), 1e-2)

    def test_another_architecture_stops_with_one_line(self):
        stable = self._generator("stable")
        path = os.path.join(self.get_temp_dir(), "resnet34.pth")
        torch_pickle.save_state_dict(_fake_state_dict(self._generator()), path)
        with self.assertRaisesRegex(WeightMismatchError, "resnet101 for deoldify_stable"):
            load_body_weights(stable, path)

    def test_a_missing_file_names_the_file_and_the_folder(self):
        home = self.get_temp_dir()
        os.environ["TORCH_HOME"] = home
        try:
            with self.assertRaisesRegex(BodyWeightsMissingError,
                                        "resnet101-63fe2227.pth in .*hub/checkpoints/"):
                resolve_body_weights("resnet101")
            self.assertIsNone(resolve_body_weights("resnet101", "none"))
            os.makedirs(os.path.join(home, "hub", "checkpoints"), exist_ok=True)
            cached = os.path.join(home, "hub", "checkpoints", "resnet34-b627a593.pth")
            open(cached, "wb").close()
            self.assertEqual(resolve_body_weights("resnet34"), cached)
            # The colourisation recipe resolves it for DeOldify's generators, before training,
            # and not when --init_from supplies the whole generator.
            config = TrainConfig(model="colorize", generator="deoldify_stable")
            with self.assertRaisesRegex(BodyWeightsMissingError, "resnet101"):
                colorize.make_spec(config).body_weights(config)
            config = TrainConfig(model="colorize", generator="deoldify_stable", init_from="x")
            self.assertIsNone(colorize.make_spec(config).body_weights(config))
        finally:
            del os.environ["TORCH_HOME"]
