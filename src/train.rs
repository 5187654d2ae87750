//! Training: any [`Learner`] against any [`Environment`], epoch by epoch, beside the random
//! baseline on the same states (protocol.md section 6).
//!
//! One interaction: the groups act phase by phase (a phase observes what the earlier phases
//! chose), the model scores what they built, the learner records its rewards and trains when
//! due. The baseline takes uniformly random actions in the same state; its candidates are
//! scored once per epoch, in one batch. An epoch's ratio is the agents' total model reward
//! over the baseline's; the best epoch (highest ratio, the first on ties) keeps its
//! interactions, for validation on the ground truth and for the yardsticks.
//!
//! Random streams: the environment's states and the baseline's actions come from the caller's
//! generator, in the order state, baseline, next state; the learner draws from its own.

use indexmap::IndexMap;
use indicatif::ProgressBar;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::agent::{Clock, Continuation, Learner};
use crate::env::{Environment, EpisodeEnd, Scored, ScoredOf};
use crate::error::{Error, Result};
use crate::nan_as_null;

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub epochs: usize,
    /// Interactions per epoch (each with every slot of the state).
    pub steps_per_epoch: usize,
}

/// One per-epoch series of numbers (NaN where an epoch has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Series(#[serde(with = "nan_as_null")] pub Vec<f64>);

/// Per-epoch numbers of one training run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EpochLog {
    /// The agents' total model reward over the baseline's.
    #[serde(with = "nan_as_null")]
    pub ratio: Vec<f64>,
    /// Mean model reward per interaction and slot: the agents', the baseline's.
    #[serde(with = "nan_as_null")]
    pub rl_reward: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub baseline_reward: Vec<f64>,
    /// The learner's own diagnostics, by name, in the learner's order.
    #[serde(flatten)]
    pub diagnostics: IndexMap<String, Series>,
}

/// What a training run leaves: its log and the best epoch's interactions.
pub struct Training<C> {
    pub log: EpochLog,
    /// The best epoch's scored candidates: the agents', the baseline's (same states, same order).
    pub best_agents: Vec<Scored<C>>,
    pub best_baseline: Vec<Scored<C>>,
}

/// One epoch's scored candidates: the agents', the baseline's.
struct BestEpoch<C> {
    agents: Vec<Scored<C>>,
    baseline: Vec<Scored<C>>,
}

/// Trains `learner` on `env` for `schedule`, advancing `bar` by one per epoch.
pub fn train<E: Environment>(
    env: &E,
    learner: &mut dyn Learner,
    schedule: Schedule,
    rng: &mut ChaCha8Rng,
    bar: &ProgressBar,
) -> Result<Training<E::Candidate>> {
    let layout = env.layout();
    let total_steps = schedule.epochs * schedule.steps_per_epoch;
    let mut log = EpochLog::default();
    // The best epoch so far: its ratio, and the agents' and the baseline's interactions.
    let mut best: Option<(f64, BestEpoch<E::Candidate>)> = None;
    let mut state = env.reset(rng);
    for epoch in 0..schedule.epochs {
        let mut agents = Vec::with_capacity(schedule.steps_per_epoch * layout.slots);
        let mut baseline = Vec::with_capacity(schedule.steps_per_epoch * layout.slots);
        for t in 0..schedule.steps_per_epoch {
            let clock = Clock { step: epoch * schedule.steps_per_epoch + t, total_steps };
            let mut candidates = env.start(&state);
            for phase in &layout.phases {
                let observations: Vec<Vec<Vec<f32>>> =
                    phase.iter().map(|&g| (0..layout.slots).map(|n| env.observe(&state, &candidates, g, n)).collect()).collect();
                for (&g, obs) in phase.iter().zip(&observations) {
                    let actions = learner.act(g, obs, clock)?;
                    for (c, a) in candidates.iter_mut().zip(actions) {
                        env.apply(c, g, a);
                    }
                }
            }
            let mut scored: Vec<ScoredOf<E>> = candidates.into_iter().map(Scored::new).collect();
            env.score_model(&mut scored)?;
            let rewards = env.learning_rewards(&scored);
            // The baseline: a uniformly random action of every agent, in the same state.
            let mut random = env.start(&state);
            for c in random.iter_mut() {
                for (g, group) in layout.groups.iter().enumerate() {
                    env.apply(c, g, rng.random_range(0..group.actions));
                }
            }
            baseline.extend(random.into_iter().map(Scored::new));
            let step = env.step(&state, &scored, rng);
            for g in 0..layout.groups.len() {
                let cut: Vec<Vec<f32>>;
                let continuation = match step.end {
                    EpisodeEnd::Continues => Continuation::Continues,
                    EpisodeEnd::Terminated => Continuation::Terminated,
                    EpisodeEnd::Truncated => {
                        let next = env.start(&step.next);
                        cut = (0..layout.slots).map(|n| env.observe(&step.next, &next, g, n)).collect();
                        Continuation::Truncated(&cut)
                    }
                };
                learner.record(g, &rewards, continuation);
            }
            learner.train(clock)?;
            agents.extend(scored);
            state = match step.end {
                EpisodeEnd::Continues => step.next,
                EpisodeEnd::Terminated | EpisodeEnd::Truncated => env.reset(rng),
            };
        }
        env.score_model(&mut baseline)?;
        let rl: f64 = agents.iter().map(|p| p.model_reward).sum();
        let base: f64 = baseline.iter().map(|p| p.model_reward).sum();
        let ratio = if base > 0.0 { rl / base } else { f64::NAN };
        log.ratio.push(ratio);
        log.rl_reward.push(rl / agents.len() as f64);
        log.baseline_reward.push(base / baseline.len() as f64);
        let last = Clock { step: (epoch + 1) * schedule.steps_per_epoch - 1, total_steps };
        for (name, value) in learner.diagnostics(last) {
            // A diagnostic first reported now has had no value before.
            log.diagnostics.entry(name.to_string()).or_insert_with(|| Series(vec![f64::NAN; epoch])).0.push(value);
        }
        for series in log.diagnostics.values_mut().filter(|s| s.0.len() == epoch) {
            series.0.push(f64::NAN);
        }
        if best.as_ref().is_none_or(|b| ratio > b.0) {
            best = Some((ratio, BestEpoch { agents, baseline }));
        }
        bar.inc(1);
    }
    let (_, best) = best.ok_or_else(|| Error::config("no epoch ran"))?;
    Ok(Training { log, best_agents: best.agents, best_baseline: best.baseline })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_logs_with_missing_numbers_read_back_in_order() {
        let mut log =
            EpochLog { ratio: vec![1.5, f64::NAN], rl_reward: vec![1.0, 2.0], baseline_reward: vec![1.0, 1.0], ..Default::default() };
        log.diagnostics.insert("loss".into(), Series(vec![f64::NAN, 0.5]));
        log.diagnostics.insert("epsilon".into(), Series(vec![1.0, 0.5]));
        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(json, r#"{"ratio":[1.5,null],"rl_reward":[1.0,2.0],"baseline_reward":[1.0,1.0],"loss":[null,0.5],"epsilon":[1.0,0.5]}"#);
        let back: EpochLog = serde_json::from_str(&json).unwrap();
        assert!(back.diagnostics["loss"].0[0].is_nan() && back.ratio[1].is_nan());
        assert_eq!(back.diagnostics.keys().collect::<Vec<_>>(), ["loss", "epsilon"]);
        assert_eq!(back.diagnostics["loss"].0[1], 0.5);
    }
}

/// Both traits fit a sequential problem: a chain whose reward comes only at its end, learnt
/// by an on-policy learner (which keeps what it computed when it acted) and by DQN with
/// discounting, through the same training loop as the load search.
#[cfg(test)]
mod sequential_tests {
    use rand::SeedableRng;

    use super::*;
    use crate::agent::dqn::DqnConfig;
    use crate::agent::{Diagnostics, LearnerSpec};
    use crate::env::chain::Chain;

    /// A tabular policy gradient with a learnt baseline (REINFORCE), one table per
    /// observation: at each action it keeps the probabilities it drew from and its value
    /// estimate, and learns from them at the end of every episode.
    struct TabularReinforce {
        logits: Vec<[f64; 2]>,
        values: Vec<f64>,
        gamma: f64,
        rng: ChaCha8Rng,
        /// This episode so far: (state, action, probabilities at acting time, value estimate, reward).
        episode: Vec<(usize, usize, [f64; 2], f64, f64)>,
        acted: Option<(usize, usize, [f64; 2], f64)>,
        updates: usize,
    }

    impl TabularReinforce {
        fn new(states: usize, gamma: f64, seed: u64) -> TabularReinforce {
            let rng = ChaCha8Rng::seed_from_u64(seed);
            TabularReinforce {
                logits: vec![[0.0; 2]; states],
                values: vec![0.0; states],
                gamma,
                rng,
                episode: Vec::new(),
                acted: None,
                updates: 0,
            }
        }

        fn probabilities(&self, s: usize) -> [f64; 2] {
            let [a, b] = self.logits[s];
            let m = a.max(b);
            let (ea, eb) = ((a - m).exp(), (b - m).exp());
            [ea / (ea + eb), eb / (ea + eb)]
        }

        fn state(observation: &[f32]) -> usize {
            observation.iter().position(|&x| x == 1.0).expect("one-hot observation")
        }

        fn learn_from_episode(&mut self) {
            let mut ret = 0.0;
            for &(s, a, p, v, r) in self.episode.iter().rev() {
                ret = r + self.gamma * ret;
                let advantage = ret - v;
                for (k, logit) in self.logits[s].iter_mut().enumerate() {
                    *logit += 0.5 * advantage * (f64::from(u8::from(k == a)) - p[k]);
                }
                self.values[s] += 0.2 * (ret - self.values[s]);
            }
            self.episode.clear();
            self.updates += 1;
        }
    }

    impl Learner for TabularReinforce {
        fn act(&mut self, _group: usize, observations: &[Vec<f32>], _clock: Clock) -> Result<Vec<usize>> {
            let s = Self::state(&observations[0]);
            let p = self.probabilities(s);
            let a = usize::from(self.rng.random::<f64>() < p[1]);
            self.acted = Some((s, a, p, self.values[s]));
            Ok(vec![a])
        }

        fn act_greedy(&self, _group: usize, observations: &[Vec<f32>]) -> Result<Vec<usize>> {
            let p = self.probabilities(Self::state(&observations[0]));
            Ok(vec![usize::from(p[1] > p[0])])
        }

        fn record(&mut self, _group: usize, rewards: &[f64], continuation: Continuation) {
            let (s, a, p, v) = self.acted.take().expect("record follows act");
            self.episode.push((s, a, p, v, rewards[0]));
            if !matches!(continuation, Continuation::Continues) {
                self.learn_from_episode();
            }
        }

        fn train(&mut self, _clock: Clock) -> Result<()> {
            Ok(())
        }

        fn diagnostics(&mut self, _clock: Clock) -> Diagnostics {
            Diagnostics::from([("episodes", std::mem::take(&mut self.updates) as f64)])
        }
    }

    fn greedy_moves(chain: &Chain, learner: &dyn Learner) -> Vec<usize> {
        (0..chain.len - 1).map(|at| learner.act_greedy(0, &[chain.one_hot(at)]).unwrap()[0]).collect()
    }

    #[test]
    fn an_on_policy_learner_learns_to_walk_the_chain() {
        let chain = Chain::new(6, 20);
        let mut learner = TabularReinforce::new(chain.len, 0.9, 3);
        let schedule = Schedule { epochs: 20, steps_per_epoch: 200 };
        let training = train(&chain, &mut learner, schedule, &mut ChaCha8Rng::seed_from_u64(1), &ProgressBar::hidden()).unwrap();
        assert_eq!(greedy_moves(&chain, &learner), vec![1; chain.len - 1], "go right everywhere");
        // Walking straight right ends an episode every 5 steps (40 an epoch); a random walk
        // needs about 25 steps an episode.
        let episodes = &training.log.diagnostics["episodes"].0;
        let (first, last) = (episodes[0], *episodes.last().unwrap());
        assert!(last >= 35.0 && first + 10.0 < last, "episodes per epoch: {episodes:?}");
    }

    #[test]
    fn dqn_learns_the_chain_with_discounting_and_terminal_states() {
        let chain = Chain::new(5, 16);
        let cfg = DqnConfig {
            hidden: 32,
            learning_rate: 5e-3,
            gamma: 0.9,
            buffer_size: 2_000,
            learning_starts: 100,
            train_every: 1,
            target_update_every: 50,
            exploration_fraction: 0.5,
            ..DqnConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut learner = cfg.build(chain.layout(), &mut rng).unwrap();
        let schedule = Schedule { epochs: 10, steps_per_epoch: 300 };
        let training = train(&chain, learner.as_mut(), schedule, &mut rng, &ProgressBar::hidden()).unwrap();
        assert_eq!(greedy_moves(&chain, learner.as_ref()), vec![1; chain.len - 1], "go right everywhere");
        assert_eq!(training.log.diagnostics.keys().collect::<Vec<_>>(), ["loss", "epsilon"]);
    }
}
