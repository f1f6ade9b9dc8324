"""``python -m kgan.evaluate``: scores a generator against ground truth beside simple baselines
(PSNR/SSIM; FID/KID with Inception weights). See kgan.evaluation.evaluate for the metrics and
protocol.

Examples::

    python -m kgan.evaluate --checkpoint_dir=runs/quickstart     # the run's own evaluation
    python -m kgan.evaluate --checkpoint_dir=runs/quickstart --require_gain_db=0.5   # CI's check
    python -m kgan.evaluate --model=runs/x/generators/generator.keras --dataroot=photos/ \\
        --degradations=downscale,jpeg --seed=0 --output_json=eval.json
    python -m kgan.evaluate --checkpoint_dir=RUN --data=paired --dataroot=facades
    python -m kgan.evaluate --checkpoint_dir=RUN --data=unpaired --dataroot=horse2zebra \\
        --metrics=fid,kid --inception_weights=imagenet

With ``--checkpoint_dir`` of a restoration run, the data flags you do not give (dataroot,
degradations, seed, crop size) come from the run's ``flags.cfg`` (its ``--eval_size``), so the
command prints the same table the run printed at the end of training.
"""

import dataclasses
import os

from absl import flags

from kgan.cli.common import model_or_run, run_cli
from kgan.colorization.colorizer import (check_render_factor, default_render_factor,
                                         recommended_render_factor)
from kgan.core.atomic import write_json
from kgan.core.errors import UsageError
from kgan.evaluation import evaluate as evaluation
from kgan.metrics import image as metrics
from kgan.serving import exports, runs
from kgan.serving.loading import load_model

DEFAULT_CROP_SIZE = 256


def define_flags():
    if "inception_weights" in flags.FLAGS:
        return
    flags.DEFINE_string("checkpoint_dir", None, "Training run to score (its --output_dir).")
    flags.DEFINE_string("model", None, "A .keras generator file, or an export whose manifest "
                        "names one (instead of --checkpoint_dir).")
    flags.DEFINE_enum("data", "restoration", ["restoration", "paired", "unpaired", "colorize"],
                      "restoration: clean images crappified on the fly; paired: test/ of "
                      "aligned pairs; unpaired: testA/testB (FID/KID only); colorize: colour "
                      "photos made gray, scored with colour metrics.")
    flags.DEFINE_integer("render_factor", None, "--data=colorize: the model runs at 16 x N px "
                         "(default: the one it was scored at, its run's --eval_size / 16, "
                         f"else {default_render_factor()}).")
    flags.DEFINE_string("dataroot", None, "Data folder (default: the run's, else the built-in "
                        "held-out photos).")
    flags.DEFINE_string("degradations", "downscale,jpeg", "Crappify degradations "
                        "(restoration; default: the run's).")
    flags.DEFINE_integer("seed", 0, "Seed of the degradations (default: the run's).")
    flags.DEFINE_integer("crop_size", None, "Tile size (restoration) or resize size (default: "
                         f"the run's --eval_size, else {DEFAULT_CROP_SIZE}).")
    flags.DEFINE_integer("batch_size", 1, "Images per batch.")
    flags.DEFINE_string("direction", "AtoB", "AtoB or BtoA: which generator / data direction.")
    flags.DEFINE_integer("max_images", None, "Score at most this many images.")
    flags.DEFINE_float("bicubic_factor", 2.0, "Downscale factor of the bicubic baseline.")
    flags.DEFINE_string("metrics", "psnr,ssim", "Comma-separated: psnr, ssim, fid, kid.")
    flags.DEFINE_string("inception_weights", "imagenet",
                        "FID/KID InceptionV3 weights: imagenet (Keras cache) or a .h5 path.")
    flags.DEFINE_string("output_json", None, "Write the results as JSON here.")
    flags.DEFINE_float("require_gain_db", None, "Exit with an error (status 2) unless the "
                       "model's PSNR beats the degraded input's by at least this many dB "
                       "(restoration and paired data; CI checks the quickstart with 0.5).")
    flags.DEFINE_float("require_colour_gain", None, "--data=colorize: exit with an error "
                       "(status 2) unless the model's colour score is below (better than) the "
                       "gray input's by at least this much.")
    flags.DEFINE_bool("report", False, "Write the picture report of --checkpoint_dir "
                      "(RUN/report.html: held-out images at full size, metrics, loss curves), "
                      "or with --runs one page comparing the runs.")
    flags.DEFINE_list("runs", [], "Run folders to compare side by side (with --report): the "
                      "same held-out images in rows, one column per run, metrics and curves.")
    flags.DEFINE_string("report_path", None, "Where the comparison page goes (default: "
                        "runs_compared.html in the first run's parent folder).")


def data_options(f):
    """The evaluation data options: given flags first, then the run's flags.cfg, then defaults.

    Returns:
        A dict with dataroot, degradations, seed and crop_size.
    """
    run_flags = runs.read_flags(f.checkpoint_dir) if f.checkpoint_dir else {}
    given = lambda name: f[name].present  # noqa: E731
    options = {
        "dataroot": f.dataroot if given("dataroot") else run_flags.get("dataroot"),
        "degradations": (f.degradations if given("degradations")
                         else run_flags.get("degradations", f.degradations)),
        "seed": f.seed if given("seed") else int(run_flags.get("seed", f.seed)),
        "crop_size": (f.crop_size if f.crop_size is not None
                      else int(run_flags.get("eval_size", DEFAULT_CROP_SIZE))),
    }
    return options


def load_generator(f):
    """The Keras generator to score (kgan.serving.loading: a run folder, a ``.keras`` file or
    an export whose manifest names its ``.keras`` source; the float graph is scored)."""
    path = model_or_run(f.model, f.checkpoint_dir)
    if f.model and os.path.isfile(os.path.join(f.model, exports.MANIFEST)):
        path = exports.keras_source(f.model) or path  # its render_factor: still its manifest's
    direction = None
    if f.checkpoint_dir and "generator" not in runs.find_generators(f.checkpoint_dir):
        direction = f.direction
    translator = load_model(path, direction)
    if getattr(translator, "model", None) is None:
        raise UsageError(f"kgan.evaluate scores a Keras generator; {path} is an export. Pass "
                         "its .keras file (--model=RUN/generators/NAME.keras) or "
                         "--checkpoint_dir=RUN.")
    return translator.model


def run_colorize(f):
    """``--data=colorize``: colour metrics of a colourisation model beside the gray-input and
    mean-chroma baselines (kgan.colorization.scoring)."""
    from kgan.colorization.scoring import evaluate_colorization_model, load_color_photos
    from kgan.data.samples import sample_color_photos
    from kgan.metrics import color as color_metrics

    generator = load_generator(f)
    truths = load_color_photos(f.dataroot, f.max_images)
    # The mean-chroma baseline's constant: the training photos' mean when they are known.
    train_uv = None if f.dataroot else color_metrics.mean_uv(sample_color_photos("train"))
    factor = check_render_factor(
        f.render_factor or recommended_render_factor(f.model or f.checkpoint_dir))
    results = evaluate_colorization_model(generator, truths, render_factor=factor,
                                          train_uv=train_uv)
    print(color_metrics.format_color_table(results))
    return results


def write_results(path, results):
    write_json(path, results)
    print(f"wrote {path}")


def metrics_table(results):
    """The printed table of a run's ``evaluation.json`` (restoration or colourisation
    metrics), or None when the run saved none."""
    from kgan.metrics import color as color_metrics

    if not results:
        return None
    if "psnr" in results.get("model", {}):
        return evaluation.format_table(results)
    return color_metrics.format_color_table(results)


def run_report(f):
    """``--report``: one run's report.html, or (``--runs``) a page comparing runs."""
    from kgan.evaluation import report
    from kgan.recipes import reporting
    from kgan.recipes.config import read_flagfile

    run_dirs = f.runs or ([f.checkpoint_dir] if f.checkpoint_dir else [])
    if not run_dirs:
        raise UsageError("--report needs --checkpoint_dir=RUN or --runs=RUN1,RUN2,...")
    summaries = []
    for run_dir in run_dirs:
        flagfile = os.path.join(run_dir, runs.FLAGFILE)
        if not os.path.isfile(flagfile):
            raise UsageError(f"{run_dir} has no flags.cfg: pass the --output_dir of a kgan.train "
                             "run.")
        config = dataclasses.replace(read_flagfile(flagfile), output_dir=run_dir)
        generators = reporting.generators_of_run(run_dir)
        if not f.runs:
            page = reporting.write_report(config, generators)
            table = metrics_table(reporting.run_metrics(run_dir))
            if table:
                print(table)
            print(f"kgan: report {page}")
            return
        summaries.append(report.RunSummary(os.path.basename(os.path.normpath(run_dir)), run_dir,
                                           reporting.examples(config, generators),
                                           reporting.run_metrics(run_dir)))
    path = f.report_path or os.path.join(os.path.dirname(os.path.abspath(run_dirs[0])),
                                         "runs_compared.html")
    print(f"kgan: comparison {report.write_comparison_report(path, summaries)}")


def require(results, margin, metric, baseline, unit=""):
    """Fails the command (``QualityError``) unless the model beats ``baseline`` by ``margin``;
    prints the gain when it does."""
    gain = evaluation.check_quality(results, margin, metric, baseline)
    print(f"kgan.evaluate: quality check passed: {metric} beats {baseline} by {gain:+.2f}{unit} "
          f"(required {margin:g}{unit})")


def run(f):
    if f.report:
        run_report(f)
        return
    if f.data == "colorize":
        if f.require_gain_db is not None:
            raise UsageError("--require_gain_db is a PSNR check; with --data=colorize use "
                             "--require_colour_gain.")
        results = run_colorize(f)
        if f.output_json:
            write_results(f.output_json, results)
        if f.require_colour_gain is not None:
            require(results, f.require_colour_gain, "colour_score", "gray_input")
        return
    if f.require_colour_gain is not None:
        raise UsageError("--require_colour_gain needs --data=colorize; a restoration check is "
                         "--require_gain_db.")
    names = evaluation.parse_metrics(f.metrics, f.data)
    if f.require_gain_db is not None and "psnr" not in names:
        raise UsageError("--require_gain_db compares PSNR: keep psnr in --metrics.")
    if any(m in evaluation.SET_METRICS for m in names):
        metrics.inception_weights_path(f.inception_weights)  # fail before any work
    generator = load_generator(f)
    options = data_options(f)
    dataset = evaluation.make_dataset(f.data, options["dataroot"], options["degradations"],
                                      options["crop_size"], options["seed"], f.batch_size,
                                      f.direction)
    results = evaluation.evaluate(generator, dataset, names, f.inception_weights, f.max_images,
                                  f.bicubic_factor,
                                  what="tiles" if f.data == "restoration" else "images")
    results["source"] = {
        "checkpoint_dir": f.checkpoint_dir, "model": f.model, "data": f.data,
        "dataroot": options["dataroot"] or "built-in held-out sample photos",
        "degradations": options["degradations"] if f.data == "restoration" else None,
        "seed": options["seed"], "crop_size": options["crop_size"]}
    print(evaluation.format_table(results))
    if f.output_json:
        write_results(f.output_json, results)
    if f.require_gain_db is not None:
        require(results, f.require_gain_db, "psnr", "degraded_input", " dB")


def main(argv=None):
    run_cli("kgan.evaluate", run, define_flags, doc=__doc__, argv=argv)
