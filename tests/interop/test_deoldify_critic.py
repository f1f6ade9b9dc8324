"""DeOldify's critic in Keras (kgan.models.deoldify_critic) and its conversion
(kgan.interop.deoldify_weights.load_deoldify_critic) against the logits REAL PyTorch computed for
tests/fixtures/deoldify/critic.pth (``custom_gan_critic(nf=8)``, DeOldify's key names; outputs in
critic_outputs.npz, written by tests/fixtures/make_deoldify_fixtures.py) and the output of its
first down block (self-attention): within 1e-4 (measured 1.8e-7) with spectral-normed and with
plain convs; spectral norm left unfolded and swapped self-attention query/key each break the
bound. At DeOldify's size (nf 256) the Keras critic has
DeOldify's 94,555,649 trainable parameters; describe_checkpoint and kgan.convert name it."""

import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from helpers import ROOT, run_cli

from kgan.interop import deoldify_weights as dw
from kgan.interop import pytorch_weights as pw
from kgan.models.deoldify_critic import deoldify_critic

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")
CRITIC = os.path.join(FIXTURES, "critic.pth")
TOLERANCE = 1e-4


def _worst_error(model):
    """The largest difference from PyTorch over the logits and the first down block's output
    (its self-attention; the spectral-normed critic shrinks the logits to about 0.06)."""
    both = keras.Model(model.inputs, [model.output, model.get_layer("critic_4_2").output])
    worst = 0.0
    with np.load(os.path.join(FIXTURES, "critic_outputs.npz")) as data:
        for i in range(2):
            x = data[f"critic/input_{i}"]
            logits, features = (np.asarray(y) for y in both(x, training=False))
            for actual, expected in ((logits.reshape(len(x), -1), data[f"critic/output_{i}"]),
                                     (features, data[f"critic/features_{i}"])):
                assert actual.shape == expected.shape, (actual.shape, expected.shape)
                worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


class DeOldifyCriticTest(tf.test.TestCase):

    def test_full_size_parameters_are_deoldifys(self):
        model = deoldify_critic()
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        self.assertEqual(trainable, 94_555_649)
        del model

    def test_converted_critic_equals_pytorch(self):
        for sn in (True, False):
            with self.subTest(spectral_norm=sn):
                model = dw.load_deoldify_critic(CRITIC, spectral_norm=sn)
                self.assertLess(_worst_error(model), TOLERANCE)
        # The spectral-normed critic carries DeOldify's power-iteration vector.
        u = pw.read_state_dict(CRITIC)["4.0.weight_u"]
        wrapper = dw.load_deoldify_critic(CRITIC).get_layer("critic_4_0_sn")
        self.assertAllClose(np.asarray(wrapper.vector_u)[0], u)

    def test_unfolded_spectral_norm_or_swapped_attention_break_the_bound(self):
        with mock.patch.object(dw, "fold_spectral_norm", lambda w, u, v: w):
            self.assertGreater(_worst_error(dw.load_deoldify_critic(CRITIC)), TOLERANCE)
        real = dw._assignments

        def swapped(model, reader, prefix_of):
            pairs = real(model, reader, prefix_of)
            attention = model.get_layer("critic_4_2")
            q, k = attention.query.kernel, attention.key.kernel
            return [(k if v is q else q if v is k else v, value) for v, value in pairs]

        with mock.patch.object(dw, "_assignments", swapped):
            self.assertGreater(_worst_error(dw.load_deoldify_critic(CRITIC)), TOLERANCE)

    def test_described_and_refused_as_a_generator(self):
        text, flags = pw.describe_checkpoint(pw.read_state_dict(CRITIC))
        self.assertIn("DeOldify's critic", text)
        self.assertEqual(flags, "--discriminator=deoldify_critic")
        with self.assertRaisesRegex(pw.WeightMismatchError, "not DeOldify's critic"):
            dw.load_deoldify_critic(os.path.join(FIXTURES, "video.pth"))

    def test_kgan_convert_writes_the_critic(self):
        out = os.path.join(self.get_temp_dir(), "crit")
        result = run_cli("convert", f"--pytorch={CRITIC}", "--discriminator=deoldify_critic",
                         f"--output_dir={out}")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        model = keras.saving.load_model(os.path.join(out, "discriminator.keras"),
                                        safe_mode=True, compile=False)
        self.assertLess(_worst_error(model), TOLERANCE)
