//! A fixed-size replay buffer: the newest transitions replace the oldest.

use rand::Rng;

/// One interaction of one agent; states are already scaled for the network.
#[derive(Debug, Clone)]
pub struct Transition {
    pub state: Vec<f32>,
    pub action: usize,
    pub reward: f32,
    pub next_state: Vec<f32>,
    /// The episode ended here: no future reward follows.
    pub done: bool,
}

/// A sampled batch, row-major, ready for tensors.
pub struct Batch {
    pub states: Vec<f32>,
    pub actions: Vec<u32>,
    pub rewards: Vec<f32>,
    pub next_states: Vec<f32>,
    pub dones: Vec<bool>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct ReplayBuffer {
    capacity: usize,
    state_dim: usize,
    states: Vec<f32>,
    next_states: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    next: usize,
    len: usize,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, state_dim: usize) -> ReplayBuffer {
        ReplayBuffer {
            capacity,
            state_dim,
            states: vec![0.0; capacity * state_dim],
            next_states: vec![0.0; capacity * state_dim],
            actions: vec![0; capacity],
            rewards: vec![0.0; capacity],
            dones: vec![false; capacity],
            next: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Same capacity and state size (a checkpoint's buffer fits this one's place).
    pub fn same_shape(&self, other: &ReplayBuffer) -> bool {
        (self.capacity, self.state_dim) == (other.capacity, other.state_dim)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, t: Transition) {
        let (i, d) = (self.next, self.state_dim);
        self.states[i * d..(i + 1) * d].copy_from_slice(&t.state);
        self.next_states[i * d..(i + 1) * d].copy_from_slice(&t.next_state);
        self.actions[i] = t.action as u32;
        self.rewards[i] = t.reward;
        self.dones[i] = t.done;
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// `n` transitions drawn uniformly with replacement.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Batch {
        let d = self.state_dim;
        let mut b = Batch {
            states: Vec::with_capacity(n * d),
            actions: Vec::with_capacity(n),
            rewards: Vec::with_capacity(n),
            next_states: Vec::with_capacity(n * d),
            dones: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let i = rng.random_range(0..self.len);
            b.states.extend_from_slice(&self.states[i * d..(i + 1) * d]);
            b.next_states.extend_from_slice(&self.next_states[i * d..(i + 1) * d]);
            b.actions.push(self.actions[i]);
            b.rewards.push(self.rewards[i]);
            b.dones.push(self.dones[i]);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keeps_the_newest_transitions() {
        let mut buf = ReplayBuffer::new(3, 1);
        for i in 0..5 {
            buf.push(Transition { state: vec![i as f32], action: i, reward: i as f32, next_state: vec![0.0], done: false });
        }
        assert_eq!(buf.len(), 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let b = buf.sample(200, &mut rng);
        let mut seen: Vec<u32> = b.actions.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, vec![2, 3, 4]);
        assert!(b.states.iter().zip(&b.rewards).all(|(s, r)| s == r));
    }
}
