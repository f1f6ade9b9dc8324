"""The restoration UNet on a pretrained keras.applications encoder (--encoder): shapes, size
errors, identity at init, preprocessing, weights from the Keras cache / a path / missing,
freezing, safe_mode round trip, export, and a short training run through the CLI."""

import os
import subprocess
import sys
import tempfile
from unittest import mock

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT
from keras.src.legacy.saving import legacy_h5_format

from kgan.exporting import export
from kgan.models import (
    EncoderWeightsMissingError,
    ImageNetPreprocess,
    build_encoder,
    encoder_unet_generator,
    size_multiple,
)
from kgan.models.encoders import imagenet_weights_file
from kgan.training.losses import PixelContentLoss
from kgan.training.trainers.base import adam
from kgan.training.trainers.pretrain import GeneratorPretrainer

ALPHA = 0.35  # the smallest MobileNetV2: fast tests


def _images(n, height, width, seed=0):
    return tf.random.stateless_uniform((n, height, width, 3), (seed, 1), -1.0, 1.0)


def _mobilenet_unet(**options):
    return encoder_unet_generator("mobilenet_v2", "none", alpha=ALPHA, ngf=4,
                                  upsample="pixel_shuffle", self_attention=True, last_cross=True,
                                  init_type="kaiming", **options)


def _write_legacy_h5(model, path):
    """Writes weights in the Keras 2 .h5 layout the keras-applications ImageNet files use."""
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def _assert_same_weights(test, a, b):
    test.assertEqual([w.path for w in a.weights], [w.path for w in b.weights])
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_array_equal(u.numpy(), v.numpy(), err_msg=u.path)


class EncoderUnetTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        cls.resnet = encoder_unet_generator("resnet50", "none", ngf=4, norm="batch",
                                            upsample="pixel_shuffle", self_attention=True,
                                            last_cross=True, residual=True)
        cls.mobilenet = _mobilenet_unet(y_range=(-1.1, 1.1))

    def test_output_shape_equals_input_shape(self):
        x = _images(2, 64, 96)
        for model in (self.resnet, self.mobilenet):
            self.assertEqual(tuple(model(x).shape), (2, 64, 96, 3), model.name)
            self.assertEqual(size_multiple(model), 32)
        self.assertEqual(self.resnet.get_layer("encoder").count_params(), 23_587_712)
        self.assertEqual(self.mobilenet.get_layer("encoder").count_params(), 410_208)

    def test_sizes_not_multiple_of_32_name_the_multiple(self):
        with self.assertRaisesRegex(ValueError, "unet_resnet50 needs image sides that are "
                                    "multiples of 32, but the width is 80"):
            self.resnet(_images(1, 64, 80))
        with self.assertRaisesRegex(ValueError, "multiples of 32, but the height is 48"):
            self.mobilenet(_images(1, 48, 64))

    def test_residual_starts_as_the_identity(self):
        x = _images(2, 64, 64, seed=3)
        self.assertAllClose(self.resnet(x, training=False), x, atol=1e-6, rtol=0)
        mobilenet = _mobilenet_unet(residual=True)
        self.assertAllClose(mobilenet(x, training=False), x, atol=1e-6, rtol=0)

    def test_preprocessing_matches_hand_computation(self):
        rgb = np.array([[[[-1.0, 0.0, 1.0], [0.5, -0.5, 0.25]]]], np.float32)  # (1, 1, 2, 3)
        pixels = (rgb + 1.0) * 127.5
        caffe = pixels[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
        self.assertAllClose(ImageNetPreprocess("caffe")(rgb), caffe, atol=1e-4)
        self.assertAllClose(ImageNetPreprocess("caffe")(rgb)[0, 0, 0], [151.061, 10.721, -123.68],
                            atol=1e-4)
        self.assertAllClose(ImageNetPreprocess("tf")(rgb), rgb)
        torch = ((rgb + 1) / 2 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        self.assertAllClose(ImageNetPreprocess("torch")(rgb), torch, atol=1e-5)
        # Each model converts to its own backbone's convention inside the graph.
        self.assertEqual(self.resnet.get_layer("preprocess").mode, "caffe")
        self.assertEqual(self.mobilenet.get_layer("preprocess").mode, "tf")
        # ...and keras.applications' own preprocessing agrees on pixel values.
        self.assertAllClose(
            ImageNetPreprocess("caffe")(rgb),
            keras.applications.resnet50.preprocess_input(pixels.copy()), atol=1e-4)
        self.assertAllClose(
            ImageNetPreprocess("tf")(rgb),
            keras.applications.mobilenet_v2.preprocess_input(pixels.copy()), atol=1e-5)

    def test_keras_round_trip_with_safe_mode(self):
        path = os.path.join(self.get_temp_dir(), "unet_mobilenet.keras")
        self.mobilenet.save(path)
        loaded = keras.models.load_model(path, safe_mode=True, compile=False)
        x = _images(1, 64, 64, seed=5)
        self.assertAllClose(loaded(x), self.mobilenet(x), atol=1e-6, rtol=0)
        self.assertIsInstance(loaded.get_layer("preprocess"), ImageNetPreprocess)
        self.assertEqual(size_multiple(loaded), 32)

    @pytest.mark.slow
    def test_export_saved_model_and_tflite_match_keras(self):
        keras.utils.set_random_seed(1)
        model = _mobilenet_unet(y_range=(-1.1, 1.1))
        rng = np.random.RandomState(0)
        verify = [rng.randint(0, 256, (40, 70, 3)).astype(np.uint8)]
        manifest = export.export_generator(model, os.path.join(self.get_temp_dir(), "export"),
                                           tflite=("float32",), tflite_size=64,
                                           verify_images=verify)
        self.assertTrue(manifest["verified"])
        self.assertEqual(manifest["input_contract"]["size_multiple"], 32)
        self.assertLessEqual(manifest["saved_model"]["verification"]["max_abs_error"], 1e-4)
        self.assertLessEqual(manifest["tflite"]["float32"]["verification"]["max_abs_error"],
                             1e-3)


class EncoderWeightsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.home = tempfile.mkdtemp()
        patcher = mock.patch.dict(os.environ, {"KERAS_HOME": self.home})
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_missing_imagenet_weights_name_the_file_and_the_way_out(self):
        for encoder, alpha, filename in (
                ("resnet50", 1.0, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
                ("mobilenet_v2", 1.0,
                 "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
                ("mobilenet_v2", ALPHA,
                 "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")):
            self.assertEqual(imagenet_weights_file(encoder, alpha), filename)
            with self.assertRaises(EncoderWeightsMissingError) as caught:
                encoder_unet_generator(encoder, "imagenet", alpha=alpha, ngf=4)
            message = str(caught.exception)
            self.assertIn(filename, message)
            self.assertIn(os.path.join(self.home, "models"), message)
            self.assertIn("--encoder_weights=none", message)
            self.assertIsInstance(caught.exception, FileNotFoundError)
        with self.assertRaisesRegex(EncoderWeightsMissingError, "no such file"):
            build_encoder("mobilenet_v2", os.path.join(self.home, "nope.h5"), alpha=ALPHA)
        with self.assertRaisesRegex(ValueError, "alpha in 0.35, 0.5"):
            build_encoder("mobilenet_v2", "imagenet", alpha=0.6)

    def test_imagenet_from_the_keras_cache_and_weights_from_a_path(self):
        keras.utils.set_random_seed(2)
        source = build_encoder("mobilenet_v2", "none", alpha=ALPHA)
        os.makedirs(os.path.join(self.home, "models"))
        # The ImageNet file's name and layout, under $KERAS_HOME/models.
        _write_legacy_h5(source, os.path.join(self.home, "models",
                                              imagenet_weights_file("mobilenet_v2", ALPHA)))
        _assert_same_weights(self, source, build_encoder("mobilenet_v2", "imagenet", ALPHA))
        # A path to a legacy .h5 and to a Keras 3 .weights.h5 file.
        legacy = os.path.join(self.home, "backbone.h5")
        _write_legacy_h5(source, legacy)
        keras3 = os.path.join(self.home, "backbone.weights.h5")
        keras.Model(source.input, source.outputs[-1]).save_weights(keras3)
        for path in (legacy, keras3):
            model = encoder_unet_generator("mobilenet_v2", path, alpha=ALPHA, ngf=4)
            _assert_same_weights(self, source, model.get_layer("encoder"))
        # A file of another backbone: one clear error naming the expected file.
        with self.assertRaisesRegex(ValueError, "Could not load mobilenet_v2 weights from .*"
                                    "no-top mobilenet_v2 backbone with alpha=1.0"):
            build_encoder("mobilenet_v2", legacy, alpha=1.0)

    def test_frozen_encoder_does_not_train(self):
        keras.utils.set_random_seed(4)
        model = _mobilenet_unet(y_range=(-1.1, 1.1), freeze_encoder=True)
        encoder = model.get_layer("encoder")
        self.assertEmpty(encoder.trainable_weights)
        before = [w.numpy().copy() for w in encoder.weights]
        decoder_before = model.get_layer("bridge_conv").kernel.numpy().copy()
        trainer = GeneratorPretrainer(model, PixelContentLoss())
        trainer.compile(adam(1e-2, 0.9, 0.99))
        data = (_images(2, 64, 64, seed=6), _images(2, 64, 64, seed=7))
        for _ in range(2):
            trainer.train_step(data)
        for w, value in zip(encoder.weights, before):  # kernels and batch-norm statistics
            np.testing.assert_array_equal(w.numpy(), value, err_msg=w.path)
        self.assertNotAllClose(model.get_layer("bridge_conv").kernel.numpy(), decoder_before)


class EncoderCLITest(tf.test.TestCase):

    @pytest.mark.slow
    def test_pretrain_g_with_a_mobilenet_encoder_and_missing_weights(self):
        out = os.path.join(tempfile.mkdtemp(), "restore")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
               "KERAS_HOME": tempfile.mkdtemp()}
        common = ["--model=restore", "--phase=pretrain_g", "--encoder=mobilenet_v2",
                  f"--encoder_alpha={ALPHA}", "--ngf=4", "--crop_size=64", "--batch_size=2",
                  "--max_steps=2", "--save_freq=2", "--verbose=0", "--seed=0", "--noevaluate",
                  f"--output_dir={out}"]

        def run(*extra):
            return subprocess.run([sys.executable, "-m", "kgan.train", *common, *extra],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)

        missing = run("--encoder_weights=imagenet")
        self.assertEqual(missing.returncode, 2, missing.stderr[-3000:])
        self.assertIn("kgan.train: error: mobilenet_v2 ImageNet weights not found",
                      missing.stderr)
        self.assertNotIn("Traceback", missing.stderr)
        result = run("--encoder_weights=none")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("RANDOM weights", result.stderr)
        generator = keras.models.load_model(os.path.join(out, "generators", "generator.keras"),
                                            safe_mode=True, compile=False)
        self.assertEqual(size_multiple(generator), 32)
        self.assertEqual(generator.get_layer("encoder").count_params(), 410_208)
        self.assertIn("--encoder=mobilenet_v2", open(os.path.join(out, "flags.cfg")).read())
