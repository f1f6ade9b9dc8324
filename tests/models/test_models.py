"""Tests for kgan.models: reference parameter counts, shapes, ranges, gradients, saving,
initialisation and the errors a user can cause."""

import os

import keras
import numpy as np
import tensorflow as tf
from helpers import (
    assert_gradients_reach_every_weight,
    random_images,
    set_attention_gamma,
)

from kgan.models import (
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
    critic,
    patchgan_discriminator,
    pixel_discriminator,
    resnet_generator,
    size_multiple,
    unet_generator,
)
from kgan.models.common import INIT_TYPES, kernel_initializer


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class ParameterCountTest(tf.test.TestCase):
    """Full-size networks (built, never run) against the reference's trainable counts."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.models = {
            "resnet_9blocks": build_generator("resnet_9blocks"),
            "resnet_6blocks": build_generator("resnet_6blocks"),
            "unet_256": build_generator("unet_256", norm="batch", use_dropout=True),
            "unet_128": build_generator("unet_128", norm="batch", use_dropout=True),
            "basic": build_discriminator("basic"),
            "pix2pix_basic": build_discriminator("basic", in_channels=6, norm="batch"),
        }

    def test_counts_equal_the_reference(self):
        expected = {"resnet_9blocks": 11_378_179, "resnet_6blocks": 7_837_699,
                    "unet_256": 54_413_955, "unet_128": 41_828_995,
                    "basic": 2_764_737, "pix2pix_basic": 2_768_705}
        for name, count in expected.items():
            self.assertEqual(_count(self.models[name]), count, name)
        # The reference prints "Total number of parameters : 54.414 M" for unet_256.
        self.assertEqual(round(_count(self.models["unet_256"]) / 1e6, 3), 54.414)

    def test_batch_norm_statistics_are_not_trainable(self):
        unet = self.models["unet_256"]
        moving = [w for w in unet.non_trainable_weights if "moving" in w.path]
        self.assertLen(moving, len(unet.non_trainable_weights))
        self.assertNotEmpty(moving)

    def test_batch_norm_gamma_init(self):
        gammas = np.concatenate([
            layer.gamma.numpy() for layer in self.models["unet_256"].layers
            if isinstance(layer, keras.layers.BatchNormalization)])
        self.assertGreater(gammas.size, 3000)
        self.assertAllClose(gammas.mean(), 1.0, atol=2e-3)
        self.assertAllClose(gammas.std(), 0.02, rtol=0.1)

    def test_every_conv_starts_with_its_own_kernel(self):
        model = self.models["resnet_9blocks"]
        kernels = [layer.kernel.numpy() for layer in model.layers
                   if layer.name.startswith("block")
                   and isinstance(layer, keras.layers.Conv2D)]
        self.assertLen(kernels, 18)
        for i in range(1, len(kernels)):
            self.assertNotAllClose(kernels[0], kernels[i])

    def test_basic_ignores_n_layers_and_n_layers_uses_it(self):
        self.assertEqual(_count(build_discriminator("basic", n_layers_d=5)), 2_764_737)
        self.assertEqual(_count(build_discriminator("n_layers", n_layers_d=3)), 2_764_737)
        self.assertNotEqual(_count(build_discriminator("n_layers", n_layers_d=4)), 2_764_737)


class InitTest(tf.test.TestCase):

    def test_init_types_have_the_reference_std(self):
        shape = (3, 3, 128, 128)  # fan_in = fan_out = 1152
        fan = 3 * 3 * 128
        gain = 0.02
        expected = {"normal": gain,
                    "xavier": gain * np.sqrt(2.0 / (fan + fan)),
                    "kaiming": np.sqrt(2.0 / fan),
                    "orthogonal": gain / np.sqrt(fan)}
        self.assertEqual(set(expected), set(INIT_TYPES))
        for init_type, std in expected.items():
            kernel = kernel_initializer(init_type, gain)(shape).numpy()
            self.assertAllClose(kernel.mean(), 0.0, atol=0.02 * std, msg=init_type)
            self.assertAllClose(kernel.std(), std, rtol=0.03, msg=init_type)
        flat = kernel_initializer("orthogonal", 0.5)(shape).numpy().reshape(fan, 128)
        self.assertAllClose(flat.T @ flat, 0.25 * np.eye(128), atol=1e-5)

    def test_builders_use_init_type(self):
        for init_type, std in (("normal", 0.02), ("kaiming", np.sqrt(2.0 / 1152))):
            model = build_generator("resnet_6blocks", ngf=32, init_type=init_type)
            kernel = model.get_layer("block1_conv1").kernel.numpy()  # 3x3x128x128
            self.assertAllClose(kernel.std(), std, rtol=0.03, msg=init_type)
            self.assertAllEqual(model.get_layer("block1_conv1").bias, np.zeros(128))


class GeneratorTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # (model, input height, input width, output range)
        cls.cases = {
            "resnet_9blocks": (build_generator("resnet_9blocks", ngf=8), 64, 96, (-1, 1)),
            "resnet_6blocks": (build_generator("resnet_6blocks", ngf=8), 64, 96, (-1, 1)),
            "resnet_zero_pixel_shuffle": (
                resnet_generator(n_blocks=2, ngf=8, norm="batch", use_dropout=True,
                                 padding="zero", upsample="pixel_shuffle"), 32, 48, (-1, 1)),
            "unet_128": (build_generator("unet_128", ngf=4, norm="batch", use_dropout=True),
                         128, 256, (-1, 1)),
            "unet_256": (build_generator("unet_256", ngf=4, norm="batch", use_dropout=True),
                         256, 512, (-1, 1)),
            "unet_restore": (
                unet_generator(num_downs=5, ngf=8, self_attention=True,
                               upsample="pixel_shuffle", y_range=(-3.0, 3.0), last_cross=True,
                               name="unet_restore"), 64, 96, (-3, 3)),
            "unet_resize_instance": (
                unet_generator(num_downs=5, ngf=8, norm="instance", upsample="resize"),
                64, 32, (-1, 1)),
        }

    def test_shapes_and_ranges_on_non_square_inputs(self):
        for name, (model, h, w, (low, high)) in self.cases.items():
            self.assertEqual(tuple(model.input.shape), (None, None, None, 3), name)
            y = model(random_images(2, h, w), training=False)
            self.assertEqual(tuple(y.shape), (2, h, w, 3), name)
            self.assertEqual(y.dtype, tf.float32, name)
            self.assertAllInRange(y, low, high)
            self.assertGreater(float(tf.math.reduce_std(y)), 0.0, name)

    def test_strided_convs_pad_like_pytorch(self):
        # PyTorch pads 1 on every side (ConvTranspose2d: padding=1, output_padding=1): compare
        # each strided layer with TF's explicitly padded ops on that layer's own input.
        pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
        checks = (("resnet_6blocks", "c7s1_relu", "down1", "down1", False),
                  ("resnet_6blocks", "block6_add", "up1", "up1_crop", True),
                  ("unet_128", "down2_lrelu", "down2", "down2", False),
                  ("unet_128", "up3_relu", "up3", "up3", True))
        for name, source, conv_name, target, transposed in checks:
            model, h, w, _ = self.cases[name]
            probe = keras.Model(model.input, [model.get_layer(source).output,
                                              model.get_layer(target).output])
            x, y = probe(random_images(1, h, w, seed=7), training=False)
            conv = model.get_layer(conv_name)
            if transposed:
                shape = (1, 2 * x.shape[1], 2 * x.shape[2], conv.filters)
                expected = tf.nn.conv2d_transpose(x, conv.kernel, shape, 2, pad)
            else:
                expected = tf.nn.conv2d(x, conv.kernel, 2, pad)
            if conv.use_bias:
                expected += conv.bias
            self.assertAllClose(y, expected, atol=1e-5, msg=f"{name} {conv_name}")

    def test_channels(self):
        model = build_generator("resnet_6blocks", ngf=4, input_channels=1, output_channels=2)
        self.assertEqual(tuple(model(random_images(1, 16, 20, 1)).shape), (1, 16, 20, 2))
        model = build_generator("unet_128", ngf=4, input_channels=4, output_channels=1)
        self.assertEqual(tuple(model(random_images(1, 128, 128, 4)).shape), (1, 128, 128, 1))

    def test_y_range_head_spans_its_range(self):
        model = unet_generator(num_downs=5, ngf=4, y_range=(0.0, 2.0), init_type="kaiming",
                               init_gain=1.0)
        y = model(random_images(1, 32, 32) * 50, training=False)
        self.assertAllInRange(y, 0.0, 2.0)
        self.assertLess(float(tf.reduce_min(y)), 0.5)
        self.assertGreater(float(tf.reduce_max(y)), 1.5)

    def test_gradients_reach_every_weight(self):
        for name, (model, h, w, _) in self.cases.items():
            x = random_images(2, h, w, seed=1)
            target = tf.constant(random_images(2, h, w, seed=2))
            # A conv bias right before an instance norm is cancelled by the mean subtraction
            # (the reference has the same dead bias): its gradient is zero up to round-off.
            assert_gradients_reach_every_weight(
                self, model, lambda m: tf.reduce_sum(m(x, training=True) * target), name)

    def test_keras_round_trip_with_safe_mode(self):
        for name, (model, h, w, _) in self.cases.items():
            set_attention_gamma(model, 0.25)
            x = random_images(1, h, w, seed=3)
            model(x, training=True)  # moves batch-norm statistics and spectral-norm kernels
            path = os.path.join(self.get_temp_dir(), name + ".keras")
            model.save(path)
            loaded = keras.saving.load_model(path, safe_mode=True)
            self.assertAllEqual(loaded(x, training=False), model(x, training=False), name)
            self.assertEqual(size_multiple(loaded), size_multiple(model))
            set_attention_gamma(model, 0.0)

    def test_size_multiples(self):
        expected = {"resnet_9blocks": 4, "resnet_6blocks": 4, "resnet_zero_pixel_shuffle": 4,
                    "unet_128": 128, "unet_256": 256, "unet_restore": 32,
                    "unet_resize_instance": 32}
        for name, multiple in expected.items():
            self.assertEqual(size_multiple(self.cases[name][0]), multiple, name)

    def test_bad_sizes_name_the_multiple(self):
        resnet = self.cases["resnet_9blocks"][0]
        with self.assertRaisesRegex(ValueError, "multiples of 4, but the height is 30"):
            resnet(random_images(1, 30, 32))
        with self.assertRaisesRegex(ValueError, "at least 8 pixels, but the height is 4"):
            resnet(random_images(1, 4, 8))
        zero_padded = self.cases["resnet_zero_pixel_shuffle"][0]
        self.assertEqual(tuple(zero_padded(random_images(1, 4, 8)).shape), (1, 4, 8, 3))
        unet = self.cases["unet_256"][0]
        with self.assertRaisesRegex(ValueError, "unet_256 needs image sides that are multiples "
                                                "of 256, but the height is 100"):
            unet(random_images(1, 100, 100))
        with self.assertRaisesRegex(ValueError, "multiples of 128, but the width is 96"):
            self.cases["unet_128"][0](random_images(1, 128, 96))


class DiscriminatorTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # (model, input channels, {(height, width): expected map size})
        cls.cases = {
            # Reference sizes: H -> H // 2 per stride-2 conv, then -1 and -1 (70 -> 35 -> 17
            # -> 8 -> 6); odd sizes on the way must not round up.
            "basic": (build_discriminator("basic", ndf=8), 3,
                      {(64, 96): (6, 10), (256, 256): (30, 30), (70, 50): (6, 4)}),
            "pix2pix_basic": (build_discriminator("basic", in_channels=6, ndf=8, norm="batch"),
                              6, {(64, 96): (6, 10)}),
            "n_layers_2": (build_discriminator("n_layers", ndf=8, n_layers_d=2), 3,
                           {(64, 96): (14, 22)}),
            "pixel": (build_discriminator("pixel", ndf=8), 3, {(64, 96): (64, 96)}),
            "basic_spectral": (patchgan_discriminator(ndf=8, norm="none", spectral_norm=True),
                               3, {(64, 96): (6, 10)}),
            "pixel_spectral": (pixel_discriminator(ndf=8, norm="batch", spectral_norm=True),
                               3, {(32, 48): (32, 48)}),
            "critic": (critic(nf=8), 3,
                       {(64, 96): (1, 3), (128, 128): (5, 5), (100, 72): (3, 1)}),
        }

    def test_patch_map_shapes(self):
        for name, (model, channels, sizes) in self.cases.items():
            self.assertEqual(tuple(model.input.shape), (None, None, None, channels), name)
            for (h, w), (ph, pw) in sizes.items():
                y = model(random_images(2, h, w, channels), training=False)
                self.assertEqual(tuple(y.shape), (2, ph, pw, 1), f"{name} at {h}x{w}")
                self.assertEqual(y.dtype, tf.float32)
                self.assertGreater(float(tf.math.reduce_std(y)), 0.0, name)

    def test_spectral_norm_wraps_every_conv(self):
        for name in ("basic_spectral", "pixel_spectral", "critic"):
            model = self.cases[name][0]
            wrapped = [l for l in model.layers
                       if isinstance(l, keras.layers.SpectralNormalization)]
            plain = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
            self.assertNotEmpty(wrapped, name)
            self.assertEmpty(plain, name)

    def test_gradients_reach_every_weight(self):
        for name, (model, channels, sizes) in self.cases.items():
            h, w = min(sizes)
            x = random_images(2, h, w, channels, seed=4)

            def loss(m):
                y = m(x, training=True)
                return tf.reduce_sum(y * tf.constant(random_images(*y.shape, seed=5)))

            assert_gradients_reach_every_weight(self, model, loss, name)

    def test_keras_round_trip_with_safe_mode(self):
        for name, (model, channels, sizes) in self.cases.items():
            set_attention_gamma(model, 0.25)
            x = random_images(1, *min(sizes), channels, seed=6)
            model(x, training=True)  # moves batch-norm statistics and spectral-norm kernels
            path = os.path.join(self.get_temp_dir(), name + ".keras")
            model.save(path)
            loaded = keras.saving.load_model(path, safe_mode=True)
            self.assertAllEqual(loaded(x, training=False), model(x, training=False), name)
            if name == "basic_spectral":
                # The power-iteration vector is saved too: a training call matches as well.
                self.assertAllEqual(loaded(x, training=True), model(x, training=True))
            set_attention_gamma(model, 0.0)

    def test_too_small_inputs_name_the_minimum(self):
        with self.assertRaisesRegex(ValueError, "at least 24 pixels, but the height is 23"):
            self.cases["basic"][0](random_images(1, 23, 64))
        self.assertEqual(tuple(self.cases["basic"][0](random_images(1, 24, 24)).shape),
                         (1, 1, 1, 1))
        with self.assertRaisesRegex(ValueError, "at least 12 pixels, but the width is 11"):
            self.cases["n_layers_2"][0](random_images(1, 12, 11))
        with self.assertRaisesRegex(ValueError, "critic needs image sides of at least 64"):
            self.cases["critic"][0](random_images(1, 64, 63))
        self.assertEqual(tuple(self.cases["critic"][0](random_images(1, 64, 64)).shape),
                         (1, 1, 1, 1))


class RegistryErrorTest(tf.test.TestCase):

    def test_unknown_names_list_the_choices(self):
        with self.assertRaisesRegex(ValueError, "resnet_12blocks.*" + ", ".join(GENERATORS)):
            build_generator("resnet_12blocks")
        with self.assertRaisesRegex(ValueError, "'patch'.*" + ", ".join(DISCRIMINATORS)):
            build_discriminator("patch")
        with self.assertRaisesRegex(ValueError, "'group'.*instance, batch, none"):
            build_generator("resnet_6blocks", ngf=4, norm="group")
        with self.assertRaisesRegex(ValueError, "'group'.*instance, batch, none"):
            build_discriminator("pixel", norm="group")
        with self.assertRaisesRegex(ValueError, "'uniform'.*normal, xavier, kaiming, orthogonal"):
            build_generator("unet_128", ngf=4, init_type="uniform")
        with self.assertRaisesRegex(ValueError, "'replicate'.*'reflect' or 'zero'"):
            resnet_generator(n_blocks=1, ngf=4, padding="replicate")
        with self.assertRaisesRegex(ValueError, "'bilinear'.*transpose, pixel_shuffle, resize"):
            unet_generator(num_downs=5, ngf=4, upsample="bilinear")
        with self.assertRaisesRegex(ValueError, "num_downs >= 5"):
            unet_generator(num_downs=4, ngf=4)


if __name__ == "__main__":
    tf.test.main()
