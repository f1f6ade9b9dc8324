"""kgan.training.trainers.critic: the critic pretrained as a real-vs-generated classifier."""

import tensorflow as tf

from kgan.models import build_generator, critic
from kgan.training.trainers.base import adam
from kgan.training.trainers.critic import CriticPretrainer


class CriticPretrainTest(tf.test.TestCase):

    def test_critic_learns_to_separate_real_from_generated(self):
        tf.keras.utils.set_random_seed(0)
        generator = build_generator("unet_128", ngf=4, norm="none", use_dropout=False)
        trainer = CriticPretrainer(generator, critic(nf=8))
        trainer.compile(adam(1e-3, 0.9, 0.99))
        clean = tf.random.uniform((4, 128, 128, 3), -1, 1)
        data = (clean, clean)
        logs = [trainer.train_step(data) for _ in range(30)]
        self.assertLess(float(logs[-1]["critic"]), float(logs[0]["critic"]))
        self.assertGreater(float(logs[-1]["accuracy"]), 0.9)


if __name__ == "__main__":
    tf.test.main()
