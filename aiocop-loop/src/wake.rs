//! When the sampler's watchdog wakes next: at the earliest moment something is due — a running
//! handle reaching the arming delay, the next sample of an armed one (on a grid of intervals
//! from its arming, so late wake-ups do not thin its samples out), a stuck-loop report —
//! instead of every sampling interval while anything runs. Under load a loop runs short
//! handles back to back, so "something runs" is nearly always true; a handle that turns slow
//! is still seen at the moment it can be sampled. Pure: times in, a sleep out.

/// The shortest sleep: wake-ups stay at least this far apart.
pub(crate) const MIN_SLEEP_NS: u64 = 1_000_000;

/// The watchdog's next wake-up, gathered over one pass: the earliest of the due times given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextWake {
    earliest: Option<u64>,
}

impl NextWake {
    /// Nothing due yet.
    pub(crate) fn new() -> Self {
        Self { earliest: None }
    }

    /// Something is due at `at_ns` (on the watchdog's clock).
    pub(crate) fn due_at(&mut self, at_ns: u64) {
        self.earliest = Some(self.earliest.map_or(at_ns, |e| e.min(at_ns)));
    }

    /// A running handle that started at `start_ns`, `now_ns` being the time of this pass: with
    /// sampling on, due at its arming (`arm_ns` after its start), then at each `interval_ns`
    /// after that (its sampling grid: the first point after this pass). A late wake-up does
    /// not push the later samples back, so a handle is sampled about once per interval of its
    /// age on a loaded machine too; one later than a whole interval skips that point rather
    /// than taking samples in a burst.
    pub(crate) fn sampled_handle(
        &mut self,
        start_ns: u64,
        now_ns: u64,
        arm_ns: u64,
        interval_ns: u64,
    ) {
        let arms_at = start_ns.saturating_add(arm_ns);
        if now_ns < arms_at {
            self.due_at(arms_at);
        } else {
            let interval = interval_ns.max(1);
            let points = (now_ns - arms_at) / interval + 1;
            self.due_at(arms_at.saturating_add(points.saturating_mul(interval)));
        }
    }

    /// How long to sleep from `now_ns`: `idle_ns` when nothing is due; else until the earliest
    /// due time, at least [`MIN_SLEEP_NS`] and at most the longer of `idle_ns` and
    /// `interval_ns` (so a handle that starts meanwhile is seen that soon, and the sampling
    /// interval is never cut short).
    pub(crate) fn sleep_ns(&self, now_ns: u64, idle_ns: u64, interval_ns: u64) -> u64 {
        match self.earliest {
            None => idle_ns.max(MIN_SLEEP_NS),
            Some(at) => {
                let longest = idle_ns.max(interval_ns).max(MIN_SLEEP_NS);
                at.saturating_sub(now_ns).clamp(MIN_SLEEP_NS, longest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn nothing_due_sleeps_the_idle_interval() {
        assert_eq!(
            NextWake::new().sleep_ns(100 * MS, 15 * MS, 10 * MS),
            15 * MS
        );
    }

    #[test]
    fn a_young_handle_wakes_the_watchdog_when_it_arms() {
        let mut next = NextWake::new();
        // Started 2 ms ago, arms at 15 ms of age: 13 ms from now, not one 10 ms interval.
        next.sampled_handle(98 * MS, 100 * MS, 15 * MS, 10 * MS);
        assert_eq!(next.sleep_ns(100 * MS, 50 * MS, 10 * MS), 13 * MS);
    }

    #[test]
    fn an_armed_handle_is_sampled_every_interval() {
        let mut next = NextWake::new();
        // Armed at 85, sampled at 95: the next point is 105, work done in the pass (3 ms)
        // coming off the sleep.
        next.sampled_handle(70 * MS, 95 * MS, 15 * MS, 10 * MS);
        assert_eq!(next.sleep_ns(98 * MS, 15 * MS, 10 * MS), 7 * MS);
    }

    #[test]
    fn a_late_wake_up_does_not_push_the_next_samples_back() {
        // Armed at 85, points every 10 ms; a wake-up due at 95 came at 102.
        let mut next = NextWake::new();
        next.sampled_handle(70 * MS, 102 * MS, 15 * MS, 10 * MS);
        assert_eq!(next.sleep_ns(102 * MS, 15 * MS, 10 * MS), 3 * MS);
        // One more than an interval late (due at 105, came at 117): 115 is skipped, not
        // taken at once.
        let mut next = NextWake::new();
        next.sampled_handle(70 * MS, 117 * MS, 15 * MS, 10 * MS);
        assert_eq!(next.sleep_ns(117 * MS, 15 * MS, 10 * MS), 8 * MS);
        // Over a handle's life, one pass per point whatever the lateness of each wake-up.
        let (mut now, mut passes) = (85 * MS, 0);
        while now < 185 * MS {
            passes += 1;
            let mut next = NextWake::new();
            next.sampled_handle(70 * MS, now, 15 * MS, 10 * MS);
            let late = if passes % 2 == 0 { 4 * MS } else { 0 };
            now += next.sleep_ns(now, 15 * MS, 10 * MS) + late;
        }
        assert_eq!(passes, 10);
    }

    #[test]
    fn the_earliest_due_wins() {
        let mut next = NextWake::new();
        next.sampled_handle(99 * MS, 100 * MS, 15 * MS, 10 * MS); // arms at 114
        next.due_at(105 * MS); // a stuck-loop report
        next.sampled_handle(95 * MS, 100 * MS, 15 * MS, 10 * MS); // arms at 110
        assert_eq!(next.sleep_ns(100 * MS, 50 * MS, 10 * MS), 5 * MS);
    }

    #[test]
    fn a_long_interval_is_not_cut_short_by_a_short_idle_interval() {
        let mut next = NextWake::new();
        next.sampled_handle(0, 115 * MS, 15 * MS, 100 * MS); // sampled at a point of its grid
        assert_eq!(next.sleep_ns(115 * MS, 50 * MS, 100 * MS), 100 * MS);
    }

    #[test]
    fn sleeps_stay_within_bounds() {
        let mut late = NextWake::new();
        late.due_at(90 * MS); // already past: the shortest sleep, never zero
        assert_eq!(late.sleep_ns(100 * MS, 50 * MS, 10 * MS), MIN_SLEEP_NS);
        let mut far = NextWake::new();
        far.due_at(10_000 * MS); // a stuck report seconds away: capped
        assert_eq!(far.sleep_ns(100 * MS, 50 * MS, 10 * MS), 50 * MS);
        assert_eq!(NextWake::new().sleep_ns(0, 0, 0), MIN_SLEEP_NS);
        let mut huge = NextWake::new();
        huge.sampled_handle(u64::MAX - 1, u64::MAX - 1, u64::MAX, u64::MAX);
        assert_eq!(huge.sleep_ns(u64::MAX - 1, 50 * MS, 10 * MS), MIN_SLEEP_NS);
    }
}
