"""kgan.serving.runs: loading ``.keras`` files that may come from someone else. They load with
``safe_mode=True``: a Lambda layer (pickled Python code) or a class kgan does not register is
refused with one line, by the library and by every CLI that takes ``--model``."""

import json
import os
import tempfile
import zipfile

import keras
import tensorflow as tf
from helpers import photo, run_cli

from kgan.core.errors import KganError
from kgan.models import resnet_generator
from kgan.serving import runs


def lambda_model(path):
    """A .keras file whose Lambda layer holds pickled Python code."""
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Lambda(lambda x: x * 0.5)(inputs)
    keras.Model(inputs, outputs).save(path)
    return path


def unknown_class_model(path):
    """A kgan generator whose config names a class from another module (``os.system``)."""
    clean = path + ".clean.keras"
    resnet_generator(n_blocks=1, ngf=4).save(clean)
    with zipfile.ZipFile(clean) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = config["config"]["layers"][1]
                layer["module"], layer["class_name"], layer["registered_name"] = (
                    "os", "system", "system")
                data = json.dumps(config).encode()
            target.writestr(item, data)
    os.remove(clean)
    return path


class SafeLoadingTest(tf.test.TestCase):

    def test_lambda_and_unknown_classes_are_refused_in_one_line(self):
        folder = tempfile.mkdtemp()
        for path, words in ((lambda_model(os.path.join(folder, "lambda.keras")),
                             "contains a Lambda layer (Python code)"),
                            (unknown_class_model(os.path.join(folder, "unknown.keras")),
                             "names a layer or class kgan does not provide")):
            with self.assertRaises(KganError) as raised:
                runs.load_generator(path)
            message = str(raised.exception)
            self.assertIn(os.path.basename(path), message)
            self.assertIn(words, message)
            self.assertIn("safe_mode=True", message)
            self.assertNotIn("\n", message)

    def test_clis_refuse_an_unsafe_model_with_one_line(self):
        folder = tempfile.mkdtemp()
        path = lambda_model(os.path.join(folder, "lambda.keras"))
        run = os.path.join(folder, "run")
        os.makedirs(os.path.join(run, "generators"))
        lambda_model(os.path.join(run, "generators", "generator.keras"))
        image = os.path.join(folder, "photo.png")
        keras.utils.save_img(image, photo(32, 32))
        model = f"--model={path}"
        for module, args in (("translate", [model, f"--input={image}", f"--output={folder}/o"]),
                             ("colorize", [model, f"--input={image}", f"--output={folder}/o2"]),
                             ("evaluate", [model, "--max_images=1"]),
                             ("export", [f"--checkpoint_dir={run}",
                                         f"--output_dir={folder}/export"])):
            result = run_cli(module, *args)
            self.assertEqual(result.returncode, 2, f"{module}: {result.stderr[-2000:]}")
            lines = result.stderr.strip().splitlines()
            self.assertLen(lines, 1, f"{module}: {result.stderr}")
            self.assertRegex(lines[0], r"(lambda|generator)\.keras: it contains a Lambda layer")


if __name__ == "__main__":
    tf.test.main()
