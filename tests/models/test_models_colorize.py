"""Tests for kgan.models.colorize: the luma-preserving merge (exact in float, within half a
uint8 level after rounding, no clipping), the chroma UNet wrapper (parameters, shapes,
serialisation with safe_mode=True, mixed precision, a keras.applications encoder)."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kgan.models import size_multiple, unet_generator
from kgan.models.colorize import (
    U_MAX,
    V_MAX,
    LumaChromaMerge,
    chroma,
    colorization_generator,
    is_colorization_model,
    luma,
    merge_luma_chroma,
)


def _luma_np(rgb):
    """BT.601 luma by hand (the weights of tf.image.rgb_to_yuv)."""
    rgb = np.asarray(rgb, np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


class MergeTest(tf.test.TestCase):

    def test_in_gamut_colours_are_rebuilt_exactly(self):
        rgb = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
        rebuilt = merge_luma_chroma(luma(rgb), chroma(rgb)).numpy()
        self.assertAllClose(rebuilt, rgb, atol=2e-6)

    def test_out_of_gamut_chroma_keeps_luma_and_hue(self):
        rng = np.random.default_rng(1)
        y = rng.uniform(0, 1, (2000, 1)).astype(np.float32)
        uv = (rng.uniform(-1, 1, (2000, 2)) * [U_MAX, V_MAX] * 1.5).astype(np.float32)
        rgb = merge_luma_chroma(y, uv).numpy()
        self.assertGreaterEqual(rgb.min(), -1e-6)
        self.assertLessEqual(rgb.max(), 1 + 1e-6)
        self.assertLess(np.abs(_luma_np(rgb) - y[:, 0]).max(), 1e-6)
        # Same hue: the chroma is a non-negative multiple of the asked one, at most 1.
        out_uv = chroma(rgb).numpy()
        scale = (out_uv * uv).sum(-1) / (uv * uv).sum(-1)
        self.assertAllClose(out_uv, scale[:, None] * uv, atol=1e-5)
        self.assertTrue(np.all((scale > -1e-5) & (scale < 1 + 1e-5)))
        # Some pixels really were out of gamut (so this test exercised the reduction).
        self.assertLess(scale.min(), 0.5)

    def test_strong_red_at_high_luma_is_reduced_not_clipped(self):
        rgb = merge_luma_chroma(tf.constant([[0.9]]), tf.constant([[0.0, V_MAX]])).numpy()[0]
        self.assertAlmostEqual(_luma_np(rgb), 0.9, places=6)
        self.assertAlmostEqual(rgb.max(), 1.0, places=6)  # on the cube's face, not beyond


class ColorizationGeneratorTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        cls.model = colorization_generator(num_downs=5, ngf=4, last_cross=True)

    def test_parameters_and_shapes(self):
        base = unet_generator(num_downs=5, ngf=4, last_cross=True, output_channels=2)
        self.assertEqual(self.model.count_params(), base.count_params())
        self.assertEqual(size_multiple(self.model), 32)
        self.assertTrue(is_colorization_model(self.model))
        self.assertFalse(is_colorization_model(base))
        out = self.model(np.zeros((2, 64, 32, 3), np.float32))
        self.assertEqual(out.shape, (2, 64, 32, 3))
        self.assertEqual(out.dtype, tf.float32)
        with self.assertRaisesRegex(ValueError, "output_channels"):
            colorization_generator(num_downs=5, ngf=4, output_channels=3)

    def test_luma_exact_in_float_and_uint8(self):
        rng = np.random.default_rng(2)
        colour = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
        gray = np.repeat(rng.integers(0, 256, (2, 64, 64, 1)), 3, -1).astype(np.uint8)
        for x in (colour, gray.astype(np.float32) / 127.5 - 1):
            out = self.model(x, training=False).numpy()
            self.assertLess(np.abs(_luma_np((out + 1) / 2) - _luma_np((x + 1) / 2)).max(), 1e-6)
        out = self.model(gray.astype(np.float32) / 127.5 - 1, training=False).numpy()
        out_uint8 = np.clip(np.round((out + 1) * 127.5), 0, 255)
        diff = _luma_np(out_uint8) - gray[..., 0]
        self.assertLessEqual(np.abs(diff).max(), 0.5 + 1e-4)  # each channel off by <= 0.5
        self.assertLessEqual(np.abs(np.round(_luma_np(out_uint8)) - gray[..., 0]).max(), 1)
        self.assertGreater(np.abs(out[..., 0] - out[..., 2]).max(), 1e-3)  # not gray

    def test_save_and_load_safe_mode(self):
        path = os.path.join(tempfile.mkdtemp(), "colorize.keras")
        self.model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
        x = np.random.default_rng(3).uniform(-1, 1, (1, 32, 64, 3)).astype(np.float32)
        self.assertAllClose(loaded(x), self.model(x), atol=1e-6)
        self.assertTrue(is_colorization_model(loaded))

    def test_merge_layer_is_float32_under_mixed_precision(self):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            model = colorization_generator(num_downs=5, ngf=4)
            x = np.random.default_rng(4).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
            out = model(x).numpy()
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.assertEqual(model.get_layer("luma_chroma_merge").compute_dtype, "float32")
        self.assertLess(np.abs(_luma_np((out + 1) / 2) - _luma_np((x + 1) / 2)).max(), 1e-6)

    def test_merge_layer_config_round_trip(self):
        layer = LumaChromaMerge(name="m")
        again = LumaChromaMerge.from_config(layer.get_config())
        self.assertEqual(again.name, "m")
        self.assertEqual(again.compute_output_shape(((None, 8, 8, 3), (None, 8, 8, 2))),
                         (None, 8, 8, 3))

    def test_encoder_unet(self):
        model = colorization_generator(encoder="mobilenet_v2", encoder_weights=None, alpha=0.35,
                                       ngf=4, last_cross=True)
        self.assertEqual(size_multiple(model), 32)
        x = np.random.default_rng(5).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
        out = model(x, training=False).numpy()
        self.assertEqual(out.shape, (1, 64, 64, 3))
        self.assertLess(np.abs(_luma_np((out + 1) / 2) - _luma_np((x + 1) / 2)).max(), 1e-6)
