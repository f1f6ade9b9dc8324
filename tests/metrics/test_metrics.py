"""Tests for kgan.metrics.image: PSNR/SSIM, the FID matrix square root, KID's estimator, streaming."""

import os

import numpy as np
import scipy.linalg
import tensorflow as tf

from kgan.metrics import image as metrics


def _random_covariance(rng, d, n=40):
    x = rng.normal(size=(n, d))
    return np.cov(x, rowvar=False)


class PsnrSsimTest(tf.test.TestCase):

    def test_psnr_matches_hand_computation(self):
        a = tf.zeros((1, 16, 16, 3))
        b = tf.fill((1, 16, 16, 3), 0.2)  # error 0.2 on a range of 2 -> 0.1 on [0, 1]
        self.assertAllClose(metrics.psnr(a, b), [20.0], atol=1e-3)

    def test_ssim_identical_is_one_and_noise_lowers_it(self):
        rng = np.random.default_rng(0)
        a = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
        self.assertAllClose(metrics.ssim(a, a), [1.0, 1.0], atol=1e-5)
        noisy = tf.clip_by_value(a + tf.constant(rng.normal(0, 0.3, a.shape), tf.float32), -1, 1)
        self.assertAllLess(metrics.ssim(a, noisy), 0.9)

    def test_ssim_too_small_is_a_clear_error(self):
        with self.assertRaisesRegex(ValueError, "at least 11x11"):
            metrics.ssim(tf.zeros((1, 8, 8, 3)), tf.zeros((1, 8, 8, 3)))


class FrechetTest(tf.test.TestCase):

    def test_sqrtm_psd_matches_scipy(self):
        cov = _random_covariance(np.random.default_rng(1), 6)
        self.assertAllClose(metrics.sqrtm_psd(cov), scipy.linalg.sqrtm(cov).real, atol=1e-8)

    def test_trace_sqrt_product_matches_scipy(self):
        rng = np.random.default_rng(2)
        s1, s2 = _random_covariance(rng, 8), _random_covariance(rng, 8)
        expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
        self.assertAllClose(metrics.trace_sqrt_product(s1, s2), expected, rtol=1e-8)

    def test_frechet_distance_matches_reference_formula(self):
        rng = np.random.default_rng(3)
        f1, f2 = rng.normal(size=(50, 5)), rng.normal(0.5, 2.0, size=(60, 5))
        mu1, mu2 = f1.mean(0), f2.mean(0)
        s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
        expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                    - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
        self.assertAllClose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-8)


class KidTest(tf.test.TestCase):

    def test_mmd2_unbiased_by_hand(self):
        x = np.array([[1.0, 0.0], [0.0, 1.0]])
        y = np.array([[1.0, 1.0], [0.0, 0.0]])
        k = lambda a, b: (np.dot(a, b) / 2 + 1) ** 3
        # m = 2: one off-diagonal pair per set (counted twice, divided by m(m-1) = 2).
        k_xx = k(x[0], x[1])
        k_yy = k(y[0], y[1])
        k_xy = sum(k(a, b) for a in x for b in y) / 4
        self.assertAllClose(metrics.mmd2_unbiased(x, y), k_xx + k_yy - 2 * k_xy)

    def test_kid_with_one_full_subset_equals_mmd(self):
        rng = np.random.default_rng(4)
        x, y = rng.normal(size=(7, 3)), rng.normal(1.0, size=(7, 3))
        mean, std = metrics.kernel_inception_distance(x, y, num_subsets=1, subset_size=100)
        self.assertAllClose(mean, metrics.mmd2_unbiased(x, y))
        self.assertEqual(std, 0.0)


class HandComputedFidKidTest(tf.test.TestCase):
    """FID and KID of known features against values worked out by hand."""

    def test_fid_of_a_square_and_its_scaled_shifted_copy(self):
        # Real: the corners of a 2x2 square: mean (1, 1), unbiased covariance 4/3 I. Fake:
        # 2 * real + (3, 0): mean (5, 2), covariance 16/3 I. FID = |(4, 1)|^2 + tr(4/3 I)
        # + tr(16/3 I) - 2 tr(sqrt(64/9 I)) = 17 + 8/3 + 32/3 - 32/3 = 59/3.
        real = np.array([[0, 0], [2, 0], [0, 2], [2, 2]], np.float32)
        fake = 2 * real + np.array([3, 0], np.float32)
        result = metrics.fid_kid([real], [fake], feature_fn=lambda batch: batch,
                                 kid_subsets=3)
        self.assertAllClose(result["fid"], 59 / 3, rtol=1e-9, atol=1e-9)
        self.assertEqual((result["num_real"], result["num_fake"]), (4, 4))
        # KID on the whole sets (every subset is the whole set, so std 0), kernel
        # (x.y / 2 + 1)^3 summed by hand-written loops.
        k = lambda a, b: (float(a @ b) / 2 + 1) ** 3  # noqa: E731
        m = 4
        within = sum(k(a, b) for i, a in enumerate(real) for j, b in enumerate(real) if i != j)
        within += sum(k(a, b) for i, a in enumerate(fake) for j, b in enumerate(fake) if i != j)
        across = sum(k(a, b) for a in real for b in fake)
        self.assertAllClose(result["kid"], within / (m * (m - 1)) - 2 * across / m ** 2,
                            rtol=1e-9)
        self.assertAllClose(result["kid_std"], 0.0, atol=1e-9)

    def test_kid_of_two_one_dimensional_pairs(self):
        # x = {0, 2}, y = {1, 3}, k(a, b) = (a b + 1)^3: k(0, 2) = 1, k(1, 3) = 64; across
        # k(0, 1) + k(0, 3) + k(2, 1) + k(2, 3) = 1 + 1 + 27 + 343 = 372.
        # MMD^2 = 2 * 1 / 2 + 2 * 64 / 2 - 2 * 372 / 4 = 1 + 64 - 186 = -121.
        kid, std = metrics.kernel_inception_distance([[0.0], [2.0]], [[1.0], [3.0]],
                                                     num_subsets=4)
        self.assertEqual((kid, std), (-121.0, 0.0))
        fid = metrics.frechet_distance([0.0], [[2.0]], [2.0], [[8.0]])
        # (0 - 2)^2 + 2 + 8 - 2 sqrt(16) = 4 + 10 - 8 = 6.
        self.assertAllClose(fid, 6.0, rtol=1e-9)


class StreamingTest(tf.test.TestCase):

    def test_streaming_statistics_match_numpy(self):
        rng = np.random.default_rng(5)
        features = rng.normal(size=(23, 4))
        stats = metrics.FeatureStatistics(max_kid_features=5)
        for start in range(0, 23, 6):
            stats.update(features[start:start + 6])
        mean, cov = stats.mean_and_covariance()
        self.assertAllClose(mean, features.mean(0))
        self.assertAllClose(cov, np.cov(features, rowvar=False))
        self.assertEqual(stats.kid_features().shape, (5, 4))
        self.assertEqual(stats.count, 23)

    def test_fid_kid_identical_sets_near_zero_and_shift_detected(self):
        rng = np.random.default_rng(6)
        images = rng.uniform(-1, 1, (24, 12, 12, 3)).astype("float32")
        feature_fn = lambda x: tf.reshape(tf.image.resize(x, (3, 3)), (tf.shape(x)[0], -1))
        batches = lambda a: tf.data.Dataset.from_tensor_slices(a).batch(5)
        same = metrics.fid_kid(batches(images), batches(images), feature_fn=feature_fn,
                               kid_subsets=3, kid_subset_size=10)
        self.assertLess(same["fid"], 1e-6)
        self.assertEqual(same["num_real"], 24)
        shifted = metrics.fid_kid(batches(images), batches(np.clip(images + 0.5, -1, 1)),
                                  feature_fn=feature_fn, kid_subsets=3, kid_subset_size=10,
                                  max_images=20)
        self.assertGreater(shifted["fid"], 0.5)
        self.assertGreater(shifted["kid"], 0.0)
        self.assertEqual(shifted["num_fake"], 20)

    def test_inception_extractor_random_weights_gives_2048_features(self):
        features = metrics.inception_feature_extractor("none")(tf.zeros((2, 32, 32, 3)))
        self.assertEqual(features.shape, (2, 2048))

    def test_missing_inception_weights_is_a_clear_error(self):
        os.environ["KERAS_HOME"] = self.get_temp_dir()
        try:
            with self.assertRaisesRegex(metrics.InceptionWeightsError, metrics.INCEPTION_WEIGHTS_FILE):
                metrics.inception_feature_extractor("imagenet")
        finally:
            del os.environ["KERAS_HOME"]
        with self.assertRaisesRegex(metrics.InceptionWeightsError, "no such file"):
            metrics.inception_weights_path("/nonexistent/weights.h5")


if __name__ == "__main__":
    tf.test.main()
