"""Converts a PyTorch reference checkpoint (pytorch-CycleGAN-and-pix2pix ``latest_net_G.pth``)
to kgan: OUTPUT_DIR/generator.keras plus kgan.exporting.export's verified SavedModel, TFLite files,
optional ONNX and manifest.json.

Example::

    python -m kgan.convert --pytorch=latest_net_G.pth --generator=resnet_9blocks \
        --output_dir=saved_models/horse2zebra

DeOldify's published generators convert the same way (``--generator=deoldify_artistic``,
``deoldify_stable`` or ``deoldify_video``; the width comes from the file, the manifest records
DeOldify's render factor, 35 or 21)::

    python -m kgan.convert --pytorch=ColorizeStable_gen.pth --generator=deoldify_stable \
        --output_dir=saved_models/deoldify_stable

and DeOldify's critics with ``--discriminator=deoldify_critic`` (OUTPUT_DIR/discriminator.keras,
spectral-normed, for ``kgan.train --init_from``).

The network flags are the reference's test flags (``--netG``, ``--ngf``, ``--norm``,
``--no_dropout``); a checkpoint that does not fit them stops with one line naming the flags
that would. With ``--discriminator`` a ``latest_net_D*.pth`` becomes OUTPUT_DIR/
discriminator.keras (discriminators are not exported). The .pth file is read without PyTorch
and without unpickling anything but tensors (kgan.interop.torch_pickle).
"""

import json
import os
import time

from absl import flags, logging

from kgan.cli.common import run_cli
from kgan.core.errors import UsageError
from kgan.data.images import list_images, load_image
from kgan.exporting import export, tflite
from kgan.interop import deoldify_weights, pytorch_weights
from kgan.models import ALL_GENERATORS, DEOLDIFY_GENERATORS, DISCRIMINATORS
from kgan.models.deoldify import VARIANTS, variant_of
from kgan.serving.exports import MANIFEST

DEOLDIFY_CRITIC = "deoldify_critic"
NETWORK_FLAGS = ("pytorch", "generator", "ngf", "norm", "no_dropout", "discriminator", "ndf",
                 "n_layers_d")
EXPORT_FLAGS = ("output_dir", "export", "tflite", "tflite_size", "onnx", "verify_dir",
                "verify_max_images", "overwrite")
ALIASES = (("netG", "generator"), ("which_model_netG", "generator"), ("netD", "discriminator"),
           ("which_model_netD", "discriminator"), ("n_layers_D", "n_layers_d"))


def define_flags():
    """Defines kgan.convert's flags (idempotent)."""
    if "pytorch" in flags.FLAGS:
        return
    flags.DEFINE_string("pytorch", None, "The reference's checkpoint, e.g. "
                        "checkpoints/horse2zebra_pretrained/latest_net_G.pth.")
    flags.DEFINE_enum("generator", "resnet_9blocks", ALL_GENERATORS, "Generator "
                      "architecture (the reference's --netG), or deoldify_artistic / "
                      "deoldify_stable / deoldify_video for DeOldify's *_gen.pth files.")
    flags.DEFINE_integer("ngf", 64, "Generator filters in the first conv layer.")
    flags.DEFINE_enum("norm", "instance", ("instance", "batch", "none"),
                      "Normalisation (pix2pix models: batch).")
    flags.DEFINE_boolean("no_dropout", None, "No dropout in the generator; default: as the "
                         "checkpoint (inference never applies dropout).")
    flags.DEFINE_enum("discriminator", None, DISCRIMINATORS + (DEOLDIFY_CRITIC,),
                      "Convert a discriminator (latest_net_D*.pth) instead of a generator; "
                      f"{DEOLDIFY_CRITIC} for DeOldify's *_crit.pth critic files.")
    flags.DEFINE_integer("ndf", 64, "Discriminator filters in the first conv layer.")
    flags.DEFINE_integer("n_layers_d", 3, "Discriminator layers for --discriminator=n_layers.")
    flags.DEFINE_string("output_dir", None, "Where generator.keras and the export go, e.g. "
                        "saved_models/horse2zebra.")
    flags.DEFINE_boolean("export", True, "Export the generator (SavedModel, TFLite, ONNX) "
                         "with kgan.export; --noexport writes generator.keras only.")
    flags.DEFINE_list("tflite", list(tflite.DEFAULT_TFLITE), "TFLite variants: any of "
                      f"{', '.join(tflite.TFLITE_VARIANTS)}; empty for none.")
    flags.DEFINE_integer("tflite_size", 256, "Square input size of the TFLite files.")
    flags.DEFINE_boolean("onnx", False, "Also write model.onnx (tf2onnx, verified with "
                         "onnxruntime; needs pip install -e \".[onnx]\").")
    flags.DEFINE_string("verify_dir", None, "Folder of images to verify the export on "
                        "(default: built-in sample photos).")
    flags.DEFINE_integer("verify_max_images", 4, "At most this many --verify_dir images.")
    flags.DEFINE_boolean("overwrite", False, "Replace an existing, non-empty --output_dir.")
    for alias, name in ALIASES:
        flags.DEFINE_alias(alias, name)


def _verify_images(folder, limit):
    images = [load_image(path) for path in list_images(folder)[:limit]]
    if not images:
        raise UsageError(f"--verify_dir {folder} holds no images.")
    return images


def _render_factor(generator):
    """DeOldify's default render factor for its generators (None for the others)."""
    if generator in DEOLDIFY_GENERATORS:
        return VARIANTS[variant_of(generator)]["render_factor"]
    return None


def convert(flag_values):
    """Runs one conversion from parsed flags.

    Returns:
        ``{"keras": path, "manifest": path or None, "seconds": conversion time}``.
    """
    if not flag_values.pytorch:
        raise UsageError("--pytorch is required: the reference's latest_net_G.pth.")
    if not flag_values.output_dir:
        raise UsageError("--output_dir is required, e.g. saved_models/horse2zebra.")
    output_dir = flag_values.output_dir
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not flag_values.overwrite:
        raise UsageError(f"{output_dir} exists and is not empty; pass --overwrite or choose "
                         "another --output_dir.")
    if flag_values.onnx and flag_values.export:
        from kgan.exporting import onnx as onnx_export
        onnx_export.require()
    start = time.time()
    if flag_values.discriminator == DEOLDIFY_CRITIC:
        model = deoldify_weights.load_deoldify_critic(flag_values.pytorch)
        kind = "discriminator"
    elif flag_values.discriminator:
        model = pytorch_weights.load_pytorch_discriminator(
            flag_values.pytorch, flag_values.discriminator, ndf=flag_values.ndf,
            n_layers_d=flag_values.n_layers_d, norm=flag_values.norm)
        kind = "discriminator"
    elif flag_values.generator in DEOLDIFY_GENERATORS:
        model = deoldify_weights.load_deoldify_generator(flag_values.pytorch,
                                                         flag_values.generator)
        kind = "generator"
    else:
        use_dropout = None if flag_values.no_dropout is None else not flag_values.no_dropout
        model = pytorch_weights.load_pytorch_generator(
            flag_values.pytorch, flag_values.generator, ngf=flag_values.ngf,
            norm=flag_values.norm, use_dropout=use_dropout)
        kind = "generator"
    seconds = time.time() - start
    logging.info("Converted %s to %s (%d parameters) in %.1f s", flag_values.pytorch,
                 model.name, model.count_params(), seconds)
    keras_path = os.path.join(output_dir, f"{kind}.keras")
    export_dir = output_dir
    if flag_values.export and kind == "generator":
        # export_generator wants its folder empty; generator.keras is written after it.
        source = {"pytorch": os.path.abspath(flag_values.pytorch),
                  "flags": {name: flag_values[name].value for name in NETWORK_FLAGS}}
        verify_images = (_verify_images(flag_values.verify_dir, flag_values.verify_max_images)
                         if flag_values.verify_dir else None)
        export.export_generator(model, export_dir, tflite=flag_values.tflite,
                                tflite_size=flag_values.tflite_size,
                                verify_images=verify_images, overwrite=flag_values.overwrite,
                                source=source, onnx=flag_values.onnx,
                                render_factor=_render_factor(flag_values.generator))
    else:
        os.makedirs(output_dir, exist_ok=True)
    tmp = keras_path[:-len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, keras_path)
    manifest = os.path.join(export_dir, MANIFEST)
    return {"keras": keras_path, "manifest": manifest if os.path.isfile(manifest) else None,
            "conversion_seconds": round(seconds, 2)}


def run(flag_values):
    """Converts, then prints the written paths as one JSON line."""
    print(json.dumps(convert(flag_values)))


def main(argv=None):
    """``python -m kgan.convert``."""
    run_cli("kgan.convert", run, define_flags, doc=__doc__,
            groups=[("network (the reference's test flags)", list(NETWORK_FLAGS)),
                    ("output and export", list(EXPORT_FLAGS))], argv=argv)
