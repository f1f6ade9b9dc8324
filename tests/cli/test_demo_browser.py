"""End-to-end test of ``python -m kgan.demo`` in headless Chromium (selenium): the page is
served on a free localhost port with a tiny exported model; an image uploaded through the
page's file input comes back translated at its own size, and a non-image file gives a message
in the page. Screenshots are saved to ``$KGAN_TEST_ARTIFACTS`` (default: a temp folder) and
their paths printed.

Skipped, with the reason, when chromium, chromedriver, selenium or gradio is missing.
"""

import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import numpy as np
import tensorflow as tf
from helpers import ROOT
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--window-size=1400,1000")
WAIT_SERVER_S = 90
WAIT_RESULT_S = 40


def _missing():
    for name in ("selenium", "gradio"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install -e '.[demo,test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not found"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _artifact_dir():
    folder = os.environ.get("KGAN_TEST_ARTIFACTS",
                            os.path.join(tempfile.gettempdir(), "kgan_test_artifacts"))
    os.makedirs(folder, exist_ok=True)
    return folder


def _serve(cls, models):
    """Starts ``python -m kgan.demo`` on ``models`` and a headless Chromium for ``cls``."""
    cls.port = _free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, GRADIO_ANALYTICS_ENABLED="False",
               TF_CPP_MIN_LOG_LEVEL="2")
    cls.log = open(os.path.join(cls.root, "demo.log"), "w")
    cls.server = subprocess.Popen(
        [sys.executable, "-m", "kgan.demo", *(f"--model={m}" for m in models),
         f"--port={cls.port}"], cwd=ROOT, env=env, stdout=cls.log, stderr=subprocess.STDOUT)
    cls.url = f"http://127.0.0.1:{cls.port}/"
    deadline = time.time() + WAIT_SERVER_S
    while True:
        try:
            urllib.request.urlopen(cls.url, timeout=2).close()
            break
        except OSError:
            if cls.server.poll() is not None or time.time() > deadline:
                _stop(cls)
                raise RuntimeError(f"the demo did not start; see {cls.log.name}") from None
            time.sleep(0.5)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROME_ARGS + (f"--user-data-dir={os.path.join(cls.root, 'chrome')}",):
        options.add_argument(arg)
    cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _stop(cls):
    """Ends what ``_serve`` started."""
    driver = getattr(cls, "driver", None)
    if driver is not None:
        driver.quit()
    cls.server.terminate()
    try:
        cls.server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        cls.server.kill()
    cls.log.close()
    shutil.rmtree(cls.root, ignore_errors=True)


@unittest.skipIf(_missing(), _missing())
class DemoBrowserTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import keras

        from kgan.exporting.export import export_generator
        from kgan.models import resnet_generator

        cls.root = tempfile.mkdtemp(prefix="kgan_demo_test_")
        keras.utils.set_random_seed(0)
        model = resnet_generator(n_blocks=1, ngf=4, name="tiny_resnet")
        cls.export = os.path.join(cls.root, "export", "generator")
        export_generator(model, cls.export, tflite="", verify=False)
        _serve(cls, [os.path.dirname(cls.export)])

    @classmethod
    def tearDownClass(cls):
        _stop(cls)
        super().tearDownClass()

    def test_start_up_names_the_page_and_the_share_flag_not_gradio_code(self):
        with open(self.log.name) as handle:
            text = handle.read()
        self.assertIn(f"kgan.demo: open http://127.0.0.1:{self.port}", text)
        self.assertIn("--share", text)
        self.assertNotIn("share=True", text)

    def _upload(self, path):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(self.url)
        selector = "#kgan-upload-0 input[type=file]"
        upload = WebDriverWait(self.driver, 30).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, selector)))
        upload.send_keys(path)

    def _wait(self, condition, what):
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT_RESULT_S, poll_frequency=0.25).until(
                lambda driver: condition())
        except Exception:
            self._screenshot("failed_" + what.replace(" ", "_"))
            raise

    def _info(self):
        return self.driver.find_element("id", "kgan-info-0").text

    def _screenshot(self, name):
        path = os.path.join(_artifact_dir(), f"demo_{name}.png")
        self.driver.save_screenshot(path)
        print(f"screenshot: {path}")
        return path

    def test_uploaded_image_comes_back_translated_at_its_size(self):
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (52, 76, 3), dtype=np.uint8)  # 52 % 4 == 0, 76 too
        path = os.path.join(self.root, "photo.png")
        Image.fromarray(image).save(path)
        self._upload(path)
        script = ("return Array.from(document.querySelectorAll('#kgan-slider-0 img'))"
                  ".filter(i => i.complete && i.naturalWidth > 0)"
                  ".map(i => [i.src, i.naturalWidth, i.naturalHeight]);")
        shown = self._wait(lambda: len(self.driver.execute_script(script)) >= 2 and
                           self.driver.execute_script(script), "slider images")
        self._wait(lambda: "Translated 1 image(s)" in self._info(), "timing text")
        self._screenshot("result")
        self.assertIn("photo.png: 76×52", self._info())
        pictures = []
        for src, width, height in shown[:2]:
            self.assertEqual((width, height), (76, 52))
            with urllib.request.urlopen(src, timeout=10) as response:
                pictures.append(np.asarray(Image.open(io.BytesIO(response.read()))
                                           .convert("RGB")))
        before, after = pictures
        self.assertAllEqual(before, image)  # the slider's "before" is the input, lossless
        self.assertEqual(after.shape, image.shape)
        self.assertGreater(np.abs(after.astype(int) - image).mean(), 5.0)
        # The same output as the model's translate_uint8 signature gives.
        loaded = tf.saved_model.load(os.path.join(self.export, "1"))
        expected = loaded.signatures["translate_uint8"](images=tf.constant(image[None]))
        self.assertAllClose(after, expected["images"].numpy()[0], atol=1)

    def test_a_non_image_file_gives_a_message_in_the_page(self):
        path = os.path.join(self.root, "notes.txt")
        with open(path, "w") as f:
            f.write("not an image")
        self._upload(path)
        self._wait(lambda: "not a readable image" in self._info(), "error message")
        self._screenshot("unreadable")
        self.assertIn("notes.txt", self._info())
        self.assertIn("1 file(s) not translated", self._info())
        self.assertEqual(self.server.poll(), None)  # the server is still running


@unittest.skipIf(_missing(), _missing())
class DeOldifyTabBrowserTest(tf.test.TestCase):
    """A converted DeOldify colouriser (a tiny stand-in export) given beside another model gets
    its own tab, named after it, that colourises as DeOldify's pipeline does."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from helpers import deoldify_stand_in

        from kgan.exporting.export import export_generator
        from kgan.models import resnet_generator

        cls.root = tempfile.mkdtemp(prefix="kgan_demo_deoldify_test_")
        other = os.path.join(cls.root, "other")
        export_generator(resnet_generator(n_blocks=1, ngf=4), other, tflite="", verify=False)
        model, network = deoldify_stand_in()
        cls.network = staticmethod(network)
        cls.export = os.path.join(cls.root, "deoldify_stable")
        export_generator(model, cls.export, tflite="", verify=False, render_factor=5)
        _serve(cls, [other, cls.export])

    @classmethod
    def tearDownClass(cls):
        _stop(cls)
        super().tearDownClass()

    def test_the_deoldify_tab_colourises_like_deoldify(self):
        from fixtures import deoldify_pipeline as reference
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        image = np.random.default_rng(5).integers(0, 256, (36, 52, 3), dtype=np.uint8)
        path = os.path.join(self.root, "photo.png")
        Image.fromarray(image).save(path)
        self.driver.get(self.url)
        wait = WebDriverWait(self.driver, WAIT_RESULT_S, poll_frequency=0.25)
        tab = wait.until(ec.element_to_be_clickable(
            (By.XPATH, "//button[@role='tab' and contains(., 'DeOldify: deoldify_stable')]")))
        tab.click()
        upload = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, "#kgan-upload-1 input[type=file]")))
        upload.send_keys(path)
        script = ("return Array.from(document.querySelectorAll('#kgan-slider-1 img'))"
                  ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.src);")
        try:
            shown = wait.until(lambda d: len(d.execute_script(script)) >= 2
                               and d.execute_script(script))
            wait.until(lambda d: "Colourised 1 image(s)"
                       in d.find_element("id", "kgan-info-1").text)
        finally:
            path_png = os.path.join(_artifact_dir(), "demo_deoldify_tab.png")
            self.driver.save_screenshot(path_png)
            print(f"screenshot: {path_png}")
        with urllib.request.urlopen(shown[1], timeout=10) as response:
            after = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
        expected = reference.colorize(self.network, image, 5)  # the manifest's render factor
        self.assertLessEqual(np.abs(after.astype(int) - expected).max(), 4)
        self.assertGreater(np.std(after.astype(float) - after.mean(-1, keepdims=True)), 5.0)
