"""Tests for kgan.training.losses: every loss against a numpy hand computation on tiny tensors."""

import os
from unittest import mock

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format

from kgan.training import losses


def _random(shape, seed=0, scale=1.0):
    return (np.random.RandomState(seed).randn(*shape) * scale).astype("float32")


def _images(shape, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype("float32")


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _mean(x):
    return np.asarray(x, "float64").reshape(len(x), -1).mean(axis=1)


def _gram(features):
    n, h, w, c = features.shape
    flat = features.reshape(n, h * w, c).astype("float64")
    return np.einsum("npc,npd->ncd", flat, flat) / (c * h * w)


class GanLossTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.logits = _random((2, 3, 3, 1), scale=2.0)

    def test_gan_loss_against_numpy(self):
        x = self.logits
        expected = {
            ("lsgan", True): _mean((x - 1) ** 2),
            ("lsgan", False): _mean(x ** 2),
            # BCE with logits: -log sigmoid(x) = softplus(-x); -log(1 - sigmoid(x)) = softplus(x).
            ("vanilla", True): _mean(_softplus(-x)),
            ("vanilla", False): _mean(_softplus(x)),
            ("hinge", True): _mean(np.maximum(0, 1 - x)),
            ("hinge", False): _mean(np.maximum(0, 1 + x)),
            ("wgangp", True): _mean(-x),
            ("wgangp", False): _mean(x),
        }
        for (mode, real), value in expected.items():
            loss = losses.gan_loss(x, real, mode)
            self.assertEqual(loss.shape, (2,))
            self.assertAllClose(loss, value, rtol=1e-5, atol=1e-6, msg=f"{mode} {real}")

    def test_generator_loss_against_numpy(self):
        x = self.logits
        expected = {"lsgan": _mean((x - 1) ** 2), "vanilla": _mean(_softplus(-x)),
                    "hinge": _mean(-x), "wgangp": _mean(-x)}
        for mode, value in expected.items():
            self.assertAllClose(losses.generator_loss(x, mode), value, rtol=1e-5, atol=1e-6,
                                msg=mode)

    def test_discriminator_loss_is_half_the_sum(self):
        real, fake = self.logits, _random((2, 3, 3, 1), seed=1)
        for mode in losses.GAN_MODES:
            expected = 0.5 * (losses.gan_loss(real, True, mode) +
                              losses.gan_loss(fake, False, mode))
            self.assertAllClose(losses.discriminator_loss(real, fake, mode), expected, msg=mode)
        lsgan = 0.5 * (_mean((real - 1) ** 2) + _mean(fake ** 2))
        self.assertAllClose(losses.discriminator_loss(real, fake, "lsgan"), lsgan, rtol=1e-5)

    def test_float16_logits_give_float32_losses(self):
        loss = losses.gan_loss(tf.cast(self.logits, tf.float16), True, "vanilla")
        self.assertEqual(loss.dtype, tf.float32)

    def test_unknown_gan_mode(self):
        for fn in (lambda: losses.gan_loss(self.logits, True, "wgan"),
                   lambda: losses.generator_loss(self.logits, "lsgan2")):
            with self.assertRaisesRegex(ValueError, "Unknown gan_mode.*lsgan, vanilla"):
                fn()


class GradientPenaltyTest(tf.test.TestCase):

    def test_linear_critic_penalty_is_exact(self):
        # D(x) = sum(w * x) has gradient w everywhere: penalty (||w|| - 1)^2 for any alpha.
        w = tf.constant(_random((4, 4, 3), seed=2, scale=0.3))
        critic = lambda x, training: tf.reduce_sum(w * x, axis=[1, 2, 3])
        real, fake = _images((3, 4, 4, 3), seed=3), _images((3, 4, 4, 3), seed=4)
        expected = (np.linalg.norm(w.numpy()) - 1.0) ** 2
        penalty = losses.gradient_penalty(critic, real, fake)
        self.assertEqual(penalty.shape, (3,))
        self.assertAllClose(penalty, [expected] * 3, rtol=1e-5)
        # A critic of unit gradient norm has no penalty.
        unit = lambda x, training: tf.reduce_sum(w * x, axis=[1, 2, 3]) / tf.norm(w)
        self.assertAllClose(losses.gradient_penalty(unit, real, fake), [0.0] * 3, atol=1e-6)

    def test_penalty_is_taken_at_seeded_interpolates(self):
        # D(x) = 0.5 * sum(x^2) has gradient x: the penalty shows where it is evaluated.
        critic = lambda x, training: 0.5 * tf.reduce_sum(x * x, axis=[1, 2, 3])
        real, fake = _images((2, 3, 3, 1), seed=5), _images((2, 3, 3, 1), seed=6)
        seed = tf.constant([4, 2])
        alpha = tf.random.stateless_uniform([2, 1, 1, 1], seed=seed).numpy()
        x_hat = real + alpha * (fake - real)
        expected = (np.linalg.norm(x_hat.reshape(2, -1), axis=1) - 1.0) ** 2
        self.assertAllClose(losses.gradient_penalty(critic, real, fake, seed=seed), expected,
                            rtol=1e-5)


class PixelLossTest(tf.test.TestCase):

    def test_l1_loss_per_example(self):
        a, b = _images((3, 4, 5, 3), seed=1), _images((3, 4, 5, 3), seed=2)
        self.assertAllClose(losses.l1_loss(a, b), _mean(np.abs(a - b)), rtol=1e-6)

    def test_reduce_global_divides_by_global_batch(self):
        per_example = tf.constant([1.0, 2.0, 4.0])
        # A replica holding 3 of a global batch of 6 contributes 7 / 6.
        self.assertAllClose(losses.reduce_global(per_example, 6), 7.0 / 6.0)
        self.assertAllClose(losses.reduce_global(per_example, tf.constant(3)), 7.0 / 3.0)

    def test_gram_matrix_against_numpy(self):
        features = _random((2, 3, 4, 5), seed=7)
        gram = losses.gram_matrix(features)
        self.assertEqual(gram.shape, (2, 5, 5))
        self.assertAllClose(gram, _gram(features), rtol=1e-5, atol=1e-6)
        self.assertAllClose(gram, tf.transpose(gram, [0, 2, 1]))

    def test_pixel_content_loss_is_l1_plus_half_dssim(self):
        a, b = _images((2, 32, 32, 3), seed=8), _images((2, 32, 32, 3), seed=9)
        ssim = tf.image.ssim((a + 1) / 2, (b + 1) / 2, max_val=1.0).numpy()
        l1 = _mean(np.abs(a - b))
        self.assertAllClose(losses.PixelContentLoss()(a, b), l1 + 0.5 * (1 - ssim), rtol=1e-5)
        self.assertAllClose(losses.PixelContentLoss(ssim_weight=0)(a, b), l1, rtol=1e-5)
        terms = losses.PixelContentLoss().terms(a, b)
        self.assertEqual(set(terms), {"pixel", "ssim"})
        # Identical images: no loss at all.
        self.assertAllClose(losses.PixelContentLoss()(a, a), [0.0, 0.0], atol=1e-6)


class VGGWeightsTest(tf.test.TestCase):

    def test_vgg_preprocess_is_caffe_bgr(self):
        # Pixels: black, white, pure red, mid-grey (0 in [-1, 1]).
        rgb = np.array([[[[-1, -1, -1], [1, 1, 1], [1, -1, -1], [0, 0, 0]]]], "float32")
        mean_bgr = np.array([103.939, 116.779, 123.68])
        expected = np.array([[[-mean_bgr, 255 - mean_bgr, [0, 0, 255] - mean_bgr,
                               127.5 - mean_bgr]]])
        out = losses.vgg_preprocess(rgb)
        self.assertAllClose(out, expected, atol=1e-4)
        keras_way = keras.applications.vgg16.preprocess_input((rgb + 1.0) * 127.5)
        self.assertAllClose(out, keras_way, atol=1e-4)

    def test_missing_imagenet_weights_name_the_file(self):
        home = self.get_temp_dir()
        with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
            self.assertFalse(losses.vgg_weights_available("imagenet"))
            with self.assertRaises(losses.VGGWeightsMissingError) as error:
                losses.resolve_vgg_weights("imagenet")
        message = str(error.exception)
        self.assertIn("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", message)
        self.assertIn(os.path.join(home, "models"), message)
        self.assertIn("--content_loss=l1_ssim", message)
        self.assertIsInstance(error.exception, FileNotFoundError)
        # Without KERAS_HOME the Keras cache is ~/.keras/models.
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(losses.keras_cache_path("x.h5"),
                             os.path.join(os.path.expanduser("~"), ".keras", "models", "x.h5"))

    def test_missing_weights_path(self):
        path = os.path.join(self.get_temp_dir(), "nowhere", "vgg.h5")
        with self.assertRaisesRegex(losses.VGGWeightsMissingError, "not found at .*vgg.h5"):
            losses.resolve_vgg_weights(path)
        self.assertFalse(losses.vgg_weights_available(path))
        self.assertFalse(losses.vgg_weights_available("none"))

    def test_random_weights_warn_loudly(self):
        with self.assertLogs("absl", level="WARNING") as logs:
            self.assertIsNone(losses.resolve_vgg_weights("none"))
        self.assertIn("RANDOM weights", "\n".join(logs.output))

    def test_auto_content_loss_without_weights_is_l1_ssim(self):
        with mock.patch.dict(os.environ, {"KERAS_HOME": self.get_temp_dir()}):
            with self.assertLogs("absl", level="WARNING") as logs:
                loss, name = losses.build_content_loss("auto")
        self.assertEqual(name, "l1_ssim")
        self.assertIsInstance(loss, losses.PixelContentLoss)
        self.assertEqual(loss.ssim_weight, 0.5)
        self.assertIn("using the pixel content loss l1_ssim", "\n".join(logs.output))
        # Random VGG features never stand in for missing weights.
        _, name = losses.build_content_loss("auto", vgg_weights="none")
        self.assertEqual(name, "l1_ssim")
        loss, name = losses.build_content_loss("l1")
        self.assertEqual((name, loss.ssim_weight), ("l1", 0.0))

    def test_perceptual_content_loss_without_weights_raises(self):
        with mock.patch.dict(os.environ, {"KERAS_HOME": self.get_temp_dir()}):
            with self.assertRaises(losses.VGGWeightsMissingError):
                losses.build_content_loss("perceptual")

    def test_unknown_content_loss(self):
        with self.assertRaisesRegex(ValueError, "Unknown content_loss 'vgg'.*l1_ssim"):
            losses.build_content_loss("vgg")


class PerceptualLossTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tf.random.set_seed(0)
        keras.utils.set_random_seed(0)
        cls.fastai = losses.PerceptualLoss(vgg_weights="none")
        cls.custom = losses.PerceptualLoss(layers=("block1_conv2", "block2_conv2"),
                                           layer_weights=(1.0, 2.0), gram_weight=10.0,
                                           pixel_weight=0.5, vgg_weights="none")
        cls.prediction = _images((2, 32, 32, 3), seed=10)
        cls.target = _images((2, 32, 32, 3), seed=11)

    def _hand_terms(self, loss, pixel_weight, gram_weight):
        pred_feats = loss.features(losses.vgg_preprocess(self.prediction))
        target_feats = loss.features(losses.vgg_preprocess(self.target))
        terms = {"pixel": pixel_weight * _mean(np.abs(self.prediction - self.target))}
        for name, weight, p, t in zip(loss.layers, loss.layer_weights, pred_feats,
                                      target_feats):
            p, t = p.numpy(), t.numpy()
            terms["feat_" + name] = weight * _mean(np.abs(p - t))
            terms["gram_" + name] = weight ** 2 * gram_weight * _mean(
                np.abs(_gram(p) - _gram(t)))
        return terms

    def test_fastai_preset_against_hand_computation(self):
        loss = self.fastai
        self.assertEqual(loss.layers, ("block3_conv3", "block4_conv3", "block5_conv3"))
        self.assertEqual(loss.layer_weights, (5.0, 15.0, 2.0))
        self.assertEqual((loss.gram_weight, loss.pixel_weight), (5e3, 1.0))
        expected = self._hand_terms(loss, 1.0, 5e3)
        terms = loss.terms(self.prediction, self.target)
        self.assertEqual(set(terms), set(expected))
        for name in expected:
            self.assertAllClose(terms[name], expected[name], rtol=1e-4, msg=name)
        total = sum(expected.values())
        self.assertAllClose(loss(self.prediction, self.target), total, rtol=1e-4)
        # Every term carries weight: none is zero with random VGG features.
        for name in expected:
            self.assertTrue(np.all(expected[name] > 0), name)

    def test_custom_layers_and_weights(self):
        loss = self.custom
        shapes = [tuple(out.shape) for out in loss.features(tf.zeros([1, 32, 32, 3]))]
        self.assertEqual(shapes, [(1, 32, 32, 64), (1, 16, 16, 128)])
        expected = self._hand_terms(loss, 0.5, 10.0)
        terms = loss.terms(self.prediction, self.target)
        self.assertEqual(set(terms), {"pixel", "feat_block1_conv2", "feat_block2_conv2",
                                      "gram_block1_conv2", "gram_block2_conv2"})
        for name in expected:
            self.assertAllClose(terms[name], expected[name], rtol=1e-4, msg=name)

    def test_same_image_has_zero_loss(self):
        self.assertAllClose(self.custom(self.target, self.target), [0.0, 0.0], atol=1e-6)

    def test_works_in_tf_function(self):
        compiled = tf.function(self.custom.__call__)
        self.assertAllClose(compiled(self.prediction, self.target),
                            self.custom(self.prediction, self.target), rtol=1e-5)

    def test_no_gradient_reaches_vgg(self):
        for loss in (self.fastai, self.custom):
            self.assertEmpty(loss.features.trainable_weights)
            prediction = tf.Variable(self.prediction)
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(loss(prediction, self.target))
            # The tape never watched VGG's variables: only the prediction.
            self.assertEqual([v.ref() for v in tape.watched_variables()], [prediction.ref()])
            grads = tape.gradient(value, [prediction] + list(loss.features.variables))
            self.assertGreater(float(tf.reduce_sum(tf.abs(grads[0]))), 0.0)
            self.assertTrue(all(g is None for g in grads[1:]))

    def test_the_backward_pass_runs_on_the_prediction_only(self):
        # VGG's input gradients are computed for the prediction's images, not for the target's
        # (which a VGG call on the concatenated pair would also backpropagate through).
        loss = self.custom

        @tf.function(input_signature=[tf.TensorSpec((2, 32, 32, 3))] * 2)
        def gradient(prediction, target):
            with tf.GradientTape() as tape:
                tape.watch(prediction)
                value = tf.reduce_sum(loss(prediction, target))
            return tape.gradient(value, prediction)

        graph = gradient.get_concrete_function().graph
        backprop = [op for op in graph.get_operations() if op.type == "Conv2DBackpropInput"]
        self.assertLen(backprop, 4)  # block1_conv1 to block2_conv2
        self.assertEqual({op.outputs[0].shape[0] for op in backprop}, {2})

    def test_layer_selection_errors(self):
        with self.assertRaisesRegex(ValueError, "2 VGG layers but 3 layer weights"):
            losses.PerceptualLoss(layers=("block1_conv1", "block2_conv1"),
                                  layer_weights=(1.0, 2.0, 3.0), vgg_weights="none")
        with self.assertRaisesRegex(ValueError, "Unknown perceptual preset"):
            losses.PerceptualLoss(preset="johnson", vgg_weights="none")
        with self.assertRaisesRegex(ValueError,
                                    r"Unknown VGG16 layers \['relu3_3'\].*block3_conv3"):
            losses.build_vgg_features(["relu3_3"], vgg_weights="none")

    def test_weights_from_a_path(self):
        # A weights file given by path is loaded (random values saved by this test).
        path = os.path.join(self.get_temp_dir(), "vgg16_notop.weights.h5")
        source = keras.applications.VGG16(include_top=False, weights=None,
                                          input_shape=(None, None, 3))
        source.save_weights(path)
        features = losses.build_vgg_features(["block1_conv1"], vgg_weights=path)
        self.assertAllClose(features.get_layer("block1_conv1").kernel.numpy(),
                            source.get_layer("block1_conv1").kernel.numpy())

    def test_auto_content_loss_uses_cached_imagenet_file(self):
        # A weights file in the Keras cache format, under the name Keras downloads it as
        # (random values here), turns "auto" into the perceptual loss and is loaded.
        home = self.get_temp_dir()
        os.makedirs(os.path.join(home, "models"), exist_ok=True)
        source = keras.applications.VGG16(include_top=False, weights=None,
                                          input_shape=(None, None, 3))
        with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
            path = losses.keras_cache_path(losses.VGG_WEIGHTS_FILE)
            with h5py.File(path, "w") as f:
                legacy_h5_format.save_weights_to_hdf5_group(f, source)
            self.assertTrue(losses.vgg_weights_available("imagenet"))
            loss, name = losses.build_content_loss("auto", preset="deoldify")
        self.assertEqual(name, "perceptual (deoldify, VGG16 imagenet)")
        self.assertEqual(loss.layer_weights, (20.0, 70.0, 10.0))
        self.assertEqual(loss.gram_weight, 0.0)
        self.assertEqual(set(loss.terms(self.prediction, self.target)),
                         {"pixel", "feat_block3_conv3", "feat_block4_conv3",
                          "feat_block5_conv3"})
        self.assertAllClose(loss.features.get_layer("block5_conv3").kernel.numpy(),
                            source.get_layer("block5_conv3").kernel.numpy())


if __name__ == "__main__":
    tf.test.main()
