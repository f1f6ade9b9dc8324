"""Image-quality metrics: PSNR and SSIM against ground truth, FID and KID between image sets.

Protocol (stated because it changes the numbers; see REFERENCE.md section 5):

- PSNR / SSIM: float images in [-1, 1], mapped to [0, 1]; all three RGB channels; the full
  image with no border crop; SSIM with an 11x11 Gaussian window (sigma 1.5, k1 0.01, k2 0.03),
  as ``tf.image.ssim``. One value per image; callers average over images.
- FID / KID: 2048-d pool features of Keras InceptionV3 (``include_top=False, pooling="avg"``)
  on images resized to 299x299 bilinearly. Inception expects inputs in [-1, 1], which is
  already kgan's image range, so no further preprocessing is applied. FID is the Frechet
  distance of Gaussians fitted to the two feature sets (statistics accumulated in float64,
  streaming: memory is O(d^2) whatever the number of images). KID is the unbiased MMD^2 with
  the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018), averaged
  over random subsets; it keeps at most ``max_kid_features`` features per set, a uniform
  reservoir sample of the stream, so memory stays bounded too.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from kgan.core.errors import KganError
from kgan.core.weights import resolve_weights_file

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_SIZE = 299


class InceptionWeightsError(KganError, ValueError):
    """Raised when the InceptionV3 weights FID/KID need are not on disk."""


def _to_unit(images):
    return (tf.cast(images, tf.float32) + 1.0) / 2.0


def psnr(a, b, max_val=2.0):
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        a, b: float tensors (N, H, W, C) or (H, W, C) in [-1, 1].
        max_val: the dynamic range of the inputs (2.0 for [-1, 1]; equal to PSNR on [0, 1]
            images with peak 1).

    Returns:
        A float32 tensor of shape (N,) (or a scalar for single images). Identical images give
        ``inf``.
    """
    return tf.image.psnr(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=max_val)


def ssim(a, b):
    """Structural similarity per image (RGB, full image, 11x11 Gaussian window).

    Args:
        a, b: float tensors (N, H, W, C) or (H, W, C) in [-1, 1], at least 11 pixels per side.

    Returns:
        A float32 tensor of shape (N,) (or a scalar for single images), 1.0 for identical images.
    """
    height, width = a.shape[-3], a.shape[-2]
    if (height is not None and height < 11) or (width is not None and width < 11):
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {height}x{width}.")
    return tf.image.ssim(_to_unit(a), _to_unit(b), max_val=1.0)


def inception_weights_path(weights="imagenet"):
    """Resolves ``--inception_weights`` to a file path (or None for random weights).

    Args:
        weights: ``imagenet`` (the Keras cache file), a path to an ``.h5`` weights file, or
            ``none`` / None (random weights; only meaningful for tests).

    Returns:
        The path of an existing weights file, or None.

    Raises:
        InceptionWeightsError: when the file is not there. Nothing is ever downloaded.
    """
    return resolve_weights_file(
        weights, INCEPTION_WEIGHTS_FILE, InceptionWeightsError,
        imagenet_message="FID/KID need the ImageNet InceptionV3 weights, but {path} does not "
        "exist (kgan never downloads them). Place {filename} (from "
        "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/) in that "
        "folder, or pass --inception_weights=/path/to/that/file.h5.",
        path_message="--inception_weights={weights}: no such file. Pass 'imagenet' (the Keras "
        "cache file {filename}) or the path of that .h5 file.")


def inception_feature_extractor(weights="imagenet"):
    """Builds the InceptionV3 pool-feature function used by FID and KID.

    Args:
        weights: as ``inception_weights_path``. ``none`` gives random weights, which make the
            numbers meaningless; use it only for tests.

    Returns:
        A function mapping float images (N, H, W, 3) in [-1, 1] to float32 features (N, 2048).
    """
    import keras

    path = inception_weights_path(weights)
    if path is None:
        logging.warning("InceptionV3 with RANDOM weights (--inception_weights=none): FID/KID "
                        "values are meaningless; use this only for tests.")
    model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=path,
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))

    @tf.function(reduce_retracing=True)
    def features(images):
        images = tf.image.resize(tf.cast(images, tf.float32), (INCEPTION_SIZE, INCEPTION_SIZE),
                                 method="bilinear")
        return tf.cast(model(tf.clip_by_value(images, -1.0, 1.0), training=False), tf.float32)

    return features


def sqrtm_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition.

    Args:
        matrix: (d, d) symmetric PSD array.

    Returns:
        The symmetric PSD (d, d) float64 array ``s`` with ``s @ s == matrix`` (negative
        eigenvalues from round-off are clipped to 0).
    """
    matrix = np.asarray(matrix, np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2):
    """``trace(sqrtm(sigma1 @ sigma2))`` for two covariance matrices.

    ``sigma1 @ sigma2`` is not symmetric, but it is similar to the PSD matrix
    ``sqrt(sigma1) @ sigma2 @ sqrt(sigma1)``, whose eigenvalues are therefore those of the
    product; summing their square roots avoids a general (complex) matrix square root.
    """
    root1 = sqrtm_psd(sigma1)
    middle = root1 @ np.asarray(sigma2, np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID formula).

    Returns:
        ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrt(sigma1 sigma2))`` as a float,
        clipped at 0 (round-off can make identical sets slightly negative).
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
             - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return max(float(value), 0.0)


def polynomial_kernel(x, y, degree=3, coef0=1.0):
    """The KID kernel ``(x.y / d + coef0) ** degree`` between rows of x and y."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x, y, degree=3, coef0=1.0):
    """Unbiased squared MMD between two equally sized feature sets with the polynomial kernel.

    ``sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
    - 2 sum_{i,j} k(x_i, y_j) / m^2``.
    """
    m = len(x)
    if m < 2 or len(y) != m:
        raise ValueError(f"mmd2_unbiased needs two sets of equal size >= 2, got {m} and {len(y)}.")
    k_xx = polynomial_kernel(x, x, degree, coef0)
    k_yy = polynomial_kernel(y, y, degree, coef0)
    k_xy = polynomial_kernel(x, y, degree, coef0)
    off_diagonal = m * (m - 1)
    return float((k_xx.sum() - np.trace(k_xx)) / off_diagonal
                 + (k_yy.sum() - np.trace(k_yy)) / off_diagonal
                 - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(features1, features2, num_subsets=100, subset_size=1000, seed=0):
    """KID: the unbiased polynomial-kernel MMD^2 averaged over random subsets.

    Args:
        features1, features2: (n1, d) and (n2, d) feature arrays.
        num_subsets: random subsets drawn (without replacement inside a subset).
        subset_size: subset size, capped at min(n1, n2).
        seed: seed of the subset draws.

    Returns:
        ``(mean, std)`` of the per-subset MMD^2 estimates.
    """
    features1 = np.asarray(features1, np.float64)
    features2 = np.asarray(features2, np.float64)
    m = min(subset_size, len(features1), len(features2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images in each set, got {len(features1)} and "
                         f"{len(features2)}.")
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(num_subsets):
        x = features1[rng.choice(len(features1), m, replace=False)]
        y = features2[rng.choice(len(features2), m, replace=False)]
        estimates.append(mmd2_unbiased(x, y))
    return float(np.mean(estimates)), float(np.std(estimates))


class FeatureStatistics:
    """Streams feature batches: float64 sums for mean/covariance, a bounded sample for KID.

    Args:
        max_kid_features: features kept for KID, as a uniform reservoir sample of the stream.
        seed: seed of the reservoir sampling.
    """

    def __init__(self, max_kid_features=10000, seed=0):
        self.count = 0
        self.total = None
        self.outer = None
        self.max_kid_features = int(max_kid_features)
        self.kept = []
        self._rng = np.random.default_rng(seed)

    def update(self, features):
        """Adds a (n, d) batch of features."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2:
            raise ValueError(f"features must be (n, d), got shape {features.shape}.")
        if self.total is None:
            self.total = np.zeros(features.shape[1])
            self.outer = np.zeros((features.shape[1], features.shape[1]))
        self.total += features.sum(axis=0)
        self.outer += features.T @ features
        for row in features.astype(np.float32):
            self.count += 1
            if len(self.kept) < self.max_kid_features:
                self.kept.append(row)
            else:
                slot = self._rng.integers(self.count)
                if slot < self.max_kid_features:
                    self.kept[slot] = row

    def mean_and_covariance(self):
        """Returns the mean (d,) and the unbiased covariance (d, d) of the features seen."""
        if self.count < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {self.count}.")
        mean = self.total / self.count
        covariance = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return mean, covariance

    def kid_features(self):
        """Returns the kept (reservoir-sampled) features as an (m, d) array."""
        return np.stack(self.kept)


def _image_batches(images):
    """Yields float image batches from a tf.data.Dataset / iterable of batches or arrays."""
    for batch in images:
        if isinstance(batch, (tuple, list)):
            raise ValueError("FID/KID take datasets of image batches, not (input, target) "
                             "pairs; map the dataset to the images you want to score.")
        batch = tf.convert_to_tensor(batch)
        if batch.shape.rank == 3:
            batch = batch[tf.newaxis]
        yield batch


def feature_statistics(images, feature_fn, max_images=None, max_kid_features=10000):
    """Runs ``feature_fn`` over a stream of image batches and accumulates its statistics.

    Args:
        images: a tf.data.Dataset or iterable of float image batches (N, H, W, 3) in [-1, 1].
        feature_fn: maps an image batch to (N, d) features (e.g.
            ``inception_feature_extractor()``).
        max_images: stop after this many images (None: the whole stream; it must be finite).
        max_kid_features: features kept for KID.

    Returns:
        A ``FeatureStatistics``.
    """
    stats = FeatureStatistics(max_kid_features)
    for batch in _image_batches(images):
        if max_images is not None:
            left = max_images - stats.count
            if left <= 0:
                break
            batch = batch[:left]
        features = feature_fn(batch)
        stats.update(features.numpy() if hasattr(features, "numpy") else features)
    return stats


def fid_kid(real_images, fake_images, feature_fn=None, inception_weights="imagenet",
            max_images=None, kid_subsets=100, kid_subset_size=1000, max_kid_features=10000):
    """FID and KID between two image sets.

    Args:
        real_images, fake_images: tf.data.Datasets or iterables of float image batches in
            [-1, 1] (any size; resized for Inception).
        feature_fn: the feature function; default ``inception_feature_extractor(
            inception_weights)``. Injectable for tests.
        inception_weights: ``imagenet``, a path, or ``none`` (random; tests only).
        max_images: cap on the images read from each set.
        kid_subsets, kid_subset_size: KID's subset estimator.
        max_kid_features: features kept per set for KID.

    Returns:
        A dict with ``fid``, ``kid``, ``kid_std``, ``num_real`` and ``num_fake``.
    """
    if feature_fn is None:
        feature_fn = inception_feature_extractor(inception_weights)
    real = feature_statistics(real_images, feature_fn, max_images, max_kid_features)
    fake = feature_statistics(fake_images, feature_fn, max_images, max_kid_features)
    return fid_kid_from_statistics(real, fake, kid_subsets, kid_subset_size)


def fid_kid_from_statistics(real, fake, kid_subsets=100, kid_subset_size=1000):
    """FID and KID from two ``FeatureStatistics``.

    Returns:
        A dict with ``fid``, ``kid``, ``kid_std``, ``num_real`` and ``num_fake``.
    """
    fid = frechet_distance(*real.mean_and_covariance(), *fake.mean_and_covariance())
    kid, kid_std = kernel_inception_distance(real.kid_features(), fake.kid_features(),
                                             kid_subsets, kid_subset_size)
    return {"fid": fid, "kid": kid, "kid_std": kid_std, "num_real": real.count,
            "num_fake": fake.count}
