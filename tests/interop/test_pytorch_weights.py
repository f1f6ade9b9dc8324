"""kgan.interop.pytorch_weights and kgan.interop.init_from: the reference's key layout, state dicts
written here (no torch) loading exactly, mismatches named with the flags that fit, --init_from for
CycleGAN and pix2pix; with
torch, the reference networks rebuilt in torch against the converted models (eval mode)."""

import collections
import os
import tempfile

import numpy as np
import tensorflow as tf

from kgan.interop import init_from, torch_pickle
from kgan.interop import pytorch_weights as pw
from kgan.models import build_discriminator, build_generator
from kgan.training.trainers.cyclegan import build_cyclegan
from kgan.training.trainers.pix2pix import Pix2Pix

try:
    import pytorch_reference_nets as ref
    import torch
except ImportError:
    torch = None


def _randomise(model, seed):
    """Random weights of a realistic scale (and BN statistics) in a kgan network."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in variable.path:
            value = 1 + 0.2 * rng.standard_normal(shape)
        elif len(shape) == 4:
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:3]))
        else:
            value = 0.1 * rng.standard_normal(shape)
        variable.assign(value.astype(np.float32))
    return model


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _same_outputs(test, a, b, x, atol=0.0):
    np.testing.assert_allclose(np.asarray(a(x, training=False)),
                               np.asarray(b(x, training=False)), atol=atol, rtol=0)


class KeyLayoutTest(tf.test.TestCase):
    """Key names derived by hand from the reference's models/networks.py."""

    def test_resnet_unet_and_discriminator_keys(self):
        keys = pw.keras_to_state_dict(build_generator("resnet_9blocks", ngf=4))
        self.assertEqual(keys["model.1.weight"].shape, (4, 3, 7, 7))  # Conv2d: O, I, H, W
        self.assertEqual(keys["model.19.weight"].shape, (16, 8, 3, 3))  # ConvTranspose2d: I, O
        self.assertEqual(keys["model.26.weight"].shape, (3, 4, 7, 7))
        self.assertIn("model.18.conv_block.5.weight", keys)
        self.assertNotIn("model.2.weight", keys)  # InstanceNorm2d(affine=False)
        self.assertEqual(len(keys), 2 * (3 + 18 + 2 + 1))
        dropout = pw.keras_to_state_dict(build_generator("resnet_6blocks", ngf=4,
                                                         use_dropout=True))
        self.assertIn("model.10.conv_block.6.weight", dropout)

        unet = pw.keras_to_state_dict(build_generator("unet_256", ngf=4, norm="batch"))
        innermost = "model.model.1" + ".model.3" * 6
        self.assertEqual(unet[innermost + ".model.1.weight"].shape, (32, 32, 4, 4))
        self.assertEqual(unet[innermost + ".model.4.running_var"].shape, (32,))
        self.assertEqual(unet["model.model.3.weight"].shape, (8, 3, 4, 4))
        self.assertIn("model.model.3.bias", unet)  # the outermost up conv keeps its bias
        self.assertNotIn("model.model.0.bias", unet)  # no conv bias under batch norm

        patch = pw.keras_to_state_dict(build_discriminator("basic", 6, ndf=4))
        self.assertEqual([k for k in patch if k.endswith("weight")],
                         ["model.0.weight", "model.2.weight", "model.5.weight",
                          "model.8.weight", "model.11.weight"])
        pixel = pw.keras_to_state_dict(build_discriminator("pixel", 3, ndf=4, norm="batch"))
        self.assertEqual(sorted({k.rsplit(".", 1)[0] for k in pixel}),
                         ["net.0", "net.2", "net.3", "net.5"])


class LoadTest(tf.test.TestCase):

    def test_generators_and_discriminators_load_exactly_from_both_formats(self):
        cases = [("resnet_6blocks", dict(ngf=4), (2, 44, 36, 3)),
                 ("unet_128", dict(ngf=4, norm="batch"), (1, 128, 128, 3))]
        with tempfile.TemporaryDirectory() as tmp:
            for i, (name, options, shape) in enumerate(cases):
                source = _randomise(build_generator(name, **options), i)
                path = os.path.join(tmp, f"{name}.pth")
                torch_pickle.save_state_dict(pw.keras_to_state_dict(source), path,
                                             legacy=i == 1)
                converted = pw.load_pytorch_generator(path, name, **options)
                _same_outputs(self, source, converted, _images(shape))
            for name in ("basic", "pixel"):
                source = _randomise(build_discriminator(name, 6, ndf=4), 3)
                path = os.path.join(tmp, f"d_{name}.pth")
                torch_pickle.save_state_dict(pw.keras_to_state_dict(source), path)
                converted = pw.load_pytorch_discriminator(path, name, ndf=4)
                self.assertEqual(converted.input_shape[-1], 6)
                _same_outputs(self, source, converted, _images((1, 32, 40, 6)))

    def test_dataparallel_prefix_and_old_instance_norm_statistics(self):
        source = _randomise(build_generator("resnet_6blocks", ngf=4), 0)
        state = collections.OrderedDict(
            ("module." + k, v) for k, v in pw.keras_to_state_dict(source).items())
        for prefix in ("model.2", "model.5", "model.10.conv_block.2"):
            state[f"module.{prefix}.running_mean"] = np.full(4 if prefix == "model.2" else 8,
                                                             3.0, np.float32)
            state[f"module.{prefix}.running_var"] = np.full(4 if prefix == "model.2" else 8,
                                                            9.0, np.float32)
            state[f"module.{prefix}.num_batches_tracked"] = np.array(1, np.int64)
        target = build_generator("resnet_6blocks", ngf=4)
        with self.assertLogs("absl", "INFO") as logs:
            notes = pw.assign_state_dict(target, state, "old.pth")
        self.assertLen(notes, 3)
        self.assertTrue(any("dropped the instance-norm running_mean" in line
                            and "3 layers" in line for line in logs.output))
        _same_outputs(self, source, target, _images((1, 32, 32, 3)))

    def test_norm_none_checkpoints_have_no_conv_bias(self):
        source = _randomise(build_generator("resnet_6blocks", ngf=4, norm="none"), 1)
        state = pw.keras_to_state_dict(source)
        for key in [k for k in state if k.endswith(".bias") and k != "model.23.bias"]:
            source.get_layer(_layer_for(source, key)).bias.assign(
                np.zeros(state[key].shape, np.float32))
            del state[key]  # the reference's --norm=none convs have no bias
        target = build_generator("resnet_6blocks", ngf=4, norm="none")
        pw.assign_state_dict(target, state)
        _same_outputs(self, source, target, _images((1, 32, 32, 3)))

    def test_mismatches_name_the_key_and_the_matching_flags(self):
        state = pw.keras_to_state_dict(build_generator("resnet_9blocks", ngf=4))
        cases = [
            (build_generator("resnet_6blocks", ngf=4),
             "missing key model.16.weight.*9 residual blocks.*--generator=resnet_9blocks"),
            (build_generator("resnet_9blocks", ngf=8),
             r"model.1.weight has shape \(4, 3, 7, 7\), but c7s1 needs \(8, 3, 7, 7\).*"
             "--ngf=4"),
            (build_generator("resnet_9blocks", ngf=4, norm="batch"),
             "missing key model.2.weight.*--norm=instance"),
            (build_generator("resnet_9blocks", ngf=4, use_dropout=True),
             "missing key model.10.conv_block.6.weight.*--no_dropout"),
            (build_generator("unet_256", ngf=4), "missing key model.model.0.weight"),
        ]
        for model, pattern in cases:
            with self.assertRaisesRegex(pw.WeightMismatchError, pattern):
                pw.assign_state_dict(model, state)
        extra = collections.OrderedDict(state, **{"model.99.weight": np.zeros(1, np.float32)})
        with self.assertRaisesRegex(pw.WeightMismatchError, "unexpected key model.99.weight"):
            pw.assign_state_dict(build_generator("resnet_9blocks", ngf=4), extra)
        unet = pw.keras_to_state_dict(build_generator("unet_256", ngf=4, norm="batch"))
        with self.assertRaisesRegex(pw.WeightMismatchError,
                                    "UNet generator with 8 levels.*--generator=unet_256 "
                                    "--ngf=4 --norm=batch"):
            pw.assign_state_dict(build_generator("unet_128", ngf=4, norm="batch"), unet)
        d = pw.keras_to_state_dict(build_discriminator("n_layers", 3, ndf=4, n_layers_d=2))
        with self.assertRaisesRegex(pw.WeightMismatchError,
                                    "--discriminator=n_layers --n_layers_d=2"):
            pw.assign_state_dict(build_generator("resnet_6blocks", ngf=4), d)

    def test_failed_load_leaves_the_model_untouched(self):
        model = build_generator("resnet_6blocks", ngf=4)
        before = [w.copy() for w in model.get_weights()]
        state = pw.keras_to_state_dict(_randomise(build_generator("resnet_6blocks", ngf=4), 0))
        del state["model.23.bias"]
        with self.assertRaisesRegex(pw.WeightMismatchError, "missing key model.23.bias"):
            pw.assign_state_dict(model, state)
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)


def _layer_for(model, key):
    prefix = key.rsplit(".", 1)[0]
    return next(layer.name for p, layer in pw.layer_map(model) if p == prefix)


class InitFromTest(tf.test.TestCase):

    def test_cyclegan_starts_from_the_reference_files_with_a_b_names_mapped(self):
        trainer = build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32,
                                 pool_size=0)
        sources = {"G_A": build_generator("resnet_6blocks", ngf=4),
                   "G_B": build_generator("resnet_6blocks", ngf=4),
                   "D_A": build_discriminator("basic", 3, ndf=4),
                   "D_B": build_discriminator("basic", 3, ndf=4)}
        with tempfile.TemporaryDirectory() as tmp:
            for seed, (name, model) in enumerate(sources.items()):
                _randomise(model, seed)
                torch_pickle.save_state_dict(pw.keras_to_state_dict(model),
                                             os.path.join(tmp, f"latest_net_{name}.pth"),
                                             legacy=seed % 2 == 1)
            found = init_from.init_from_folder(tmp, init_from.trainer_networks(trainer))
            self.assertEqual(set(found), set(sources))
            converted = {name: (pw.load_pytorch_generator(path, "resnet_6blocks", ngf=4)
                                if name.startswith("G") else
                                pw.load_pytorch_discriminator(path, "basic", ndf=4))
                         for name, path in found.items()}
        a, b = _images((1, 32, 32, 3), 1), _images((1, 32, 32, 3), 2)
        # The first step's forward pass: every network gives the converted model's outputs.
        _same_outputs(self, trainer.generator_ab, converted["G_A"], a)
        _same_outputs(self, trainer.generator_ba, converted["G_B"], b)
        _same_outputs(self, trainer.discriminator_b, converted["D_A"], b)  # D_A judges B
        _same_outputs(self, trainer.discriminator_a, converted["D_B"], a)
        images = trainer.translate(tf.constant(a), tf.constant(b))
        np.testing.assert_allclose(images["A"][1], converted["G_A"](a), atol=0, rtol=0)
        terms, _, _ = trainer._generator_losses(tf.constant(a), tf.constant(b), training=False)
        expected_g_a = np.mean((np.asarray(converted["D_A"](converted["G_A"](a))) - 1) ** 2)
        self.assertAllClose(float(terms["G_A"][0]), expected_g_a, atol=1e-6)

    def test_keras_files_strictness_and_pix2pix(self):
        trainer = build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32,
                                 pool_size=0)
        with tempfile.TemporaryDirectory() as tmp:
            source = _randomise(build_generator("resnet_6blocks", ngf=4), 5)
            source.save(os.path.join(tmp, "AtoB.keras"))
            with self.assertRaisesRegex(FileNotFoundError, "lacks G_B"):
                init_from.init_from_folder(tmp, init_from.trainer_networks(trainer))
            found = init_from.init_from_folder(tmp, init_from.trainer_networks(trainer), strict=False)
            self.assertEqual(list(found), ["G_A"])
            _same_outputs(self, trainer.generator_ab, source, _images((1, 32, 32, 3)))

            generator = build_generator("unet_128", ngf=4, norm="batch", use_dropout=True)
            discriminator = build_discriminator("basic", 6, ndf=4, norm="batch")
            pix2pix = Pix2Pix(generator, discriminator)
            g = _randomise(build_generator("unet_128", ngf=4, norm="batch"), 6)
            d = _randomise(build_discriminator("basic", 6, ndf=4, norm="batch"), 7)
            torch_pickle.save_state_dict(pw.keras_to_state_dict(g),
                                         os.path.join(tmp, "latest_net_G.pth"))
            torch_pickle.save_state_dict(pw.keras_to_state_dict(d),
                                         os.path.join(tmp, "latest_net_D.pth"))
            init_from.init_from_folder(tmp, init_from.trainer_networks(pix2pix), model="pix2pix")
            _same_outputs(self, pix2pix.generator, g, _images((1, 128, 128, 3)))
            _same_outputs(self, pix2pix.discriminator, d, _images((1, 32, 32, 6)))
            small = build_generator("resnet_6blocks", ngf=8)
            small.save(os.path.join(tmp, "G_B.keras"))
            with self.assertRaisesRegex(pw.WeightMismatchError, "does not fit G_B"):
                init_from.init_from_folder(tmp, init_from.trainer_networks(trainer), strict=False)


    def test_one_converted_generator_seeds_g_a_or_g_and_the_rest_start_fresh(self):
        with tempfile.TemporaryDirectory() as tmp:
            source = _randomise(build_generator("resnet_6blocks", ngf=4), 8)
            source.save(os.path.join(tmp, "generator.keras"))  # a kgan.convert output folder
            trainer = build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32,
                                     pool_size=0)
            networks = init_from.trainer_networks(trainer)
            found = init_from.init_from_folder(tmp, networks)
            self.assertEqual(found, {"G_A": os.path.join(tmp, "generator.keras")})
            _same_outputs(self, trainer.generator_ab, source, _images((1, 32, 32, 3)))
            self.assertEqual(init_from.describe(tmp, found, networks),
                             f"--init_from={tmp}: G_A <- {tmp}/generator.keras; "
                             "G_B, D_A, D_B start fresh")
            pix2pix = Pix2Pix(build_generator("resnet_6blocks", ngf=4),
                              build_discriminator("basic", 6, ndf=4))
            networks = init_from.trainer_networks(pix2pix)
            with self.assertRaisesRegex(FileNotFoundError, "lacks D"):
                init_from.init_from_folder(tmp, networks, model="pix2pix")
            found = init_from.init_from_folder(tmp, networks, model="pix2pix", strict=False)
            _same_outputs(self, pix2pix.generator, source, _images((1, 32, 32, 3)))
            self.assertEqual(init_from.describe(tmp, found, networks),
                             f"--init_from={tmp}: G <- {tmp}/generator.keras; D starts fresh")
        with tempfile.TemporaryDirectory() as empty:
            with self.assertRaisesRegex(FileNotFoundError, "or one generator"):
                init_from.init_from_folder(empty, init_from.trainer_networks(trainer),
                                           strict=False)


class ReferenceNetworkTest(tf.test.TestCase):
    """The reference's networks rebuilt in torch, random weights, eval mode."""

    def setUp(self):
        super().setUp()
        if torch is None:
            self.skipTest("torch is not installed: the reference-network comparisons need it")

    def _compare(self, net, model, shapes, legacy=False, old_instance_norm=False,
                 data_parallel=False):
        state = ref.old_instance_norm_state_dict(net) if old_instance_norm else net.state_dict()
        if data_parallel:
            state = collections.OrderedDict(("module." + k, v) for k, v in state.items())
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "latest_net_G.pth")
            torch.save(state, path, _use_new_zipfile_serialization=not legacy)
            ours = torch_pickle.load_state_dict(path)
            theirs = torch.load(path, weights_only=True)
            self.assertEqual(list(ours), list(theirs))
            for key, value in theirs.items():
                np.testing.assert_array_equal(ours[key], value.numpy())
            pw.assign_state_dict(model, ours)
        for shape in shapes:
            x = _images(shape)
            with torch.no_grad():
                expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
            actual = np.asarray(model(x, training=False)).transpose(0, 3, 1, 2)
            self.assertEqual(actual.shape, expected.shape)
            np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0,
                                       err_msg=f"{model.name} at {shape}")

    def test_resnet_generator(self):
        # 44 = 4 x 11: an odd multiple of the ResNet's size multiple.
        shapes = [(1, 64, 64, 3), (1, 44, 52, 3)]
        self._compare(ref.randomise(ref.ResnetGenerator(ngf=4, n_blocks=9), 0),
                      build_generator("resnet_9blocks", ngf=4), shapes, legacy=True,
                      old_instance_norm=True)
        net = ref.randomise(ref.ResnetGenerator(ngf=4, norm="batch", use_dropout=True,
                                                n_blocks=6), 1, calibrate_shape=(2, 3, 64, 64))
        self._compare(net, build_generator("resnet_6blocks", ngf=4, norm="batch",
                                           use_dropout=True), shapes, data_parallel=True)

    def test_unet_generator(self):
        # The UNet needs multiples of 128: 128 x 384 is an odd multiple (3 x 128).
        net = ref.randomise(ref.UnetGenerator(num_downs=7, ngf=4, norm="batch"), 2,
                            calibrate_shape=(2, 3, 128, 128))
        self._compare(net, build_generator("unet_128", ngf=4, norm="batch", use_dropout=True),
                      [(1, 128, 128, 3), (1, 128, 384, 3)], legacy=True)
        net = ref.randomise(ref.UnetGenerator(num_downs=8, ngf=4, norm="instance"), 3)
        self._compare(net, build_generator("unet_256", ngf=4, norm="instance"),
                      [(1, 256, 256, 3)], old_instance_norm=True)

    def test_discriminators(self):
        shapes = [(1, 64, 64, 6), (1, 44, 52, 6)]
        self._compare(ref.randomise(ref.NLayerDiscriminator(input_nc=6, ndf=4), 4),
                      build_discriminator("basic", 6, ndf=4), shapes, old_instance_norm=True)
        net = ref.randomise(ref.NLayerDiscriminator(input_nc=6, ndf=4, n_layers=2,
                                                    norm="batch"), 5,
                            calibrate_shape=(2, 6, 64, 64))
        self._compare(net, build_discriminator("n_layers", 6, ndf=4, n_layers_d=2, norm="batch"),
                      shapes, legacy=True)
        self._compare(ref.randomise(ref.PixelDiscriminator(input_nc=6, ndf=4, norm="none"), 6),
                      build_discriminator("pixel", 6, ndf=4, norm="none"), shapes)
