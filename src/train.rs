//! Training: any [`Learner`] against any [`Environment`], epoch by epoch, beside the random
//! baseline on the same states (protocol.md section 6).
//!
//! One interaction: the groups act phase by phase (a phase observes what the earlier phases
//! chose), the model scores what they built, the learner records its rewards and trains when
//! due. The baseline takes uniformly random actions in the same state; its candidates are
//! scored once per epoch, in one batch. An epoch's ratio is the agents' total model reward
//! over the baseline's; the best epoch (highest ratio, the first on ties) keeps its
//! interactions, for validation on the ground truth and for the yardsticks, and the greedy
//! policy's candidates on its states: every agent's argmax with the networks as they were at
//! the end of that epoch, computed then (a later phase sees the earlier phases' greedy
//! choices). Greedy scoring draws no random numbers, so it changes nothing else.
//!
//! Random streams: the environment's states and the baseline's actions come from the
//! trainer's generator, in the order state, baseline, next state; the learner draws from
//! its own.
//!
//! A [`Trainer`] can be saved between epochs and resumed bit for bit
//! ([`Trainer::save`], [`Trainer::resume`]): its own progress (log, best epoch, state,
//! random stream) and the learner's ([`Learner::save`]).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use indicatif::ProgressBar;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::agent::{Clock, Continuation, Learner};
use crate::env::{Environment, EpisodeEnd, Scored, ScoredOf};
use crate::error::{Error, Result};
use crate::nan_as_null;

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The ratio of each slot (service) alone: `slot_ratios[n][epoch]`. With one slot it is
    /// `ratio`; with several, each has a one-slot epoch's sample size.
    #[serde(default)]
    pub slot_ratios: Vec<Series>,
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
    /// The greedy policy at the end of the best epoch on the same states, scored on the model.
    pub best_greedy: Vec<Scored<C>>,
}

/// The best epoch so far: its ratio and its scored candidates.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "C: Serialize", deserialize = "C: DeserializeOwned"))]
struct BestEpoch<C> {
    #[serde(with = "nan_as_null::scalar")]
    ratio: f64,
    agents: Vec<Scored<C>>,
    baseline: Vec<Scored<C>>,
    greedy: Vec<Scored<C>>,
}

/// Where a training run stands between epochs: everything but the learner.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize, C: Serialize", deserialize = "S: DeserializeOwned, C: DeserializeOwned"))]
struct Progress<S, C> {
    schedule: Schedule,
    epochs_done: usize,
    /// The state the next interaction starts from.
    state: S,
    rng: ChaCha8Rng,
    log: EpochLog,
    best: Option<BestEpoch<C>>,
}

/// Save a training run every `every` epochs to `path` (and resume from it if it exists).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub path: PathBuf,
    pub every: usize,
}

/// A training run of a learner on an environment, epoch by epoch.
pub struct Trainer<'e, E: Environment> {
    env: &'e E,
    progress: Progress<E::State, E::Candidate>,
}

/// The candidates the groups build in `state`, phase by phase; `choose` gives a group's
/// actions (one per slot) for its observations.
fn build<E: Environment>(
    env: &E,
    state: &E::State,
    mut choose: impl FnMut(usize, &[Vec<f32>]) -> Result<Vec<usize>>,
) -> Result<Vec<E::Candidate>> {
    let layout = env.layout();
    let mut candidates = env.start(state);
    for phase in &layout.phases {
        let observations: Vec<Vec<Vec<f32>>> =
            phase.iter().map(|&g| (0..layout.slots).map(|n| env.observe(state, &candidates, g, n)).collect()).collect();
        for (&g, obs) in phase.iter().zip(&observations) {
            for (c, a) in candidates.iter_mut().zip(choose(g, obs)?) {
                env.apply(c, g, a);
            }
        }
    }
    Ok(candidates)
}

/// One interaction in `state`: the groups act, the model scores what they built, the
/// learner records its rewards and trains when due, and `state` moves on (a fresh one from
/// `rng` when the episode ends). With `baseline`, uniformly random actions in the same
/// state are drawn there first (scored later, in one batch). Returns the scored candidates
/// and the state they were built in.
fn interact<E: Environment>(
    env: &E,
    state: &mut E::State,
    learner: &mut dyn Learner,
    clock: Clock,
    rng: &mut ChaCha8Rng,
    baseline: Option<&mut Vec<ScoredOf<E>>>,
) -> Result<(Vec<ScoredOf<E>>, E::State)> {
    let layout = env.layout();
    let candidates = build(env, state, |g, obs| learner.act(g, obs, clock))?;
    let mut scored: Vec<ScoredOf<E>> = candidates.into_iter().map(Scored::new).collect();
    env.score_model(&mut scored)?;
    let rewards = env.learning_rewards(&scored);
    if let Some(baseline) = baseline {
        let mut random = env.start(state);
        for c in random.iter_mut() {
            for (g, group) in layout.groups.iter().enumerate() {
                env.apply(c, g, rng.random_range(0..group.actions));
            }
        }
        baseline.extend(random.into_iter().map(Scored::new));
    }
    let step = env.step(state, &scored, rng);
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
    let next = match step.end {
        EpisodeEnd::Continues => step.next,
        EpisodeEnd::Terminated | EpisodeEnd::Truncated => env.reset(rng),
    };
    Ok((scored, std::mem::replace(state, next)))
}

/// Trains `learner` on `env` for `steps` interactions and nothing else: no baseline, no
/// best epoch, no greedy scoring, so the model is asked exactly once per interaction and
/// slot (a budget of ground-truth runs counts every one). States come from `rng`.
pub fn learn<E: Environment>(env: &E, learner: &mut dyn Learner, steps: usize, rng: &mut ChaCha8Rng) -> Result<()> {
    let mut state = env.reset(rng);
    for step in 0..steps {
        interact(env, &mut state, learner, Clock { step, total_steps: steps }, rng, None)?;
    }
    Ok(())
}

/// The greedy candidates of `state`: every agent's argmax, phase by phase.
pub fn greedy<E: Environment>(env: &E, learner: &dyn Learner, state: &E::State) -> Result<Vec<E::Candidate>> {
    build(env, state, |g, obs| learner.act_greedy(g, obs))
}

/// Total model reward of each slot, in a batch of whole states (slot-major within a state).
fn slot_totals<C>(batch: &[Scored<C>], slots: usize) -> Vec<f64> {
    let mut totals = vec![0.0; slots];
    for (i, s) in batch.iter().enumerate() {
        totals[i % slots] += s.model_reward;
    }
    totals
}

fn ratio(agents: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        agents / baseline
    } else {
        f64::NAN
    }
}

impl<'e, E: Environment> Trainer<'e, E> {
    /// A run at its start; its first state is drawn from `rng`.
    pub fn new(env: &'e E, schedule: Schedule, mut rng: ChaCha8Rng) -> Trainer<'e, E> {
        let state = env.reset(&mut rng);
        let progress = Progress { schedule, epochs_done: 0, state, rng, log: EpochLog::default(), best: None };
        Trainer { env, progress }
    }

    pub fn epochs_done(&self) -> usize {
        self.progress.epochs_done
    }

    pub fn finished(&self) -> bool {
        self.progress.epochs_done >= self.progress.schedule.epochs
    }

    /// Trains for one epoch.
    pub fn run_epoch(&mut self, learner: &mut dyn Learner) -> Result<()> {
        let (env, p) = (self.env, &mut self.progress);
        let layout = env.layout();
        let (epoch, steps) = (p.epochs_done, p.schedule.steps_per_epoch);
        let total_steps = p.schedule.epochs * steps;
        let mut agents = Vec::with_capacity(steps * layout.slots);
        let mut baseline = Vec::with_capacity(steps * layout.slots);
        let mut states = Vec::with_capacity(steps);
        for t in 0..steps {
            let clock = Clock { step: epoch * steps + t, total_steps };
            let (scored, state) = interact(env, &mut p.state, learner, clock, &mut p.rng, Some(&mut baseline))?;
            agents.extend(scored);
            states.push(state);
        }
        env.score_model(&mut baseline)?;
        let rl: f64 = agents.iter().map(|s| s.model_reward).sum();
        let base: f64 = baseline.iter().map(|s| s.model_reward).sum();
        let epoch_ratio = ratio(rl, base);
        let log = &mut p.log;
        log.ratio.push(epoch_ratio);
        log.rl_reward.push(rl / agents.len() as f64);
        log.baseline_reward.push(base / baseline.len() as f64);
        log.slot_ratios.resize_with(layout.slots, Series::default);
        let (rl_slots, base_slots) = (slot_totals(&agents, layout.slots), slot_totals(&baseline, layout.slots));
        for (series, (a, b)) in log.slot_ratios.iter_mut().zip(rl_slots.into_iter().zip(base_slots)) {
            series.0.push(ratio(a, b));
        }
        let last = Clock { step: (epoch + 1) * steps - 1, total_steps };
        for (name, value) in learner.diagnostics(last) {
            // A diagnostic first reported now has had no value before.
            log.diagnostics.entry(name.to_string()).or_insert_with(|| Series(vec![f64::NAN; epoch])).0.push(value);
        }
        for series in log.diagnostics.values_mut().filter(|s| s.0.len() == epoch) {
            series.0.push(f64::NAN);
        }
        if p.best.as_ref().is_none_or(|b| epoch_ratio > b.ratio) {
            let mut greedy = Vec::with_capacity(agents.len());
            for state in &states {
                greedy.extend(build(env, state, |g, obs| learner.act_greedy(g, obs))?.into_iter().map(Scored::new));
            }
            env.score_model(&mut greedy)?;
            p.best = Some(BestEpoch { ratio: epoch_ratio, agents, baseline, greedy });
        }
        p.epochs_done += 1;
        Ok(())
    }

    /// Writes the run and the learner to `path` (atomically: an interrupted save keeps the
    /// previous checkpoint).
    pub fn save(&self, learner: &dyn Learner, path: &Path) -> Result<()> {
        let mut progress = Vec::new();
        ciborium::into_writer(&self.progress, &mut progress).map_err(|e| Error::config(format!("saving a checkpoint: {e}")))?;
        let learner = learner.save()?;
        let mut bytes = Vec::with_capacity(16 + progress.len() + learner.len());
        bytes.extend_from_slice(CHECKPOINT_MAGIC);
        bytes.extend_from_slice(&(progress.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&progress);
        bytes.extend_from_slice(&learner);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        }
        crate::atomic::write_file(path, &bytes)
    }

    /// Continues the run saved in `path` (by [`Trainer::save`] with the same schedule),
    /// restoring `learner` to where it was.
    pub fn resume(&mut self, learner: &mut dyn Learner, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let broken = |why: String| Error::file(path, format!("not a usable checkpoint ({why}); delete it to start afresh"));
        let (progress, learner_bytes) = split_checkpoint(&bytes).ok_or_else(|| broken("truncated, or no meshrl checkpoint".into()))?;
        let progress: Progress<E::State, E::Candidate> = ciborium::from_reader(progress).map_err(|e| broken(e.to_string()))?;
        if progress.schedule != self.progress.schedule {
            return Err(broken(format!("saved for {:?}, this run is {:?}", progress.schedule, self.progress.schedule)));
        }
        learner.restore(learner_bytes).map_err(|e| broken(e.to_string()))?;
        self.progress = progress;
        Ok(())
    }

    /// The log and the best epoch.
    pub fn finish(self) -> Result<Training<E::Candidate>> {
        let Progress { log, best, .. } = self.progress;
        let best = best.ok_or_else(|| Error::config("no epoch ran"))?;
        Ok(Training { log, best_agents: best.agents, best_baseline: best.baseline, best_greedy: best.greedy })
    }
}

/// Identifies a checkpoint file and its layout version.
const CHECKPOINT_MAGIC: &[u8; 8] = b"meshrlC1";

/// A checkpoint's two parts: the trainer's progress, the learner's state.
fn split_checkpoint(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = bytes.strip_prefix(CHECKPOINT_MAGIC.as_slice())?;
    let (len, rest) = body.split_at_checked(8)?;
    rest.split_at_checked(u64::from_le_bytes(len.try_into().ok()?) as usize)
}

/// How many epochs the checkpoint at `path` has done, if it is one.
pub fn checkpoint_epochs(path: &Path) -> Option<usize> {
    #[derive(Deserialize)]
    struct Head {
        epochs_done: usize,
    }
    let bytes = std::fs::read(path).ok()?;
    let head: Head = ciborium::from_reader(split_checkpoint(&bytes)?.0).ok()?;
    Some(head.epochs_done)
}

/// Trains `learner` on `env` for `schedule`, advancing `bar` by one per epoch. With
/// `checkpoints`, resumes from its file if there is one and saves every `every` epochs
/// (not after the last: the caller keeps the result).
pub fn train<E: Environment>(
    env: &E,
    learner: &mut dyn Learner,
    schedule: Schedule,
    rng: &mut ChaCha8Rng,
    bar: &ProgressBar,
    checkpoints: Option<&Checkpoints>,
) -> Result<Training<E::Candidate>> {
    let mut trainer = Trainer::new(env, schedule, rng.clone());
    if let Some(c) = checkpoints.filter(|c| c.path.exists()) {
        trainer.resume(learner, &c.path)?;
        bar.inc(trainer.epochs_done() as u64);
    }
    while !trainer.finished() {
        trainer.run_epoch(learner)?;
        bar.inc(1);
        if let Some(c) = checkpoints.filter(|c| c.every > 0 && trainer.epochs_done().is_multiple_of(c.every) && !trainer.finished()) {
            trainer.save(learner, &c.path)?;
        }
    }
    *rng = trainer.progress.rng.clone();
    trainer.finish()
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
        assert_eq!(
            json,
            r#"{"ratio":[1.5,null],"rl_reward":[1.0,2.0],"baseline_reward":[1.0,1.0],"slot_ratios":[],"loss":[null,0.5],"epsilon":[1.0,0.5]}"#
        );
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
        let training = train(&chain, &mut learner, schedule, &mut ChaCha8Rng::seed_from_u64(1), &ProgressBar::hidden(), None).unwrap();
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
        let training = train(&chain, learner.as_mut(), schedule, &mut rng, &ProgressBar::hidden(), None).unwrap();
        assert_eq!(greedy_moves(&chain, learner.as_ref()), vec![1; chain.len - 1], "go right everywhere");
        assert_eq!(training.log.diagnostics.keys().collect::<Vec<_>>(), ["loss", "epsilon"]);
    }

    fn chain_dqn() -> DqnConfig {
        DqnConfig {
            hidden: 16,
            learning_rate: 5e-3,
            gamma: 0.9,
            buffer_size: 500,
            learning_starts: 50,
            train_every: 1,
            target_update_every: 20,
            ..DqnConfig::default()
        }
    }

    /// Everything a run leaves, as text: the log, the best epoch's three sides.
    fn fingerprint(t: &Training<crate::env::chain::Move>) -> String {
        let sides = [&t.best_agents, &t.best_baseline, &t.best_greedy];
        format!("{}|{}", serde_json::to_string(&t.log).unwrap(), serde_json::to_string(&sides).unwrap())
    }

    #[test]
    fn a_run_stopped_at_a_checkpoint_resumes_bit_for_bit() {
        // Episodes run across epochs (limit 16, 30 steps an epoch): the checkpoint must carry
        // the state, the waiting transitions and every random stream.
        let chain = Chain::new(6, 16);
        let schedule = Schedule { epochs: 5, steps_per_epoch: 30 };
        let dir = tempfile::tempdir().unwrap();
        let whole = {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut learner = chain_dqn().build(chain.layout(), &mut rng).unwrap();
            fingerprint(&train(&chain, learner.as_mut(), schedule, &mut rng, &ProgressBar::hidden(), None).unwrap())
        };
        // Stopped after epoch 2 (the checkpoint of `every: 2`), then resumed by a new process.
        let path = dir.path().join("run.ckpt");
        {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut learner = chain_dqn().build(chain.layout(), &mut rng).unwrap();
            let mut trainer = Trainer::new(&chain, schedule, rng);
            for _ in 0..3 {
                trainer.run_epoch(learner.as_mut()).unwrap();
                if trainer.epochs_done() == 2 {
                    trainer.save(learner.as_ref(), &path).unwrap();
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut learner = chain_dqn().build(chain.layout(), &mut rng).unwrap();
        let checkpoints = Checkpoints { path: path.clone(), every: 2 };
        let bar = ProgressBar::hidden();
        let resumed = train(&chain, learner.as_mut(), schedule, &mut rng, &bar, Some(&checkpoints)).unwrap();
        assert_eq!(fingerprint(&resumed), whole);
        assert_eq!(bar.position(), 5, "the bar counts the epochs before the checkpoint");
    }

    #[test]
    fn a_checkpoint_of_another_schedule_or_a_damaged_one_is_refused() {
        let chain = Chain::new(4, 8);
        let schedule = Schedule { epochs: 3, steps_per_epoch: 10 };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.ckpt");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut learner = chain_dqn().build(chain.layout(), &mut rng).unwrap();
        let mut trainer = Trainer::new(&chain, schedule, rng.clone());
        trainer.run_epoch(learner.as_mut()).unwrap();
        trainer.save(learner.as_ref(), &path).unwrap();
        let mut longer = Trainer::new(&chain, Schedule { epochs: 4, ..schedule }, rng.clone());
        let err = longer.resume(learner.as_mut(), &path).unwrap_err().to_string();
        assert!(err.contains("run.ckpt") && err.contains("saved for"), "{err}");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let mut again = Trainer::new(&chain, schedule, rng);
        let err = again.resume(learner.as_mut(), &path).unwrap_err().to_string();
        assert!(err.contains("not a usable checkpoint"), "{err}");
    }

    #[test]
    fn the_greedy_policy_is_scored_on_the_best_epochs_states() {
        let chain = Chain::new(5, 16);
        let schedule = Schedule { epochs: 4, steps_per_epoch: 40 };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut learner = chain_dqn().build(chain.layout(), &mut rng).unwrap();
        let t = train(&chain, learner.as_mut(), schedule, &mut rng, &ProgressBar::hidden(), None).unwrap();
        assert_eq!(t.best_greedy.len(), t.best_agents.len());
        for (g, a) in t.best_greedy.iter().zip(&t.best_agents) {
            assert_eq!(g.candidate.from, a.candidate.from, "same states, same order");
        }
        assert_eq!(t.log.slot_ratios.len(), 1);
        assert_eq!(serde_json::to_string(&t.log.slot_ratios[0]).unwrap(), serde_json::to_string(&Series(t.log.ratio.clone())).unwrap());
    }
}
