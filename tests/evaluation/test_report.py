"""kgan.evaluation.report: scalars read back from real TensorBoard event files, curves plotted
against
the run's steps, and report pages whose every link points at a written file."""

import html.parser
import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.evaluation import report


def write_events(log_dir, steps, tags, image=False):
    """Writes ``tags`` (name -> function of the step) with tf.summary at ``steps``."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for step in steps:
            for tag, value in tags.items():
                tf.summary.scalar(tag, value(step), step=step)
            if image:
                tf.summary.image("images/A", np.zeros((1, 8, 8, 3), np.uint8), step=step)
    writer.close()


class LinkCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path):
    collector = LinkCollector()
    with open(path, encoding="utf-8") as f:
        source = f.read()
    collector.feed(source)
    return collector.links, "".join(collector.text), source


def images(seed, height=20, width=28):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3)]


class ReadScalarsTest(tf.test.TestCase):

    def test_tf2_tensor_summaries_are_read_with_their_steps(self):
        log_dir = os.path.join(self.get_temp_dir(), "run", "logs")
        write_events(log_dir, [0, 20, 40], {"loss/G_A": lambda s: 1.0 / (s + 1),
                                           "lr": lambda s: 2e-4}, image=True)
        scalars = report.read_scalars(os.path.dirname(log_dir))
        self.assertEqual(set(scalars), {"loss/G_A", "lr"})  # the image summary is skipped
        steps, values = scalars["loss/G_A"]
        self.assertAllEqual(steps, [0, 20, 40])
        self.assertAllClose(values, [1.0, 1 / 21, 1 / 41])
        self.assertAllClose(scalars["lr"][1], [2e-4] * 3)

    def test_resumed_runs_merge_and_sub_runs_get_a_prefix(self):
        run = os.path.join(self.get_temp_dir(), "resumed")
        write_events(os.path.join(run, "logs"), [0, 10, 20], {"loss/x": lambda s: 1.0})
        time.sleep(1.1)  # a new event file name (its name holds the time in seconds)
        write_events(os.path.join(run, "logs"), [20, 30], {"loss/x": lambda s: 2.0})
        write_events(os.path.join(run, "pretrain_g", "logs"), [5], {"loss/content": lambda s: 3.})
        self.assertLen(os.listdir(os.path.join(run, "logs")), 2)
        scalars = report.read_scalars(run)
        self.assertEqual(set(scalars), {"loss/x", "pretrain_g/loss/content"})
        self.assertAllEqual(scalars["loss/x"][0], [0, 10, 20, 30])
        self.assertAllClose(scalars["loss/x"][1], [1, 1, 2, 2])  # step 20: the later write

    def test_no_events_gives_nothing(self):
        self.assertEqual(report.read_scalars(self.get_temp_dir()), {})


class PlotTest(tf.test.TestCase):

    def test_curves_have_the_run_steps_on_the_x_axis(self):
        scalars = {"loss/a": (np.array([0, 100, 200]), np.array([3.0, 2.0, 1.0])),
                   "speed/images_per_s": (np.array([0, 100]), np.array([1.0, 2.0])),
                   "lr": (np.array([100, 200]), np.array([1e-3, 5e-4]))}
        path = os.path.join(self.get_temp_dir(), "curves.png")
        drawn = report.plot_curves(scalars, path)
        self.assertEqual(set(drawn), {"loss/a", "lr"})  # speed is not a training curve
        self.assertAllEqual(drawn["loss/a"][""], [0, 100, 200])
        self.assertAllEqual(drawn["lr"][""], [100, 200])
        with Image.open(path) as image:
            self.assertEqual(image.format, "PNG")
            self.assertGreater(image.size[0], 300)

    def test_several_runs_share_panels(self):
        path = os.path.join(self.get_temp_dir(), "both.png")
        drawn = report.plot_curves({"a": {"loss/x": (np.array([0, 5]), np.array([1., 2.]))},
                                    "b": {"loss/x": (np.array([0, 9]), np.array([2., 1.]))}},
                                   path)
        self.assertAllEqual(drawn["loss/x"]["a"], [0, 5])
        self.assertAllEqual(drawn["loss/x"]["b"], [0, 9])
        self.assertTrue(os.path.isfile(path))

    def test_nothing_to_plot_writes_no_file(self):
        path = os.path.join(self.get_temp_dir(), "none.png")
        self.assertEqual(report.plot_curves({}, path), {})
        self.assertFalse(os.path.exists(path))


class RunReportTest(tf.test.TestCase):

    def test_page_links_existing_full_size_images_metrics_and_curves(self):
        run = os.path.join(self.get_temp_dir(), "my run")
        write_events(os.path.join(run, "logs"), [0, 50, 100], {"loss/G": lambda s: s / 100})
        a, b, c = images(0)
        examples = [("cat <b>&", a, b, c), ("no target", b, a, None)]
        metrics = {"model": {"psnr": 24.97, "ssim": 0.729},
                   "degraded_input": {"psnr": 24.12, "ssim": 0.678}, "num_images": 2,
                   "protocol": "text"}
        path = report.write_run_report(run, examples, metrics)
        self.assertEqual(path, os.path.join(run, "report.html"))
        links, text, source = parse_page(path)
        self.assertNotIn("<b>&", source)  # names are escaped
        self.assertIn("cat <b>&", text)
        for link in links:
            self.assertFalse(os.path.isabs(link), link)
            self.assertTrue(os.path.isfile(os.path.join(run, link)), link)
        pngs = sorted({l for l in links if l.endswith(".png")})
        self.assertLen(pngs, 6)  # 3 + 2 example images, 1 plot
        written = {}
        for link in pngs:
            with Image.open(os.path.join(run, link)) as image:
                written[os.path.basename(link)] = np.asarray(image)
        self.assertAllEqual(written["cat__b_input.png"], a)  # full size, lossless
        self.assertAllEqual(written["cat__b_target.png"], c)
        self.assertAllEqual(written["no_target_output.png"], a)
        self.assertNotIn("no_target_target.png", written)
        self.assertIn("24.97", text)
        # num_images is a setting of the evaluation, not a method: no stray metrics row.
        self.assertEqual([name for name, _ in report.metrics_rows(metrics)],
                         ["model", "degraded_input"])
        self.assertEqual(report.metrics_rows({"fid": 3.0}), [("", {"fid": 3.0})])
        self.assertIn("degraded_input", text)
        self.assertIn("curves.png", " ".join(links))
        self.assertEqual([f for f in os.listdir(run) if f.startswith(".tmp_")], [])

    def test_a_run_without_logs_says_so(self):
        run = os.path.join(self.get_temp_dir(), "empty")
        path = report.write_run_report(run, [], None)
        _, text, _ = parse_page(path)
        self.assertIn("No TensorBoard scalars", text)
        self.assertIn("No held-out images", text)

    def test_bad_images_are_refused(self):
        with self.assertRaisesRegex(ValueError, "uint8"):
            report.write_run_report(self.get_temp_dir(), [("x", np.zeros((4, 4, 3)), None)])


class ComparisonReportTest(tf.test.TestCase):

    def test_one_column_per_run_same_rows(self):
        root = self.get_temp_dir()
        runs = []
        for i, name in enumerate(("full", "gan only")):
            run_dir = os.path.join(root, f"run{i}")
            write_events(os.path.join(run_dir, "logs"), [0, 10 * (i + 1)],
                         {"loss/G_A": lambda s: 1.0})
            a, b, c = images(i)
            runs.append(report.RunSummary(name, run_dir, [("chelsea", a, b, c),
                                                          ("motorcycle", c, a, b)],
                                          {"held-out": {"psnr_AtoB": 20.0 + i}}))
        path = report.write_comparison_report(os.path.join(root, "cmp", "compare.html"), runs)
        links, text, source = parse_page(path)
        for link in links:
            self.assertTrue(os.path.isfile(os.path.join(root, "cmp", link)), link)
        self.assertEqual(source.count("<tr><th>chelsea</th>"), 1)
        row = source.split("<tr><th>chelsea</th>")[1].split("</tr>")[0]
        self.assertEqual(row.count("<img"), 4)  # input, target, one output per run
        self.assertIn("gan only", text)
        self.assertIn("21.00", text)
        self.assertIn("curves.png", " ".join(links))

    def test_needs_a_run(self):
        with self.assertRaisesRegex(ValueError, "at least one run"):
            report.write_comparison_report(os.path.join(self.get_temp_dir(), "x.html"), [])


class HeldOutExamplesTest(tf.test.TestCase):

    def test_examples_are_the_generator_outputs_in_uint8(self):
        from kgan.models import build_generator

        generator = build_generator("resnet_6blocks", ngf=4)
        rng = np.random.default_rng(0)
        inputs = rng.uniform(-1, 1, (3, 20, 24, 3)).astype(np.float32)  # 20 % 4 == 0, 24 too
        targets = rng.uniform(-1, 1, (3, 20, 24, 3)).astype(np.float32)
        dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(2)
        examples = report.held_out_examples(generator, dataset, n=3, names=["a", "b"])
        self.assertEqual([e[0] for e in examples], ["a", "b", "held-out 3"])
        expected = np.clip(np.round((generator(inputs).numpy() + 1) * 127.5), 0, 255)
        for i, (_, x, y, t) in enumerate(examples):
            self.assertEqual(x.dtype, np.uint8)
            self.assertAllEqual(x, np.round((inputs[i] + 1) * 127.5))
            self.assertAllClose(y, expected[i], atol=1)
            self.assertAllEqual(t, np.round((targets[i] + 1) * 127.5))

    def test_full_size_uint8_pairs_and_inputs_without_targets(self):
        from kgan.models import build_generator

        generator = build_generator("resnet_6blocks", ngf=4)
        rng = np.random.default_rng(1)
        photo = rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)  # padded to 32 x 44 inside
        (name, x, y, t), = report.held_out_examples(generator, [(photo, photo)], n=5)
        self.assertAllEqual(x, photo)
        self.assertAllEqual(t, photo)
        self.assertEqual(y.shape, photo.shape)
        (_, _, _, target), = report.held_out_examples(generator, [photo[None]], n=1)
        self.assertIsNone(target)
