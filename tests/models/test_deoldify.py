"""kgan.models.deoldify and kgan.models.resnet_body: DeOldify's generators built through
build_generator have DeOldify's parameter counts at full size, take any side that is a multiple
of 16 (nearest resize where fastai resizes), refuse other sides, and save / load with
safe_mode=True with and without spectral-norm wrappers. Numerical equality with DeOldify's
PyTorch network is tested in tests/interop/test_deoldify_weights.py."""

import os

import keras
import numpy as np
import tensorflow as tf
from helpers import random_images

from kgan.models import build_generator, is_deoldify_model, raw_network

# DeOldify's published counts (REFERENCE.md section 9) less the weight_g vector of the
# weight-normed layers.8 conv, which kgan folds into a plain conv (1200 and 1024 channels).
FULL = {"deoldify_artistic": (63_646_881, 1200), "deoldify_stable": (218_222_197, 1024)}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class DeOldifyModelTest(tf.test.TestCase):

    def test_full_size_parameter_counts_equal_deoldify(self):
        for name, (count, weight_g) in FULL.items():
            with self.subTest(name=name):
                model = build_generator(name)
                self.assertEqual(_trainable(model) + weight_g, count)
                keras.backend.clear_session()

    def test_a_wrong_width_breaks_the_count(self):
        model = build_generator("deoldify_artistic", width=32)
        self.assertNotEqual(_trainable(model) + 1200, FULL["deoldify_artistic"][0])

    def test_sides_that_are_multiples_of_16_work_and_others_are_refused(self):
        model = build_generator("deoldify_artistic", width=4)
        self.assertTrue(is_deoldify_model(model))
        for shape in ((1, 48, 80, 3), (1, 64, 64, 3), (2, 32, 48, 3)):
            out = np.asarray(model(random_images(*shape)))
            self.assertEqual(out.shape, shape)
            self.assertBetween(float(out.min()), -1.0, 1.0)
            self.assertBetween(float(out.max()), -1.0, 1.0)
        raw = np.asarray(raw_network(model)(random_images(1, 48, 80, 3)))
        self.assertLessEqual(float(np.abs(raw).max()), 3.0)
        with self.assertRaisesRegex(ValueError, "multiples of 16"):
            model(random_images(1, 40, 64, 3))

    def test_saves_and_loads_with_safe_mode(self):
        for spectral_norm in (False, True):
            with self.subTest(spectral_norm=spectral_norm):
                model = build_generator("deoldify_stable", width=2, wide_nf=32,
                                        spectral_norm=spectral_norm)
                path = os.path.join(self.get_temp_dir(), f"sn{spectral_norm}.keras")
                model.save(path)
                loaded = keras.saving.load_model(path, safe_mode=True)
                x = random_images(1, 48, 80, 3)
                self.assertAllClose(loaded(x), model(x), atol=1e-6)
                self.assertTrue(is_deoldify_model(loaded))

    def test_unknown_variant_is_refused(self):
        with self.assertRaisesRegex(ValueError, "deoldify_stable"):
            build_generator("deoldify_modern")
