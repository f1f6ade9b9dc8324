"""Benchmark: how exactly kgan.convert reproduces the PyTorch reference, and how fast the
exported runtimes are, at 256x256 with the reference's ngf 64 networks.

Needs torch (the reference networks are rebuilt in tests/pytorch_reference_nets.py) plus
tf2onnx / onnxruntime::

    PYTHONPATH=. python benchmarks/convert_fidelity.py --runs=5 --output_json=/tmp/convert.json

For resnet_9blocks (instance norm, the CycleGAN models) and unet_256 (batch norm with
calibrated running statistics and dropout, the pix2pix models): random weights, saved by
torch.save in the legacy format (as the published models), converted with
``kgan.interop.pytorch_weights.load_pytorch_generator`` (timed: read + build + load), then the max
and mean absolute error against the torch network in eval mode on the two held-out sample photos
resized to 256^2. For resnet_9blocks also: the SavedModel, float32 TFLite and ONNX files
(``kgan.exporting.export`` / ``kgan.exporting.onnx``), each one's max error against Keras and its
images/s (batch 1, median of ``--runs`` after one warm-up), beside Keras and torch.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import pytorch_reference_nets as ref  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from kgan.core import measure
from kgan.exporting import onnx as onnx_export
from kgan.exporting import saved_model, tflite, verify
from kgan.interop import pytorch_weights
from kgan.serving import translators as serving  # noqa: E402


def photos(size):
    """The held-out sample photos, float32 NHWC in [-1, 1] at size x size."""
    return np.concatenate([verify.resize_square(image, size)
                           for image in verify.sample_images("test")])


def rate(fn, x, runs):
    """Images per second of ``fn`` on single images (median of ``runs`` after a warm-up)."""
    fn(x[:1])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(x[i % len(x):][:1])
        times.append(time.perf_counter() - start)
    return 1.0 / float(np.median(times))


def errors(expected, actual):
    difference = np.abs(np.asarray(expected, np.float64) - np.asarray(actual, np.float64))
    return {"max_abs_error": float(difference.max()), "mean_abs_error": float(difference.mean())}


def convert(name, net, options, tmp, x, runs):
    """Saves ``net`` as a legacy .pth, converts it; returns (keras model, figures)."""
    path = os.path.join(tmp, f"{name}.pth")
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    start = time.perf_counter()
    model = pytorch_weights.load_pytorch_generator(path, name, **options)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    actual = np.asarray(model(x, training=False))
    torch_rate = rate(lambda b: net(torch.from_numpy(b.transpose(0, 3, 1, 2))).detach(), x,
                      runs)
    figures = {"vs_pytorch": errors(expected, actual), "conversion_seconds": round(seconds, 2),
               "file_mb": round(os.path.getsize(path) / 1e6, 1),
               "parameters": int(model.count_params()),
               "torch_images_per_s": torch_rate}
    return model, figures


def runtimes(model, tmp, x, runs):
    """SavedModel, float32 TFLite and ONNX: error vs Keras and images/s."""
    expected = np.asarray(model(x, training=False))
    out = {"keras": {"images_per_s": rate(lambda b: model(b, training=False), x, runs)}}
    saved_model_dir = os.path.join(tmp, "1")
    saved_model.export_saved_model(model, saved_model_dir)
    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    run_sm = lambda b: signature(images=tf.constant(b))["images"].numpy()  # noqa: E731
    out["saved_model"] = {**errors(expected, np.concatenate([run_sm(b[None]) for b in x])),
                          "images_per_s": rate(run_sm, x, runs)}
    tflite_path = os.path.join(tmp, "float32.tflite")
    tflite.convert_tflite(model, tflite_path, "float32", x.shape[1])
    runner = serving.TFLiteRunner(tflite_path)
    out["tflite_float32"] = {**errors(expected, runner(x)), "images_per_s": rate(runner, x, runs)}
    onnx_path = os.path.join(tmp, "model.onnx")
    start = time.perf_counter()
    onnx_export.export_onnx(saved_model_dir, onnx_path)
    onnx_seconds = time.perf_counter() - start
    runner = onnx_export.OnnxRunner(onnx_path)
    out["onnx"] = {**errors(expected, np.concatenate([runner(b[None]) for b in x])),
                   "images_per_s": rate(runner, x, runs),
                   "export_seconds": round(onnx_seconds, 1)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())
    x = photos(args.size)
    report = {"machine": measure.cpu_info(), "size": args.size, "ngf": args.ngf,
              "images": len(x)}
    with tempfile.TemporaryDirectory() as tmp:
        resnet = ref.randomise(ref.ResnetGenerator(ngf=args.ngf, n_blocks=9), 0)
        model, report["resnet_9blocks"] = convert(
            "resnet_9blocks", resnet, dict(ngf=args.ngf), tmp, x, args.runs)
        report["resnet_9blocks"]["runtimes"] = runtimes(model, tmp, x, args.runs)
        unet = ref.randomise(ref.UnetGenerator(num_downs=8, ngf=args.ngf, norm="batch"), 1,
                             calibrate_shape=(2, 3, args.size, args.size))
        _, report["unet_256"] = convert("unet_256", unet,
                                        dict(ngf=args.ngf, norm="batch"), tmp, x, args.runs)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output_json:
        with open(args.output_json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
