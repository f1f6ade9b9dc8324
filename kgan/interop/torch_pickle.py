"""Reads (and writes) PyTorch ``.pth`` state dicts without PyTorch and without a general
unpickler.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file names, so a
downloaded checkpoint must never go through ``pickle.load``. ``load_state_dict`` uses a
restricted unpickler that resolves only the names a state dict needs --
``collections.OrderedDict``, ``torch._utils._rebuild_tensor(_v2)``, ``_rebuild_parameter`` and
the typed storage classes (``torch.FloatStorage`` ...) -- to harmless local stand-ins, and
refuses every other global with ``UnsafeCheckpointError``. That is the guarantee of
``torch.load(weights_only=True)``, with NumPy arrays out and no PyTorch dependency.

Both file formats are read (REFERENCE.md section 8):

- **zip** (PyTorch >= 1.6): ``<root>/data.pkl`` plus one raw storage per ``<root>/data/<key>``;
- **legacy** (older PyTorch, e.g. the reference's published models): five pickles (magic
  number, protocol version, system info, the object, the storage keys), then per storage an
  8-byte element count and its raw bytes.

``save_state_dict`` writes either format from NumPy arrays (tests make their fixtures with it,
and it hands weights back to PyTorch). Called by ``kgan.interop.pytorch_weights``.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from kgan.core.errors import KganError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# Typed storage class -> NumPy dtype. bfloat16 has no NumPy dtype: read as uint16, widened.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_STORAGE_NAMES = {np.dtype(v): k for k, v in STORAGE_DTYPES.items() if v != "bfloat16"}


class CheckpointError(KganError, ValueError):
    """A ``.pth`` file that is not a readable PyTorch state dict."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle names a global other than those a state dict needs (it could run code)."""


# ----------------------------------------------------------------------------- stand-ins


class _StorageType:
    """Stands for ``torch.<Name>Storage``: only its dtype is used."""

    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name, self.dtype = name, STORAGE_DTYPES[name]

    def __setstate__(self, state):
        raise UnsafeCheckpointError("The checkpoint tries to set the state of a storage class.")


class _Storage:
    """A storage the pickle refers to by key; its bytes are read after unpickling."""

    __slots__ = ("dtype", "key", "numel", "view")

    def __init__(self, dtype, key, numel, view=None):
        self.dtype, self.key, self.numel, self.view = dtype, key, numel, view

    def __setstate__(self, state):
        raise UnsafeCheckpointError("The checkpoint tries to set the state of a storage.")


class _Tensor:
    """A strided view of a ``_Storage``, made into a NumPy array once the bytes are read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise CheckpointError("A tensor in the checkpoint is not backed by a storage.")
        if not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
            raise CheckpointError(f"A tensor has an invalid layout: offset {offset!r}, size "
                                  f"{size!r}, stride {stride!r}.")
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)
        if len(self.size) != len(self.stride):
            raise CheckpointError(f"A tensor's size {size} and stride {stride} differ in rank.")

    def __setstate__(self, state):
        raise UnsafeCheckpointError("The checkpoint tries to set the state of a tensor.")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    if not isinstance(data, _Tensor):
        raise CheckpointError("A parameter in the checkpoint does not hold a tensor.")
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only ``_ALLOWED`` and the storage classes; storages become ``_Storage``."""

    def __init__(self, file, path, legacy):
        super().__init__(file)
        self.path, self.legacy = path, legacy
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"{self.path} names the global {module}.{name}, which a PyTorch state dict does "
            "not contain; kgan refuses to load it (unpickling it could run code). Re-save it "
            "with torch.save(model.state_dict(), path) from a trusted PyTorch.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int)):
            raise CheckpointError(f"{self.path} holds an unknown persistent id {pid!r:.200}.")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        view = pid[5] if self.legacy and len(pid) > 5 else None
        root = self.storages.setdefault(key, _Storage(storage_type.dtype, key, numel))
        if view is None:
            return root
        # Old PyTorch could save a view of a storage: (view_key, offset, view_size).
        view_key, offset, view_size = view
        return self.storages.setdefault(view_key,
                                        _Storage(storage_type.dtype, key, view_size, offset))


def _unpickle(file, path, legacy=False):
    unpickler = _RestrictedUnpickler(file, path, legacy)
    try:
        return unpickler.load(), unpickler.storages
    except (KganError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a corrupt pickle can raise almost anything
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {error}") from error


# ----------------------------------------------------------------------------- reading


def _storage_array(raw, dtype, byteorder, numel, path, key):
    """Raw bytes -> a 1-D native-endian NumPy array of ``numel`` elements."""
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, np.dtype("uint16").newbyteorder(byteorder), numel)
        return (bits.astype(np.uint32) << 16).view(np.float32)
    dtype = np.dtype(dtype).newbyteorder(byteorder)
    if len(raw) < numel * dtype.itemsize:
        raise CheckpointError(f"{path}: storage {key} has {len(raw)} bytes, fewer than its "
                              f"{numel} elements need; the file is truncated.")
    return np.frombuffer(raw, dtype, numel).astype(dtype.newbyteorder("="))


def _materialise(obj, arrays, path):
    """Replaces every ``_Tensor`` in ``obj`` (dicts, lists, tuples) by a NumPy array."""
    if isinstance(obj, _Tensor):
        storage = obj.storage
        base = arrays[storage.key]
        if storage.view is not None:  # an old-style storage view: (offset, size) of a root
            base = base[storage.view:storage.view + storage.numel]
        flat = base[obj.offset:]
        if 0 in obj.size:
            return np.zeros(obj.size, base.dtype)
        last = sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
        if last >= len(flat):
            raise CheckpointError(f"{path}: a tensor of size {obj.size} reads past the end of "
                                  f"its storage {storage.key}; the file is corrupt.")
        strides = [s * base.itemsize for s in obj.stride]
        return np.lib.stride_tricks.as_strided(flat, obj.size, strides).copy()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _materialise(value, arrays, path)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, arrays, path) for v in obj)
    if isinstance(obj, (_Storage, _StorageType)):
        raise CheckpointError(f"{path} holds a bare storage, not a state dict of tensors.")
    return obj


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint "
                                  "(expected one <root>/data.pkl).")
        root = pickles[0][:-len("data.pkl")]
        byteorder = "<"
        if root + "byteorder" in names:
            byteorder = "<" if archive.read(root + "byteorder").strip() == b"little" else ">"
        obj, storages = _unpickle(io.BytesIO(archive.read(pickles[0])), path)
        arrays = {}
        for key, storage in storages.items():
            if storage.view is not None:
                continue
            member = f"{root}data/{key}"
            if member not in names:
                raise CheckpointError(f"{path} lacks the storage {member}.")
            arrays[key] = _storage_array(archive.read(member), storage.dtype, byteorder,
                                         storage.numel, path, key)
    return _materialise(obj, arrays, path)


def _load_legacy(path):
    with open(path, "rb") as f:
        header = []
        for _ in range(3):
            value, _ = _unpickle(f, path, legacy=True)
            header.append(value)
        magic, protocol, sys_info = header
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL or not isinstance(sys_info,
                                                                                  dict):
            raise CheckpointError(f"{path} is a pickle but not a PyTorch checkpoint (no "
                                  "torch.save magic number).")
        byteorder = "<" if sys_info.get("little_endian", True) else ">"
        obj, storages = _unpickle(f, path, legacy=True)
        keys, _ = _unpickle(f, path, legacy=True)
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise CheckpointError(f"{path}: the storage key list is malformed.")
        arrays = {}
        for key in keys:
            count_bytes = f.read(8)
            if len(count_bytes) != 8:
                raise CheckpointError(f"{path} is truncated (storage {key} missing).")
            count = struct.unpack(byteorder + "q", count_bytes)[0]
            if key not in storages:
                raise CheckpointError(f"{path}: storage {key} is not used by the checkpoint.")
            storage = storages[key]
            itemsize = 2 if storage.dtype == "bfloat16" else np.dtype(storage.dtype).itemsize
            raw = f.read(count * itemsize)
            arrays[key] = _storage_array(raw, storage.dtype, byteorder, count, path, key)
    missing = [k for k, s in storages.items() if s.view is None and k not in arrays]
    if missing:
        raise CheckpointError(f"{path} lacks the storages {missing[:3]}; it is truncated.")
    return _materialise(obj, arrays, path)


def load(path):
    """Reads a ``.pth`` file safely (zip or legacy format).

    Args:
        path: the file.

    Returns:
        The saved object with every tensor as a NumPy array (dicts, lists and tuples kept).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        UnsafeCheckpointError: when the pickle names any global a state dict does not need.
        CheckpointError: when the file is not a readable PyTorch checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file {path}.")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04"):
        return _load_zip(path)
    if head[:1] == b"\x80":
        return _load_legacy(path)
    if len(head) > 262 and head[257:262] == b"ustar":
        raise CheckpointError(f"{path} is in PyTorch's pre-0.1.10 tar format; load and re-save "
                              "it with torch.save(torch.load(path), path) first.")
    raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a zip nor a pickle).")


def load_state_dict(path):
    """Reads a state dict: ``{name: np.ndarray}`` in file order.

    Raises:
        CheckpointError: when the file holds anything but a mapping of names to tensors.
        UnsafeCheckpointError: see ``load``.
    """
    return as_state_dict(load(path), path)


def as_state_dict(obj, path):
    """Checks that ``obj`` (what ``load`` read from ``path``) is a state dict; returns it as an
    OrderedDict. Raises CheckpointError otherwise."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict "
                              "(save it with torch.save(net.state_dict(), path)).")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise CheckpointError(f"{path} is not a plain state dict: {bad[0]!r} is not a tensor "
                              "(a full training checkpoint? save net.state_dict() alone).")
    return collections.OrderedDict(obj)


# ----------------------------------------------------------------------------- writing


class _PickleWriter:
    """Emits the protocol-2 pickle of a state dict with the opcodes ``torch.save`` uses, so
    the torch globals are written by name without importing torch."""

    def __init__(self, legacy):
        self.out, self.legacy = io.BytesIO(), legacy
        self.out.write(pickle.PROTO + b"\x02")

    def _global(self, module, name):
        self.out.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())

    def _str(self, text):
        data = text.encode("utf-8")
        self.out.write(pickle.BINUNICODE + struct.pack("<I", len(data)) + data)

    def _int(self, value):
        if -2 ** 31 <= value < 2 ** 31:
            self.out.write(pickle.BININT + struct.pack("<i", value))
        else:
            data = pickle.encode_long(value)
            self.out.write(pickle.LONG1 + bytes([len(data)]) + data)

    def _tuple(self, values):
        self.out.write(pickle.MARK)
        for value in values:
            self._int(value)
        self.out.write(pickle.TUPLE)

    def _empty_ordered_dict(self):
        self._global("collections", "OrderedDict")
        self.out.write(pickle.EMPTY_TUPLE + pickle.REDUCE)

    def tensor(self, key, array):
        self._global("torch._utils", "_rebuild_tensor_v2")
        self.out.write(pickle.MARK)
        self.out.write(pickle.MARK)  # the persistent id of the storage
        self._str("storage")
        self._global("torch", _STORAGE_NAMES[array.dtype])
        self._str(key)
        self._str("cpu")
        self._int(array.size)
        if self.legacy:
            self.out.write(pickle.NONE)
        self.out.write(pickle.TUPLE + pickle.BINPERSID)
        self._int(0)
        self._tuple(array.shape)
        self._tuple([int(np.prod(array.shape[i + 1:])) for i in range(array.ndim)])
        self.out.write(pickle.NEWFALSE)
        self._empty_ordered_dict()
        self.out.write(pickle.TUPLE + pickle.REDUCE)

    def state_dict(self, arrays):
        self._empty_ordered_dict()
        self.out.write(pickle.MARK)
        for index, (name, array) in enumerate(arrays.items()):
            self._str(name)
            self.tensor(str(index), array)
        self.out.write(pickle.SETITEMS + pickle.STOP)
        return self.out.getvalue()


def save_state_dict(state_dict, path, legacy=False):
    """Writes ``{name: array}`` as a PyTorch state dict that ``torch.load`` reads.

    Args:
        state_dict: names -> NumPy arrays (float32/float64/float16/int/bool dtypes).
        path: the ``.pth`` file (written atomically).
        legacy: the pre-1.6 format (``_use_new_zipfile_serialization=False``) instead of zip.
    """
    arrays = collections.OrderedDict(
        (name, np.asarray(value, order="C")) for name, value in state_dict.items())
    for name, array in arrays.items():
        if array.dtype not in _STORAGE_NAMES:
            raise CheckpointError(f"Cannot save {name}: dtype {array.dtype} has no PyTorch "
                                  "storage here.")
    payload = _PickleWriter(legacy).state_dict(arrays)
    keys = [str(i) for i in range(len(arrays))]
    tmp = path + ".tmp"
    if legacy:
        with open(tmp, "wb") as f:
            for value in (LEGACY_MAGIC, LEGACY_PROTOCOL,
                          {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                           "type_sizes": {"short": 2, "int": 4, "long": 4}}):
                f.write(pickle.dumps(value, protocol=2))
            f.write(payload)
            f.write(pickle.dumps(sorted(keys), protocol=2))
            for key in sorted(keys):
                array = arrays[list(arrays)[int(key)]]
                f.write(struct.pack("<q", array.size))
                f.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    else:
        root = os.path.splitext(os.path.basename(path))[0] or "archive"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(f"{root}/data.pkl", payload)
            archive.writestr(f"{root}/byteorder", "little")
            for key, array in zip(keys, arrays.values()):
                archive.writestr(f"{root}/data/{key}",
                                 array.astype(array.dtype.newbyteorder("<")).tobytes())
            archive.writestr(f"{root}/version", "3\n")
    os.replace(tmp, path)
