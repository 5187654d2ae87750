"""stable-baselines3 reference of meshrl's PPO update, for the speed comparison.

The same measurement as `cargo bench --bench ppo` (benches/ppo.rs): full PPO updates per
second of one agent, with SB3's defaults on both sides:

  PPO("MlpPolicy", env, n_steps=2048, batch_size=64, n_epochs=10,
      policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64])), device="cpu")

  one update = SB3's `PPO.train()` on a full rollout buffer: 10 passes over the 2048
  transitions in a fresh random order, minibatches of 64, so 320 Adam steps (forward pass,
  clipped surrogate + value loss, backward pass, `clip_grad_norm_` to 0.5, Adam step),
  plus SB3's own diagnostics and logger records.

  obs1_actions30: one observation, 30 actions (meshrl's TNSM2023 control problem);
  obs8_actions16: eight observations, 16 actions (a load-search agent).

The environment is trivial: uniform random observations in [0, 1), standard normal rewards,
no episode end, seeded. The rollouts are collected by SB3's own `learn` loop, with the
actions drawn by the current policy, and are not timed: a `PPO` subclass times `train()`
alone. The first `--warmup` updates are not counted. One difference: SB3 computes the
rollout's values step by step while collecting (untimed here), whereas meshrl's timed update
includes one batched value pass over the 2048 observations and GAE (a few per cent of it).
Weights and data are random: speed does not depend on them. Not part of the tests.

Install (a virtual environment outside the repository; the file pins what was measured):

  python3 -m venv /tmp/sb3venv
  /tmp/sb3venv/bin/pip install -r benches/reference/requirements-ppo.txt

Run (compare with `cargo bench --bench ppo` on the same machine, in the same sitting; both
on one core by default, as `meshrl run` trains each cell on one core):

  /tmp/sb3venv/bin/python benches/reference/ppo_update.py [--repeats 10] [--warmup 1] [--threads 1]
"""

import argparse
import platform
import time

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

SHAPES = [("obs1_actions30", 1, 30), ("obs8_actions16", 8, 16)]
N_STEPS, BATCH_SIZE, N_EPOCHS = 2048, 64, 10
MINIBATCHES = N_EPOCHS * -(-N_STEPS // BATCH_SIZE)


class RandomEnv(gym.Env):
    """Random observations and rewards; the episode never ends."""

    def __init__(self, obs_dim, actions):
        self.observation_space = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self.action_space = spaces.Discrete(actions)

    def _obs(self):
        return self.np_random.random(self.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(self.np_random.standard_normal()), False, False, {}


class TimedPPO(PPO):
    """SB3's PPO with each `train()` (one update) timed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_seconds = []

    def train(self):
        start = time.perf_counter()
        super().train()
        self.train_seconds.append(time.perf_counter() - start)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(obs_dim, actions, repeats, warmup, seed=1):
    model = TimedPPO(
        "MlpPolicy",
        RandomEnv(obs_dim, actions),
        n_steps=N_STEPS,
        batch_size=BATCH_SIZE,
        n_epochs=N_EPOCHS,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64])),
        device="cpu",
        seed=seed,
        verbose=0,
    )
    model.learn(total_timesteps=N_STEPS * (warmup + repeats))
    assert len(model.train_seconds) == warmup + repeats, model.train_seconds
    return [1.0 / s for s in model.train_seconds[warmup:]]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=10, help="timed updates per shape")
    p.add_argument("--warmup", type=int, default=1, help="updates before them, not counted")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (meshrl: one core per cell)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{cpu_name()}; stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}, "
        f"gymnasium {gym.__version__}, numpy {np.__version__}; {args.threads} thread(s)"
    )
    for name, obs_dim, actions in SHAPES:
        rates = sorted(run(obs_dim, actions, args.repeats, args.warmup))
        median = rates[len(rates) // 2]
        print(
            f"ppo_update/{name}: {median:.3f} updates/s, {median * MINIBATCHES:.0f} gradient steps/s "
            f"(median of {args.repeats}; min {rates[0]:.3f}, max {rates[-1]:.3f} updates/s)"
        )


if __name__ == "__main__":
    main()
