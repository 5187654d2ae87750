"""Plain PyTorch-on-CPU reference of meshrl's DQN step, for the speed comparison.

The same loop as `cargo bench --bench agent` (src/experiment/table5.rs, `run_cell`), with
one gradient update per environment step:

  per step: draw a state per service; epsilon-greedy action from the Q network(s);
            one forward pass of the simulator MLP 9 -> 512 -> 512 -> 512 -> 2 on the
            (rules, threads, calls) rows; reward qps * failure_rate; push to each
            agent's replay buffer (10 000); one Adam update (lr 5e-5) on a batch of 32
            per agent, loss = sum over agents of MSE(Q(s, a), r) (gamma 0); target
            network copied every 250 updates.

  call   : one agent, state 7 rules + threads (8), 16 actions (S1's calls grid),
           Q network 8 -> 512 -> 512 -> 16.
  call*5 : five services; shared SNet (8 + 5 one-hot -> 512, ReLU), a PNet per service
           (512 -> 512 -> 16); one optimiser over SNet and the five PNets.

Weights are random: speed does not depend on them. Not part of the tests. Run:

  pip install torch numpy
  python3 benches/reference/dqn_step.py [--steps 300] [--threads 1]

and compare with `cargo bench --bench agent` on the same machine (both on one core by
default, as `meshrl run` trains each cell on one core).
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

HIDDEN = 512
ACTIONS = 16
BATCH = 32
BUFFER = 10_000


class Replay:
    def __init__(self, dim):
        self.s = np.zeros((BUFFER, dim), np.float32)
        self.a = np.zeros(BUFFER, np.int64)
        self.r = np.zeros(BUFFER, np.float32)
        self.n = 0
        self.i = 0

    def push(self, s, a, r):
        self.s[self.i], self.a[self.i], self.r[self.i] = s, a, r
        self.i = (self.i + 1) % BUFFER
        self.n = min(self.n + 1, BUFFER)

    def sample(self, rng):
        idx = rng.integers(0, self.n, BATCH)
        return torch.from_numpy(self.s[idx]), torch.from_numpy(self.a[idx]), torch.from_numpy(self.r[idx])


class Role(nn.Module):
    """SNet plus one PNet per agent (a single agent is a role of one)."""

    def __init__(self, state_dim, agents):
        super().__init__()
        self.snet = nn.Linear(state_dim, HIDDEN)
        self.pnets = nn.ModuleList(
            nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, ACTIONS)) for _ in range(agents)
        )

    def q(self, n, states):
        return self.pnets[n](torch.relu(self.snet(states)))


def simulator():
    return nn.Sequential(
        nn.Linear(9, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 2)
    )


def run(services, steps, seed=1):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    state_dim = 8 + (services if services > 1 else 0)
    online, target, sim = Role(state_dim, services), Role(state_dim, services), simulator()
    target.load_state_dict(online.state_dict())
    adam = torch.optim.Adam(online.parameters(), lr=5e-5)
    buffers = [Replay(state_dim) for _ in range(services)]
    updates = 0
    start = None
    for step in range(steps + BATCH):
        if step == BATCH:  # time from the first update on
            start = time.perf_counter()
        states = rng.standard_normal((services, state_dim)).astype(np.float32)
        if services > 1:
            states[:, 8:] = np.eye(services, dtype=np.float32)
        eps = max(0.05, 1.0 - step / max(1, 0.1 * steps))
        with torch.no_grad():
            s = torch.from_numpy(states)
            h = torch.relu(online.snet(s))
            actions = [int(online.pnets[n](h[n : n + 1]).argmax()) for n in range(services)]
            actions = [int(rng.integers(ACTIONS)) if rng.random() < eps else a for a in actions]
            inputs = torch.from_numpy(rng.standard_normal((services, 9)).astype(np.float32))
            out = sim(inputs)
            rewards = (out[:, 0].clamp(min=0) * out[:, 1].clamp(0, 1)).numpy()
        for n in range(services):
            buffers[n].push(states[n], actions[n], rewards[n])
        if buffers[0].n >= BATCH:
            loss = 0
            for n in range(services):
                bs, ba, br = buffers[n].sample(rng)
                q = online.q(n, bs).gather(1, ba[:, None]).squeeze(1)
                loss = loss + nn.functional.mse_loss(q, br)
            adam.zero_grad()
            loss.backward()
            adam.step()
            updates += 1
            if updates % 250 == 0:
                target.load_state_dict(online.state_dict())
    return steps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (meshrl: one core per cell)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name, services in [("call", 1), ("call*5", 5)]:
        rates = sorted(run(services, args.steps, seed=r) for r in range(args.repeats))
        print(f"{name}: {rates[len(rates) // 2]:.1f} steps/s (median of {args.repeats}; min {rates[0]:.1f}, max {rates[-1]:.1f}); torch {torch.__version__}, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
