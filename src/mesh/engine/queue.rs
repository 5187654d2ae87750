//! The event queue. Most events are scheduled a fixed latency ahead (a hop, a sidecar's
//! answer, an event-loop turn): with time only moving forward, events of one fixed delay
//! come due in the order they were scheduled, so each such delay gets a FIFO lane and only
//! events at drawn times (service times, handshakes, back-offs, timeouts, arrivals) go
//! through the heap. The next event is the least key among the heap's top and the lanes'
//! fronts: the same order as one heap, in a fraction of its time.

use std::collections::VecDeque;

use dary_heap::QuaternaryHeap;

use super::state::{Ev, Event};
use super::Nanos;

pub(super) struct EventQueue {
    heap: QuaternaryHeap<Event>,
    /// The distinct fixed delays, one lane each.
    delays: Vec<Nanos>,
    lanes: Vec<VecDeque<Event>>,
    /// Each lane's first key (`u128::MAX` when empty), side by side so that finding the
    /// next event reads one cache line.
    fronts: Vec<u128>,
    /// Events scheduled so far: the tie-break of events due at the same time.
    seq: u64,
}

impl EventQueue {
    /// A queue with a lane for each distinct delay of `fixed_delays`.
    pub(super) fn new(fixed_delays: &[Nanos]) -> EventQueue {
        let mut delays: Vec<Nanos> = Vec::new();
        for &d in fixed_delays {
            if !delays.contains(&d) {
                delays.push(d);
            }
        }
        let lanes = delays.iter().map(|_| VecDeque::new()).collect();
        let fronts = vec![u128::MAX; delays.len()];
        EventQueue { heap: QuaternaryHeap::new(), delays, lanes, fronts, seq: 0 }
    }

    /// Schedules `ev` at `now + after`; events due at the same time come in scheduling order.
    #[inline]
    pub(super) fn push(&mut self, now: Nanos, after: Nanos, ev: Ev) {
        self.seq += 1;
        let key = (u128::from(now + after) << 64) | u128::from(self.seq);
        match self.delays.iter().position(|&d| d == after) {
            Some(i) => {
                if self.lanes[i].is_empty() {
                    self.fronts[i] = key;
                }
                self.lanes[i].push_back(Event { key, ev });
            }
            None => self.heap.push(Event { key, ev }),
        }
    }

    /// The next event and its time.
    #[inline]
    pub(super) fn pop(&mut self) -> Option<(Nanos, Ev)> {
        let mut best_key = self.heap.peek().map_or(u128::MAX, |e| e.key);
        let mut best_lane = None;
        for (i, &front) in self.fronts.iter().enumerate() {
            if front < best_key {
                best_key = front;
                best_lane = Some(i);
            }
        }
        let event = match best_lane {
            Some(i) => {
                let lane = &mut self.lanes[i];
                let event = lane.pop_front();
                self.fronts[i] = lane.front().map_or(u128::MAX, |e| e.key);
                event
            }
            None => self.heap.pop(),
        }?;
        Some(((event.key >> 64) as Nanos, event.ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Lanes and heap together give exactly the order of one heap, ties by scheduling order.
    #[test]
    fn lanes_pop_in_the_order_one_heap_would() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut queue = EventQueue::new(&[5, 7, 5, 0]);
        let mut reference = EventQueue::new(&[]);
        let (mut now, mut popped) = (0, 0);
        for i in 0..20_000u32 {
            let after = match rng.random_range(0..4) {
                0 => 5,
                1 => 7,
                2 => 0,
                _ => rng.random_range(0..20),
            };
            queue.push(now, after, Ev::AtSidecar { ex: i });
            reference.push(now, after, Ev::AtSidecar { ex: i });
            if rng.random_bool(0.5) {
                let (a, b) = (queue.pop(), reference.pop());
                assert_eq!(format!("{a:?}"), format!("{b:?}"));
                now = a.expect("an event was scheduled").0;
                popped += 1;
            }
        }
        while let Some(a) = queue.pop() {
            assert_eq!(format!("{:?}", Some(a)), format!("{:?}", reference.pop()));
            popped += 1;
        }
        assert_eq!((popped, reference.pop().is_none()), (20_000, true));
    }
}
