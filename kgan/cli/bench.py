"""``python -m kgan.bench``: machine peaks and a training configuration's step, memory, input
pipeline and inference speed, measured in one process (details: kgan.benchmarking.bench).

Takes every ``kgan.train`` flag (the model is built by the same recipe; ``--batch_size`` is the
global batch) plus the measurement flags below. Example::

    python -m kgan.bench --crop_size=256 --steps=5 --warmup=2 \\
        --compare=mixed_precision=mixed_bfloat16 --output_json=bench.json
"""


from absl import flags, logging

from kgan.benchmarking import bench
from kgan.cli.common import module_flag_names, run_cli
from kgan.cli.flags import FLAG_GROUPS
from kgan.cli.flags import define_flags as define_train_flags
from kgan.cli.train import config_from_flags
from kgan.core.atomic import write_json


def define_flags():
    define_train_flags()
    if "peak_reps" in flags.FLAGS:
        return
    defaults = bench.BenchOptions()
    flags.DEFINE_integer("steps", defaults.steps, "Timed steps.")
    flags.DEFINE_integer("warmup", defaults.warmup, "Untimed steps first (the first step is "
                         "reported).")
    flags.DEFINE_boolean("inference", defaults.inference, "Time generator inference (Keras, "
                         "SavedModel).")
    flags.DEFINE_boolean("tflite", defaults.tflite, "Also time a float32 TFLite generator "
                         "(XNNPACK).")
    flags.DEFINE_boolean("pipeline", defaults.pipeline, "Time the input pipeline on its own "
                         "(cycle_gan).")
    flags.DEFINE_boolean("probe", defaults.probe, "Run a short matmul peak probe after each "
                         "timed step (untimed) and report the step against the median probe: a "
                         "peak measured under the same load as the steps.")
    flags.DEFINE_integer("profile_steps", defaults.profile_steps, "Profile this many more "
                         "steps and print op time by kind (conv forward and gradients, casts, "
                         "...). With TF_NUM_INTEROP_THREADS=1 the op times add up to the step.")
    flags.DEFINE_string("compare", "", "FLAG=VALUE[,FLAG=VALUE]: run a second config with "
                        "these changes, e.g. mixed_precision=mixed_bfloat16.")
    flags.DEFINE_integer("peak_size", 2048, "Matmul peak matrix side.")
    flags.DEFINE_integer("peak_reps", 20, "Timed calls per peak (the best counts).")
    flags.DEFINE_boolean("peaks", True, "Measure the machine peaks.")
    flags.DEFINE_string("output_json", "", "Write the report as JSON here.")


def run(f):
    logging.set_verbosity(logging.WARNING)
    config = config_from_flags(f)
    options = bench.BenchOptions(steps=f.steps, warmup=f.warmup, inference=f.inference,
                                 tflite=f.tflite, pipeline=f.pipeline, probe=f.probe,
                                 probe_size=min(2048, f.peak_size),
                                 profile_steps=f.profile_steps)
    compare = bench.parse_overrides(f.compare, config, options) if f.compare else None
    report = bench.benchmark(config, options, compare, f.peak_size, f.peak_reps, f.peaks)
    print(bench.format_report(report))
    if f.output_json:
        write_json(f.output_json, report)
        print(f"wrote {f.output_json}")


def main(argv=None):
    define_flags()
    groups = [("measurement", module_flag_names("kgan.cli.bench"))] + FLAG_GROUPS
    run_cli("kgan.bench", run, define_flags, doc=__doc__, groups=groups, argv=argv)
