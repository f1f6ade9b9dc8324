"""Tests for kgan.exporting.export: SavedModel signatures checked in a process without kgan, TFLite
variants within their bounds, every variant's bound broken by a wrong and by a constant (zeros)
model, an int8 file that misses its bound labelled unverified, broken exports caught, the
run-directory contract and the CLI."""

import json
import os
import subprocess
import sys
import tempfile
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from helpers import photo, run_cli

from kgan.exporting import export, saved_model, tflite, verify
from kgan.models import resnet_generator, unet_generator
from kgan.serving import translators as serving


def chelsea(height, width):
    return photo(height, width, "chelsea")

VARIANTS = ("float32", "float16", "dynamic", "int8")
TFLITE_SIZE = 32

# Run by a fresh interpreter that imports only TensorFlow (argv: saved_model_dir, in, out).
_CLIENT = r"""
import sys
import numpy as np
import tensorflow as tf
saved_model_dir, inputs_path, outputs_path = sys.argv[1:4]
data = np.load(inputs_path)
signatures = tf.saved_model.load(saved_model_dir).signatures
odd = signatures["translate_uint8"](images=tf.constant(data["odd"]))["images"].numpy()
floats = signatures["serving_default"](images=tf.constant(data["floats"]))["images"].numpy()
encoded = [data["png"].tobytes(), data["jpeg"].tobytes()]
pngs = signatures["translate_bytes"](image_bytes=tf.constant(encoded))["png_bytes"].numpy()
decoded = [tf.io.decode_png(p, channels=3).numpy() for p in pngs]
assert not any(m == "kgan" or m.startswith("kgan.") for m in sys.modules), "kgan was imported"
np.savez(outputs_path, odd=odd, floats=floats, bytes_png=decoded[0], bytes_jpeg=decoded[1])
"""


class ExportTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(7)
        cls.tmp = tempfile.mkdtemp()
        cls.model = resnet_generator(n_blocks=1, ngf=4)
        cls.verify_images = [chelsea(50, 67), chelsea(37, 45)]
        cls.export_dir = os.path.join(cls.tmp, "export")
        cls.manifest = export.export_generator(
            cls.model, cls.export_dir, tflite=VARIANTS, tflite_size=TFLITE_SIZE,
            verify_images=cls.verify_images)

    def test_manifest_records_files_contract_and_errors(self):
        with open(os.path.join(self.export_dir, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["input_contract"]["size_multiple"], 4)
        self.assertEqual(manifest["input_contract"]["range"], [-1.0, 1.0])
        self.assertEqual(set(manifest["signatures"]), set(verify.SIGNATURES))
        self.assertEqual(manifest["versions"]["tensorflow"], tf.__version__)
        self.assertTrue(manifest["verified"])
        check = manifest["saved_model"]["verification"]
        self.assertLessEqual(check["max_abs_error"], 1e-4)
        self.assertLessEqual(check["translate_uint8_max_uint8_error"], 1)
        self.assertEqual(check["image_sizes"], [[50, 67], [37, 45]])
        self.assertEqual(set(manifest["tflite"]), set(VARIANTS))
        for variant, entry in manifest["tflite"].items():
            path = os.path.join(self.export_dir, entry["path"])
            self.assertEqual(entry["size_bytes"], os.path.getsize(path))
            self.assertTrue(entry["verified"], variant)
            self.assertEqual(verify.bound_failures(entry["verification"], entry["bound"]), [])
            self.assertGreaterEqual(entry["verification"]["margin_db"],
                                    entry["bound"]["min_margin_db"])
        self.assertEqual(manifest["unverified"], [])
        self.assertEqual(manifest["tflite"]["int8"]["input"]["dtype"], "uint8")
        self.assertEqual(manifest["tflite"]["float32"]["input"]["shape"],
                         [1, TFLITE_SIZE, TFLITE_SIZE, 3])
        self.assertLess(manifest["tflite"]["float16"]["size_bytes"],
                        manifest["tflite"]["float32"]["size_bytes"])

    def test_saved_model_without_kgan_matches_keras_on_odd_sizes(self):
        odd = chelsea(50, 67)
        other = chelsea(41, 30)
        floats = chelsea(52, 68)[np.newaxis].astype(np.float32) / 127.5 - 1.0
        inputs = {"odd": odd[np.newaxis], "floats": floats,
                  "png": np.frombuffer(tf.io.encode_png(odd).numpy(), np.uint8),
                  "jpeg": np.frombuffer(tf.io.encode_jpeg(other, quality=100).numpy(), np.uint8)}
        inputs_path = os.path.join(self.tmp, "client_in.npz")
        outputs_path = os.path.join(self.tmp, "client_out.npz")
        np.savez(inputs_path, **inputs)
        result = subprocess.run(
            [sys.executable, "-c", _CLIENT, os.path.join(self.export_dir, "1"), inputs_path,
             outputs_path], capture_output=True, text=True, cwd=self.tmp)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        out = np.load(outputs_path)

        expected = verify.reference_uint8(self.model, odd)
        self.assertEqual(out["odd"].shape, (1, 50, 67, 3))
        self.assertLessEqual(np.abs(out["odd"][0].astype(int) - expected).max(), 1)
        self.assertLessEqual(np.abs(out["bytes_png"].astype(int) - expected).max(), 1)
        decoded_jpeg = tf.io.decode_jpeg(inputs["jpeg"].tobytes()).numpy()
        expected_jpeg = verify.reference_uint8(self.model, decoded_jpeg)
        self.assertEqual(out["bytes_jpeg"].shape, (41, 30, 3))
        self.assertLessEqual(np.abs(out["bytes_jpeg"].astype(int) - expected_jpeg).max(), 1)
        self.assertAllClose(out["floats"], self.model(floats), atol=1e-4, rtol=0)

    def test_saved_model_cli_lists_signatures(self):
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        result = subprocess.run([cli, "show", "--all", "--dir", os.path.join(self.export_dir, "1")],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        for name in verify.SIGNATURES:
            self.assertIn(f"signature_def['{name}']", result.stdout)
        self.assertIn("inputs['image_bytes']", result.stdout)
        self.assertIn("outputs['png_bytes']", result.stdout)

    def test_each_tflite_variant_runs_within_its_bound(self):
        x = np.concatenate([verify.resize_square(image, TFLITE_SIZE)
                            for image in self.verify_images])
        expected = np.asarray(self.model(x))
        for variant in VARIANTS:
            runner = serving.TFLiteRunner(os.path.join(self.export_dir, f"{variant}.tflite"))
            actual = runner(x)
            self.assertEqual(actual.shape, expected.shape)
            errors = verify.fidelity(expected, actual)
            self.assertEqual(verify.bound_failures(errors, verify.ERROR_BOUNDS[variant]), [],
                             variant)

    def test_every_variant_fails_for_a_wrong_and_a_constant_model(self):
        # The file checked against a model of the same architecture with other weights, against
        # a model that outputs zeros, and the zeros model's own file against the right model:
        # each must break its variant's bound (a wrong model sits below 0 dB over a constant
        # image; every floor is >= 3 dB).
        keras.utils.set_random_seed(8)
        wrong = resnet_generator(n_blocks=1, ngf=4)
        zeros = resnet_generator(n_blocks=1, ngf=4)
        zeros.set_weights([np.zeros_like(w) for w in zeros.get_weights()])
        self.assertAllEqual(zeros(np.ones((1, 8, 8, 3), np.float32)), np.zeros((1, 8, 8, 3)))
        representative = verify.sample_images("train", max_side=64)
        for variant in VARIANTS:
            with self.subTest(variant=variant):
                right_file = os.path.join(self.export_dir, f"{variant}.tflite")
                zeros_file = os.path.join(self.tmp, f"zeros_{variant}.tflite")
                tflite.convert_tflite(zeros, zeros_file, variant, TFLITE_SIZE, representative)
                for path, model in ((right_file, wrong), (right_file, zeros),
                                    (zeros_file, self.model)):
                    with self.assertRaisesRegex(verify.ExportVerificationError,
                                                "does not match the Keras model.*dB over a "
                                                "constant image"):
                        verify.verify_tflite(path, model, self.verify_images,
                                             verify.ERROR_BOUNDS[variant])
                # Not strict (how export treats int8): reported, not raised.
                check = verify.verify_tflite(right_file, wrong, self.verify_images,
                                             verify.ERROR_BOUNDS[variant], strict=False)
                self.assertFalse(check["verified"])
                self.assertLess(check["margin_db"], 0)
        zeros_saved_model = os.path.join(self.tmp, "zeros_saved_model")
        saved_model.export_saved_model(zeros, zeros_saved_model)
        for path, model in ((os.path.join(self.export_dir, "1"), wrong),
                            (os.path.join(self.export_dir, "1"), zeros),
                            (zeros_saved_model, self.model)):
            with self.assertRaisesRegex(verify.ExportVerificationError, "serving_default does "
                                        "not match the Keras model"):
                verify.verify_saved_model(path, model, self.verify_images[:1])

    def test_fidelity_figures(self):
        expected = np.stack([np.linspace(-1, 1, 16)] * 3, -1).reshape(4, 4, 3)
        constant = np.zeros_like(expected)  # the mean colour of expected
        errors = verify.fidelity(expected, constant)
        self.assertAlmostEqual(errors["margin_db"], 0.0, places=6)
        mse = np.mean(expected ** 2)
        self.assertAlmostEqual(errors["psnr_db"], 10 * np.log10(4 / mse), places=3)
        noisy = expected + 0.01
        self.assertAlmostEqual(verify.fidelity(expected, noisy)["margin_db"],
                               10 * np.log10(mse / 1e-4), places=3)
        exact = verify.fidelity(expected, expected)
        self.assertEqual(exact["psnr_db"], verify.MAX_PSNR_DB)
        self.assertEqual(verify.bound_failures(exact, verify.ERROR_BOUNDS["float32"]), [])
        # A constant reference: even an exact file has no margin, so it cannot verify.
        flat = verify.fidelity(constant, constant)
        self.assertEqual(flat["margin_db"], 0.0)
        with self.assertRaisesRegex(verify.ExportVerificationError, "output is constant"):
            verify.check_fidelity("x", flat, verify.ERROR_BOUNDS["int8"])

    def test_int8_below_its_bound_is_exported_unverified(self):
        # A batch-norm UNet keeps int8 only ~2.3 dB above a constant image (floor 3 dB): the
        # file stays, labelled unverified in the manifest and in one log line.
        keras.utils.set_random_seed(7)
        model = unet_generator(num_downs=5, ngf=8)
        target = os.path.join(self.tmp, "unverified_int8")
        with self.assertLogs("absl", "WARNING") as logs:
            manifest = export.export_generator(model, target, tflite=["float32", "int8"],
                                               tflite_size=64,
                                               verify_images=self.verify_images)
        entry = manifest["tflite"]["int8"]
        self.assertFalse(entry["verified"])
        self.assertLess(entry["verification"]["margin_db"], entry["bound"]["min_margin_db"])
        self.assertIn("over a constant image", entry["unverified"])
        self.assertTrue(manifest["tflite"]["float32"]["verified"])
        self.assertFalse(manifest["verified"])
        self.assertEqual(manifest["unverified"], ["int8.tflite"])
        self.assertEqual(len([line for line in logs.output if "UNVERIFIED" in line]), 1)
        self.assertTrue(os.path.isfile(os.path.join(target, "int8.tflite")))
        with open(os.path.join(target, "manifest.json")) as f:
            self.assertEqual(json.load(f)["unverified"], ["int8.tflite"])

    def test_broken_exports_are_caught(self):
        wrong = resnet_generator(n_blocks=1, ngf=4)
        wrong.set_weights([w * 1.5 for w in self.model.get_weights()])
        float32 = os.path.join(self.export_dir, "float32.tflite")
        with self.assertRaisesRegex(verify.ExportVerificationError, "does not match"):
            verify.verify_tflite(float32, wrong, self.verify_images,
                                 verify.ERROR_BOUNDS["float32"])
        truncated = os.path.join(self.tmp, "truncated.tflite")
        with open(float32, "rb") as f, open(truncated, "wb") as g:
            g.write(f.read()[:4000])
        with self.assertRaisesRegex(verify.ExportVerificationError, "does not load"):
            verify.verify_tflite(truncated, self.model, self.verify_images,
                                 verify.ERROR_BOUNDS["float32"])

    def test_reflect_padding_matches_numpy_for_any_size(self):
        for height, width, multiple in ((5, 7, 4), (3, 2, 16), (1, 6, 8), (8, 8, 4)):
            image = np.arange(height * width * 2, dtype=np.float32).reshape(1, height, width, 2)
            padded, top, left = serving.reflect_pad_to_multiple(tf.constant(image), multiple)
            pad_h, pad_w = (-height) % multiple, (-width) % multiple
            expected = np.pad(image, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                      (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                              mode="reflect")
            self.assertAllEqual(padded, expected)
            self.assertEqual((int(top), int(left)), (pad_h // 2, pad_w // 2))

    def test_bad_requests_raise_clear_errors(self):
        with self.assertRaisesRegex(ValueError, "Unknown TFLite variant"):
            export.export_generator(self.model, os.path.join(self.tmp, "x"), tflite="int4")
        unet = unet_generator(num_downs=5, ngf=4)
        with self.assertRaisesRegex(ValueError, "multiple of 32"):
            export.export_generator(unet, os.path.join(self.tmp, "y"), tflite_size=48)
        with self.assertRaisesRegex(FileExistsError, "overwrite"):
            export.export_generator(self.model, self.export_dir)
        with self.assertRaisesRegex(FileNotFoundError, "does not exist"):
            export.export_run(os.path.join(self.tmp, "missing"), os.path.join(self.tmp, "z"))
        os.makedirs(os.path.join(self.tmp, "empty_run"), exist_ok=True)
        with self.assertRaisesRegex(FileNotFoundError, "No generators found"):
            export.export_run(os.path.join(self.tmp, "empty_run"), os.path.join(self.tmp, "z"))

    def test_export_run_gives_one_export_per_generator(self):
        run = os.path.join(self.tmp, "cyclegan_run")
        os.makedirs(os.path.join(run, "generators"))
        self.model.save(os.path.join(run, "generators", "AtoB.keras"))
        self.model.save(os.path.join(run, "generators", "BtoA.keras"))
        with open(os.path.join(run, "flags.cfg"), "w") as f:
            f.write("--model=cycle_gan\n")
        out = os.path.join(self.tmp, "saved_models", "cyclegan")
        manifests = export.export_run(run, out, tflite=(), verify=False)
        self.assertEqual(set(manifests), {"AtoB", "BtoA"})
        for name in ("AtoB", "BtoA"):
            self.assertTrue(os.path.isfile(os.path.join(out, name, "1", "saved_model.pb")))
            self.assertTrue(manifests[name]["source"]["checkpoint"].endswith(name + ".keras"))
        self.assertTrue(os.path.isfile(os.path.join(out, "flags.cfg")))

    def test_cli_exports_and_verifies_a_run(self):
        run = os.path.join(self.tmp, "pix2pix_run")
        os.makedirs(os.path.join(run, "generators"))
        self.model.save(os.path.join(run, "generators", "generator.keras"))
        out = os.path.join(self.tmp, "saved_models", "pix2pix")
        # Relative paths, as the README writes them (the SavedModel check runs in another
        # working directory), then again with --overwrite over the good export.
        args = ["--checkpoint_dir=pix2pix_run", "--output_dir=saved_models/pix2pix",
                "--tflite=float32", f"--tflite_size={TFLITE_SIZE}"]
        for extra in ([], ["--overwrite"]):
            result = run_cli("export", *args, *extra, cwd=self.tmp)
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            with open(os.path.join(out, "generator", "manifest.json")) as f:
                manifest = json.load(f)
            self.assertLessEqual(
                manifest["tflite"]["float32"]["verification"]["max_abs_error"], 1e-4)
            self.assertIn("max abs error", result.stderr)
            self.assertEqual(sorted(os.listdir(os.path.join(out, "generator"))),
                             ["1", "float32.tflite", "manifest.json"])
        self.assertEqual(os.listdir(out), ["generator"])  # no partial or old folder left

        missing = run_cli("export", f"--checkpoint_dir={run}_missing", f"--output_dir={out}_2")
        self.assertEqual(missing.returncode, 2)
        self.assertIn("does not exist", missing.stderr)
        self.assertNotIn("Traceback", missing.stderr)

    def test_failed_overwrite_keeps_the_previous_export_and_leaves_no_partial_folder(self):
        target = os.path.join(self.tmp, "keep", "generator")
        export.export_generator(self.model, target, tflite=(), verify=False)
        with open(os.path.join(target, "manifest.json")) as f:
            before = f.read()
        with mock.patch.object(export, "verify_saved_model",
                               side_effect=verify.ExportVerificationError("simulated")):
            with self.assertRaisesRegex(verify.ExportVerificationError, "simulated"):
                export.export_generator(self.model, target, tflite=(), overwrite=True)
        with open(os.path.join(target, "manifest.json")) as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(os.listdir(os.path.dirname(target)), ["generator"])
        self.assertTrue(os.path.isfile(os.path.join(target, "1", "saved_model.pb")))


if __name__ == "__main__":
    tf.test.main()
