"""Tests for kgan.colorization.colorizer (and kgan.colorization.scoring): render sizes,
full-resolution luma kept, alpha, EXIF orientation, gray and 16-bit inputs, the out-of-memory
fallback, the automatic render factor, the pad fit, and checkpoint selection by colour rather than
PSNR.

Most tests use fake translators (uint8 square in, uint8 square out) whose chroma is known."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.colorization.colorizer import (
    ColorizeOutOfMemoryError,
    Colorizer,
    choose_by_median,
    colorize_files,
    colorize_image,
)
from kgan.colorization.scoring import pick_best_colour_checkpoint, score_outputs
from kgan.core.errors import UsageError
from kgan.metrics import color as cm
from kgan.models.colorize import U_MAX, V_MAX, colorization_generator, merge_luma_chroma


def _with_chroma(square, uv):
    """A uint8 square's luma with a constant chroma ``uv``, as a model would colour it."""
    y = square[..., :1].astype(np.float32) / 255.0
    rgb = merge_luma_chroma(y, np.asarray(uv, np.float32)).numpy()
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


class FakeTranslator:
    """Colours every square with a chroma chosen by its size; records the sizes; runs out of
    memory above ``oom_above`` px."""

    def __init__(self, uv_for_size=lambda size: (-0.05, 0.08), oom_above=None, fixed_size=None,
                 error=tf.errors.ResourceExhaustedError):
        self.uv_for_size, self.oom_above, self.fixed_size = uv_for_size, oom_above, fixed_size
        self.error, self.sizes, self.inputs = error, [], []

    def __call__(self, images):
        images = np.asarray(images)
        size = images.shape[1]
        self.sizes.append((images.shape[1], images.shape[2]))
        self.inputs.append(images)
        if self.oom_above is not None and size > self.oom_above:
            if self.error is MemoryError:
                raise MemoryError("simulated")
            raise self.error(None, None, f"OOM when allocating a tensor for {size} px")
        return np.stack([_with_chroma(image, self.uv_for_size(size)) for image in images])


def _photo(height, width):
    import skimage.data

    image = tf.image.resize(skimage.data.chelsea()[np.newaxis].astype(np.float32),
                            (height, width), antialias=True)
    return np.clip(np.round(image[0].numpy()), 0, 255).astype(np.uint8)


class ColorizerTest(tf.test.TestCase):

    def test_render_size_and_full_resolution_luma(self):
        fake = FakeTranslator()
        image = _photo(90, 130)
        out = colorize_image(fake, image, render_factor=3)
        self.assertEqual(fake.sizes, [(48, 48)])
        self.assertEqual(out.shape, (90, 130, 3))
        # The luma is the full-resolution input's (not the 48 px render's), within 0.5 level.
        self.assertLessEqual(np.abs(cm.rgb_luma(out) - cm.rgb_luma(image)).max(), 0.5 + 1e-3)
        # The chroma is the model's (constant here), away from the gamut's edges.
        uv = np.asarray(out, np.float64).reshape(-1, 3) / 255 @ cm._RGB_TO_YUV
        middle = (cm.rgb_luma(out).ravel() > 60) & (cm.rgb_luma(out).ravel() < 190)
        self.assertAllClose(np.median(uv[middle, 1:], axis=0), [-0.05, 0.08], atol=0.01)
        # The render square is the gray input stretched (all channels equal).
        self.assertAllEqual(fake.inputs[0][..., 0], fake.inputs[0][..., 2])

    def test_gray_16bit_and_alpha_inputs(self):
        fake = FakeTranslator()
        gray = np.random.default_rng(0).integers(0, 256, (20, 30)).astype(np.uint8)
        out = colorize_image(fake, gray, render_factor=2)
        self.assertEqual(out.shape, (20, 30, 3))
        self.assertLessEqual(np.abs(cm.rgb_luma(out) - gray).max(), 0.5 + 1e-3)
        deep = (gray.astype(np.uint16) * 257 + 100)[..., None]
        out16 = colorize_image(fake, deep, render_factor=2)
        self.assertLessEqual(np.abs(cm.rgb_luma(out16) - deep[..., 0] / 257.0).max(), 0.5 + 1e-3)
        rgba = np.concatenate([_photo(20, 30), gray[..., None]], axis=-1)
        out_rgba = colorize_image(fake, rgba, render_factor=2)
        self.assertEqual(out_rgba.shape, (20, 30, 4))
        self.assertAllEqual(out_rgba[..., 3], gray)
        with self.assertRaises(UsageError):
            colorize_image(fake, gray.astype(np.float32))

    def test_out_of_memory_falls_back_and_remembers(self):
        fake = FakeTranslator(oom_above=64)
        messages = []
        colorizer = Colorizer(fake, render_factor=8, log=messages.append)
        out = colorizer.colorize(_photo(40, 50))
        # 8 (128 px) and 6 (96 px) run out of memory; 4 (64 px) works.
        self.assertEqual([s[0] for s in fake.sizes], [128, 96, 64])
        self.assertEqual(colorizer.fallbacks, [(8, 6), (6, 4)])
        self.assertEqual(colorizer.render_factor, 4)
        self.assertEqual(colorizer.last_render_factor, 4)
        self.assertEqual(len(messages), 2)
        self.assertIn("out of memory at render factor 8", messages[0])
        self.assertGreater(cm.colourfulness(out), 1.0)  # coloured, not the gray input
        colorizer.colorize(_photo(40, 50))
        self.assertEqual(fake.sizes[-1][0], 64)  # the next image starts at the smaller size

    def test_out_of_memory_everywhere_raises(self):
        for error in (tf.errors.ResourceExhaustedError, MemoryError):
            fake = FakeTranslator(oom_above=0, error=error)
            colorizer = Colorizer(fake, render_factor=6, min_render_factor=4, log=lambda m: None)
            with self.assertRaisesRegex(ColorizeOutOfMemoryError, "smallest"):
                colorizer.colorize(_photo(20, 20))

    def test_auto_picks_the_factor_closest_to_the_median(self):
        table = {32: (0.0, 0.0), 48: (0.10, 0.0), 64: (0.11, 0.0), 80: (0.13, 0.02),
                 96: (0.30, -0.2)}
        fake = FakeTranslator(uv_for_size=lambda size: table[size])
        colorizer = Colorizer(fake, "auto", auto_factors=(2, 3, 4, 5, 6))
        out = colorizer.colorize(_photo(30, 40))
        self.assertEqual(colorizer.last_render_factor, 4)  # median (0.11, 0.0) is 64 px's
        self.assertEqual(sorted(s[0] for s in fake.sizes), [32, 48, 64, 80, 96])
        self.assertEqual(out.shape, (30, 40, 3))
        self.assertEqual(choose_by_median({1: np.zeros((2, 2, 2)), 2: np.zeros((2, 2, 2))}), 1)

    def test_auto_skips_factors_out_of_memory(self):
        fake = FakeTranslator(oom_above=48)
        colorizer = Colorizer(fake, "auto", auto_factors=(2, 3, 4), log=lambda m: None)
        colorizer.colorize(_photo(30, 40))
        self.assertIn(colorizer.last_render_factor, (2, 3))

    def test_fixed_size_model(self):
        fake = FakeTranslator(fixed_size=32)
        out = Colorizer(fake, render_factor=35).colorize(_photo(50, 70))
        self.assertEqual(fake.sizes, [(32, 32)])
        self.assertEqual(out.shape, (50, 70, 3))
        with self.assertRaisesRegex(UsageError, "fixed"):
            Colorizer(fake, "auto")
        with self.assertRaises(UsageError):
            Colorizer(fake, 0)

    def test_pad_fit_keeps_the_aspect_ratio(self):
        fake = FakeTranslator()
        image = np.zeros((20, 40), np.uint8)
        image[:, 20:] = 200
        out = colorize_image(fake, image, render_factor=2, fit="pad")
        square = fake.inputs[0][0, ..., 0]
        # 20x40 -> 16x32 inside the 32 px square, rows 8..23; the edge rows are repeated.
        self.assertAllEqual(square[0], square[8])
        self.assertAllEqual(square[31], square[23])
        self.assertLess(square[8, 2], 10)
        self.assertGreater(square[8, 29], 190)
        self.assertEqual(out.shape, (20, 40, 3))

    def test_real_model_keeps_luma(self):
        keras.utils.set_random_seed(1)
        model = colorization_generator(num_downs=5, ngf=4)
        image = _photo(37, 53)
        out = colorize_image(model, image, render_factor=2)
        self.assertLessEqual(np.abs(cm.rgb_luma(out) - cm.rgb_luma(image)).max(), 0.5 + 1e-3)


class FilesTest(tf.test.TestCase):

    def test_folder_exif_alpha_and_unreadable(self):
        tmp = tempfile.mkdtemp()
        src = os.path.join(tmp, "in")
        os.makedirs(src)
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise on display
        Image.fromarray(_photo(30, 50)).save(os.path.join(src, "rotated.jpg"), exif=exif,
                                             quality=95)
        rgba = np.concatenate([_photo(24, 24), np.full((24, 24, 1), 77, np.uint8)], -1)
        Image.fromarray(rgba).save(os.path.join(src, "alpha.png"))
        with open(os.path.join(src, "broken.png"), "wb") as f:
            f.write(b"not a png")
        progress = []
        summary = colorize_files(Colorizer(FakeTranslator(), 2), src, os.path.join(tmp, "out"),
                                 progress=lambda *a: progress.append(a), log=lambda m: None)
        self.assertEqual(summary["colorized"], 2)
        self.assertEqual([os.path.basename(p) for p, _ in summary["skipped"]], ["broken.png"])
        self.assertEqual([p[:2] for p in progress], [(1, 3), (2, 3), (3, 3)])
        rotated = np.asarray(Image.open(os.path.join(tmp, "out", "rotated.png")))
        self.assertEqual(rotated.shape, (50, 30, 3))  # EXIF orientation applied
        alpha = np.asarray(Image.open(os.path.join(tmp, "out", "alpha.png")))
        self.assertEqual(alpha.shape, (24, 24, 4))
        self.assertTrue(np.all(alpha[..., 3] == 77))
        with self.assertRaises(UsageError):
            colorize_files(Colorizer(FakeTranslator(), 2), src, src)


class ScoringTest(tf.test.TestCase):

    def test_colour_score_and_psnr_disagree_where_they_should(self):
        # A 30%-saturation guess beats a full-saturation guess 45 degrees off in hue on PSNR;
        # the colour score prefers the colourful one (PSNR's bias to gray).
        rng = np.random.default_rng(0)
        y = np.clip(0.5 + 0.15 * np.cumsum(rng.normal(size=(64, 64)), 1) / 8, 0.2, 0.8)
        y = y[..., None].astype(np.float32)
        truth_uv = np.array([-0.08, 0.09], np.float32)
        angle = np.deg2rad(45)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

        def image(uv):
            rgb = merge_luma_chroma(y, np.asarray(uv, np.float32)).numpy()
            return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)

        truth = image(truth_uv)
        muted = score_outputs([image(0.3 * truth_uv)], [truth])
        vivid = score_outputs([image(rotation @ truth_uv)], [truth])
        self.assertGreater(muted["psnr"], vivid["psnr"])
        self.assertLess(vivid["colour_score"], muted["colour_score"])

    def test_pick_best_colour_checkpoint(self):
        # Also for a generator trained under mixed_bfloat16: it used to be scored through one
        # float32 copy made before the checkpoints were restored, so every checkpoint scored
        # alike and the first was kept.
        previous = keras.mixed_precision.global_policy()
        for policy in ("float32", "mixed_bfloat16"):
            with self.subTest(policy=policy):
                keras.mixed_precision.set_global_policy(policy)
                try:
                    self._pick_best_colour_checkpoint()
                finally:
                    keras.mixed_precision.set_global_policy(previous)

    def _pick_best_colour_checkpoint(self):
        from kgan.training.trainers.pretrain import GeneratorPretrainer

        keras.utils.set_random_seed(2)
        generator = colorization_generator(num_downs=5, ngf=4, norm="none", last_cross=True)
        trainer = GeneratorPretrainer(generator, None)
        head = generator.get_layer("out")
        truth_uv = np.array([-0.08, 0.09])
        angle = np.deg2rad(45)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        run_dir = tempfile.mkdtemp()
        checkpoint = tf.train.Checkpoint(trainer=trainer)
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"),
                                             max_to_keep=None)
        kernel = np.zeros(head.kernel.shape, np.float32)
        for uv in (0.3 * truth_uv, rotation @ truth_uv):  # muted, then vivid with a hue error
            bias = np.arctanh(np.asarray(uv) / [U_MAX, V_MAX]).astype(np.float32)
            head.set_weights([kernel, bias])  # a constant chroma everywhere
            manager.save()
        rng = np.random.default_rng(3)
        y = np.clip(0.5 + 0.15 * np.cumsum(rng.normal(size=(64, 64)), 1) / 8, 0.2, 0.8)
        truth = np.clip(np.round(merge_luma_chroma(y[..., None], truth_uv).numpy() * 255), 0,
                        255).astype(np.uint8)
        best, scores = pick_best_colour_checkpoint(trainer, run_dir, [truth], render_factor=4)
        paths = sorted(scores, key=lambda p: int(p.rsplit("-", 1)[1]))
        self.assertEqual(best, paths[1])  # the vivid one, though PSNR prefers the muted one
        self.assertGreater(scores[paths[0]]["psnr"], scores[paths[1]]["psnr"])
        self.assertAllClose(head.get_weights()[1],
                            np.arctanh(rotation @ truth_uv / [U_MAX, V_MAX]), atol=1e-6)
        self.assertTrue(os.path.isfile(os.path.join(run_dir, "generator_best.weights.h5")))

    def test_evaluate_model_on_a_folder(self):
        from kgan.colorization.scoring import (
            evaluate_colorization_model,
            load_color_photos,
        )

        folder = tempfile.mkdtemp()
        for i in range(2):
            Image.fromarray(_photo(24 + i, 32)).save(os.path.join(folder, f"p{i}.png"))
        truths = load_color_photos(folder)
        self.assertEqual([t.shape for t in truths], [(24, 32, 3), (25, 32, 3)])
        results = evaluate_colorization_model(FakeTranslator(), truths, render_factor=2)
        self.assertEqual(results["num_images"], 2)
        self.assertEqual(results["render_factor"], 2)
        self.assertGreater(results["model"]["colourfulness"], 0.0)
        self.assertEqual(results["gray_input"]["colourfulness"], 0.0)
