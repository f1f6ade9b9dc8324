"""tf.data pipelines: image folders, TFDS, the built-in sample photos, and crappify pairs.

Every dataset builder returns ``(dataset, DatasetInfo)``; batches hold float32 NHWC images in
[-1, 1]. Problems a user can fix raise ``DataError`` with one clear message.
"""

from kgan.data.augment import PREPROCESS_MODES, check_preprocess, transform
from kgan.data.crappify import (DEFAULT_DEGRADATIONS, DEGRADATIONS, crappify, crappify_array,
                                crappify_folder, parse_degradations, restoration_dataset)
from kgan.data.folders import DIRECTIONS, paired_dataset, unpaired_dataset
from kgan.data.images import (IMAGE_EXTENSIONS, DataError, ImageNotFoundError, ImageReadError,
                              image_size, list_images, load_image, load_image_with_alpha,
                              write_image)
from kgan.data.samples import TEST_PHOTOS, TRAIN_PHOTOS, sample_mapping, sample_photos
from kgan.data.sources import (DatasetInfo, ImageSource, measure_throughput, read_image_folder,
                               scan_folder)
from kgan.data.tfds_source import tfds_image_stream

__all__ = ["PREPROCESS_MODES", "check_preprocess", "transform", "DEFAULT_DEGRADATIONS",
           "DEGRADATIONS", "crappify", "crappify_array", "crappify_folder", "parse_degradations",
           "restoration_dataset", "DIRECTIONS", "paired_dataset", "unpaired_dataset",
           "IMAGE_EXTENSIONS", "DataError", "ImageNotFoundError", "ImageReadError", "image_size",
           "list_images", "load_image", "load_image_with_alpha", "write_image", "TEST_PHOTOS",
           "TRAIN_PHOTOS", "sample_mapping", "sample_photos", "DatasetInfo", "ImageSource",
           "measure_throughput", "read_image_folder", "scan_folder", "tfds_image_stream"]
