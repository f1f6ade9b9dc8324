"""kgan.interop.torch_pickle: state dicts read back in both formats without torch, hostile pickles
refused before anything runs, corrupt files named; with torch installed, the same files
compared with torch.load both ways."""

import collections
import os
import pickle
import tempfile
import zipfile

import numpy as np
import tensorflow as tf

from kgan.core.errors import KganError
from kgan.interop import torch_pickle

try:
    import torch
except ImportError:  # the torch comparisons skip with the reason
    torch = None


def _state():
    rng = np.random.default_rng(0)
    return collections.OrderedDict([
        ("model.1.weight", rng.standard_normal((4, 3, 7, 7)).astype(np.float32)),
        ("model.1.bias", rng.standard_normal(4).astype(np.float32)),
        ("model.2.running_var", rng.uniform(0.5, 2, 4).astype(np.float64)),
        ("model.2.num_batches_tracked", np.array(7, np.int64)),
        ("half", rng.standard_normal((2, 5)).astype(np.float16)),
        ("mask", np.array([True, False, True])),
        ("empty", np.zeros((0, 3), np.float32)),
    ])


class _Exploit:
    """Pickles as a call of os.system, which a general unpickler would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class RoundTripTest(tf.test.TestCase):

    def test_both_formats_round_trip_values_dtypes_and_order(self):
        state = _state()
        with tempfile.TemporaryDirectory() as tmp:
            for legacy in (False, True):
                path = os.path.join(tmp, f"net_{legacy}.pth")
                torch_pickle.save_state_dict(state, path, legacy=legacy)
                with open(path, "rb") as f:
                    head = f.read(4)
                self.assertEqual(head == b"PK\x03\x04", not legacy)
                loaded = torch_pickle.load_state_dict(path)
                self.assertEqual(list(loaded), list(state))
                for name, value in state.items():
                    self.assertEqual(loaded[name].dtype, value.dtype, name)
                    self.assertEqual(loaded[name].shape, value.shape, name)
                    np.testing.assert_array_equal(loaded[name], value)

    def test_truncated_and_foreign_files_are_named(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "net.pth")
            torch_pickle.save_state_dict(_state(), path)
            cut = os.path.join(tmp, "cut.pth")
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(cut, "w") as dst:
                for name in src.namelist():
                    data = src.read(name)
                    dst.writestr(name, data[:10] if name.endswith("data/0") else data)
            with self.assertRaisesRegex(torch_pickle.CheckpointError, "truncated"):
                torch_pickle.load_state_dict(cut)
            legacy = os.path.join(tmp, "legacy.pth")
            torch_pickle.save_state_dict(_state(), legacy, legacy=True)
            with open(legacy, "rb") as f:
                data = f.read()
            with open(cut, "wb") as f:
                f.write(data[:-100])
            with self.assertRaises(torch_pickle.CheckpointError):
                torch_pickle.load_state_dict(cut)
            text = os.path.join(tmp, "text.pth")
            with open(text, "w") as f:
                f.write("not a checkpoint")
            with self.assertRaisesRegex(torch_pickle.CheckpointError, "not a PyTorch"):
                torch_pickle.load_state_dict(text)
            plain = os.path.join(tmp, "list.pth")
            with open(plain, "wb") as f:
                f.write(pickle.dumps(torch_pickle.LEGACY_MAGIC, protocol=2))
                f.write(pickle.dumps(torch_pickle.LEGACY_PROTOCOL, protocol=2))
                f.write(pickle.dumps({"little_endian": True}, protocol=2))
                f.write(pickle.dumps([1, 2], protocol=2))
                f.write(pickle.dumps([], protocol=2))
            with self.assertRaisesRegex(torch_pickle.CheckpointError, "not a state dict"):
                torch_pickle.load_state_dict(plain)
        with self.assertRaises(FileNotFoundError):
            torch_pickle.load_state_dict(os.path.join(tmp, "missing.pth"))


class RefusalTest(tf.test.TestCase):

    def _assert_refused(self, path, marker, global_name):
        with self.assertRaises(torch_pickle.UnsafeCheckpointError) as caught:
            torch_pickle.load_state_dict(path)
        self.assertIn(global_name, str(caught.exception))
        self.assertIsInstance(caught.exception, KganError)
        self.assertFalse(os.path.exists(marker), "the pickle's code ran")

    def test_any_other_global_is_refused_in_both_formats(self):
        with tempfile.TemporaryDirectory() as tmp:
            marker = os.path.join(tmp, "pwned")
            payload = pickle.dumps(collections.OrderedDict(w=_Exploit(marker)), protocol=2)
            legacy = os.path.join(tmp, "legacy.pth")
            with open(legacy, "wb") as f:
                for value in (torch_pickle.LEGACY_MAGIC, torch_pickle.LEGACY_PROTOCOL,
                              {"little_endian": True}):
                    f.write(pickle.dumps(value, protocol=2))
                f.write(payload)
                f.write(pickle.dumps([], protocol=2))
            self._assert_refused(legacy, marker, f"{os.system.__module__}.system")
            archive = os.path.join(tmp, "zip.pth")
            with zipfile.ZipFile(archive, "w") as z:
                z.writestr("archive/data.pkl", payload)
                z.writestr("archive/version", "3\n")
            self._assert_refused(archive, marker, "system")
            # Even the header pickles go through the restricted reader.
            header = os.path.join(tmp, "header.pth")
            with open(header, "wb") as f:
                f.write(pickle.dumps(_Exploit(marker), protocol=2))
            self._assert_refused(header, marker, "system")
            # Names close to the allowed ones are refused too.
            for module, name in (("builtins", "eval"), ("torch", "load"),
                                 ("torch._utils", "_rebuild_qtensor"),
                                 ("collections", "namedtuple")):
                path = os.path.join(tmp, f"{name}.pth")
                with zipfile.ZipFile(path, "w") as z:
                    z.writestr("archive/data.pkl",
                               b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")
                self._assert_refused(path, marker, f"{module}.{name}")


class TorchComparisonTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        if torch is None:
            self.skipTest("torch is not installed: the torch.load comparisons need it")

    def test_torch_saved_files_read_as_torch_reads_them(self):
        generator = torch.Generator().manual_seed(0)
        state = collections.OrderedDict([
            ("conv.weight", torch.randn(4, 3, 3, 3, generator=generator)),
            ("transposed", torch.randn(4, 6, generator=generator).t()),
            ("slice", torch.randn(10, generator=generator)[3:7]),
            ("half", torch.randn(3, generator=generator).half()),
            ("bf16", torch.randn(5, generator=generator).bfloat16()),
            ("count", torch.tensor(9)),
            ("flags", torch.tensor([True, False])),
        ])
        with tempfile.TemporaryDirectory() as tmp:
            for legacy in (False, True):
                path = os.path.join(tmp, f"t_{legacy}.pth")
                torch.save(state, path, _use_new_zipfile_serialization=not legacy)
                ours = torch_pickle.load_state_dict(path)
                theirs = torch.load(path, weights_only=True)
                self.assertEqual(list(ours), list(theirs))
                for name, value in theirs.items():
                    expected = value.float().numpy() if value.dtype == torch.bfloat16 else (
                        value.numpy())
                    self.assertEqual(ours[name].dtype, expected.dtype, name)
                    np.testing.assert_array_equal(ours[name], expected)

    def test_files_written_here_load_in_torch(self):
        state = _state()
        with tempfile.TemporaryDirectory() as tmp:
            for legacy in (False, True):
                path = os.path.join(tmp, f"k_{legacy}.pth")
                torch_pickle.save_state_dict(state, path, legacy=legacy)
                loaded = torch.load(path, weights_only=True)
                self.assertIsInstance(loaded, collections.OrderedDict)
                self.assertEqual(list(loaded), list(state))
                for name, value in state.items():
                    np.testing.assert_array_equal(loaded[name].numpy(), value)
