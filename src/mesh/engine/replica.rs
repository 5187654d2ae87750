//! The replicas: slots and queues, Isotope's error counter, scripts of sleeps and calls,
//! and the service's counters.

use rand::Rng;
use rand_distr::StandardNormal;

use super::state::*;
use super::{Mesh, Nanos, NONE};
use crate::emulator::envoy::ms;
use crate::mesh::topology::{ServiceTime, Step};

impl Mesh<'_> {
    pub(super) fn service_change(&mut self, s: usize, d_in: i64, d_busy: i64, d_queued: i64) {
        let now = self.now;
        let sv = &mut self.services[s];
        let dt = u128::from(now - sv.since);
        sv.area_in_system += u128::from(sv.in_system) * dt;
        sv.area_busy += u128::from(sv.busy) * dt;
        sv.since = now;
        sv.in_system = (sv.in_system as i64 + d_in) as u64;
        sv.busy = (sv.busy as i64 + d_busy) as u64;
        sv.queued = (sv.queued as i64 + d_queued) as u64;
    }

    pub(super) fn on_replica_arrival(&mut self, att: u32) {
        let c = self.attempts.items[att as usize].cluster as usize;
        let d = self.clusters[c].dest as usize;
        let r = self.replica_base[d] + self.attempts.items[att as usize].host;
        self.services[d].arrivals += 1;
        let rep = &self.replicas[r as usize];
        let dest = &self.dests[d];
        let has_room = rep.busy < dest.concurrency;
        if !has_room && rep.queue.len() as u32 >= dest.queue_limit {
            // Overloaded: 503 at once.
            self.services[d].rejected += 1;
            let hop = self.hops.upstream;
            return self.schedule(hop, Ev::Answer { att, status: 503 });
        }
        let job = self.jobs.insert(Job {
            replica: r,
            att,
            arrived: self.now,
            step: 0,
            waiting: 0,
            failed: false,
            has_slot: false,
            started: false,
            fault: false,
            // A request given up on while it crossed to the replica.
            cancelled: self.options.cancel_abandoned && self.attempts.items[att as usize].state == AttState::Abandoned,
        });
        self.attempts.items[att as usize].job = job;
        self.service_change(d, 1, 0, 0);
        if has_room {
            self.take_slot(job);
            self.run_script(job);
        } else {
            self.replicas[r as usize].queue.push_back(job);
            self.service_change(d, 0, 0, 1);
        }
    }

    pub(super) fn take_slot(&mut self, job: u32) {
        let r = self.jobs.items[job as usize].replica as usize;
        self.replicas[r].busy += 1;
        self.jobs.items[job as usize].has_slot = true;
        let s = self.replicas[r].service as usize;
        self.service_change(s, 0, 1, 0);
    }

    /// The job gives up its slot; the replica's next queued request takes it.
    pub(super) fn release_slot(&mut self, job: u32) {
        let r = self.jobs.items[job as usize].replica as usize;
        self.jobs.items[job as usize].has_slot = false;
        self.replicas[r].busy -= 1;
        let s = self.replicas[r].service as usize;
        self.service_change(s, 0, -1, 0);
        if let Some(next) = self.replicas[r].queue.pop_front() {
            self.service_change(s, 0, 0, -1);
            self.take_slot(next);
            self.run_script(next);
        }
    }

    /// Runs `job`'s script from its current step until it sleeps, calls, waits for a slot,
    /// or ends.
    pub(super) fn run_script(&mut self, job: u32) {
        let r = self.jobs.items[job as usize].replica as usize;
        let s = self.replicas[r].service as usize;
        let topology = self.topology;
        let svc = &topology.services[s];
        if !self.jobs.items[job as usize].started {
            self.jobs.items[job as usize].started = true;
            // Isotope's error counter, before the script: every N-th request fails.
            if let Some(every) = svc.error_every {
                self.replicas[r].error_count += 1;
                if self.replicas[r].error_count >= every {
                    self.replicas[r].error_count = 0;
                    return self.end_job(job, 500);
                }
            }
            if self.fault_share > 0.0 && self.rng.random::<f64>() < self.fault_share {
                self.jobs.items[job as usize].fault = true;
            }
            if self.is_sick(r) {
                let share = self.options.sick.map_or(0.0, |k| k.fail_share);
                if share > 0.0 && self.rng.random::<f64>() < share {
                    return self.end_job(job, 500);
                }
            }
        }
        loop {
            let j = &self.jobs.items[job as usize];
            if j.cancelled {
                return self.end_job(job, 500);
            }
            let step = j.step as usize;
            let Some(st) = svc.script.get(step) else {
                let status = if j.failed {
                    500
                } else if j.fault {
                    503
                } else {
                    200
                };
                return self.end_job(job, status);
            };
            match st {
                Step::Sleep(time) => {
                    if !j.has_slot {
                        let rep = &self.replicas[r];
                        if rep.busy < self.dests[s].concurrency {
                            self.take_slot(job);
                        } else {
                            // Back in line for a slot (already admitted: no queue limit).
                            self.replicas[r].queue.push_back(job);
                            self.service_change(s, 0, 0, 1);
                            return;
                        }
                    }
                    let mut t = self.service_time(*time);
                    if self.is_sick(r) {
                        t = (t as f64 * self.options.sick.map_or(1.0, |k| k.slowdown)) as Nanos;
                    }
                    return self.schedule(t, Ev::SleepDone { job });
                }
                Step::Calls(calls) => {
                    let mut made = 0u16;
                    let first_cluster = self.cluster_base[1 + r];
                    for call in calls {
                        if call.probability < 100 && self.rng.random_range(0..100u8) >= call.probability {
                            continue;
                        }
                        let k = self.callees[s].iter().position(|&d| d as usize == call.service).unwrap_or(0) as u32;
                        made += 1;
                        let worker = self.random_envoy_worker();
                        self.new_exchange(first_cluster + k, Caller::Job { job }, worker, 0);
                    }
                    if made == 0 {
                        self.jobs.items[job as usize].step += 1;
                        continue;
                    }
                    self.jobs.items[job as usize].waiting = made;
                    if self.jobs.items[job as usize].has_slot && !svc.hold_while_calling {
                        self.release_slot(job);
                    }
                    return;
                }
            }
        }
    }

    /// Whether replica `r` (global index) is the run's sick one.
    fn is_sick(&self, r: usize) -> bool {
        self.options.sick.is_some_and(|k| self.replica_base[k.service] as usize + k.replica as usize == r)
    }

    pub(super) fn service_time(&mut self, time: ServiceTime) -> Nanos {
        let seconds = match time {
            ServiceTime::Constant(s) => s,
            ServiceTime::Exponential { mean } => {
                let u: f64 = self.rng.random();
                -mean * (1.0 - u).ln()
            }
            ServiceTime::Lognormal { median, sigma } => {
                let z: f64 = self.rng.sample(StandardNormal);
                median * (sigma * z).exp()
            }
        };
        // Isotope's sleeps are timers: the run's speed factor (a busy node, a slow CPU)
        // stretches the testbed's latencies, not them.
        ms(seconds * 1e3)
    }

    pub(super) fn call_returned(&mut self, job: u32, ok: bool) {
        let j = &mut self.jobs.items[job as usize];
        j.waiting -= 1;
        if !ok {
            j.failed = true;
        }
        if j.waiting > 0 {
            return;
        }
        if j.failed {
            // Isotope stops the script at a failed call and answers 500.
            return self.end_job(job, 500);
        }
        j.step += 1;
        self.run_script(job);
    }

    pub(super) fn end_job(&mut self, job: u32, status: u16) {
        if self.jobs.items[job as usize].has_slot {
            self.release_slot(job);
        }
        let j = &self.jobs.items[job as usize];
        let (att, arrived, r) = (j.att, j.arrived, j.replica as usize);
        let s = self.replicas[r].service as usize;
        self.services[s].completed += 1;
        self.services[s].sojourn_ns += u128::from(self.now - arrived);
        self.service_change(s, -1, 0, 0);
        self.jobs.remove(job);
        self.attempts.items[att as usize].job = NONE;
        let hop = self.hops.upstream;
        self.schedule(hop, Ev::Answer { att, status });
    }
}
