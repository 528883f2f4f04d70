//! Restart counting, shared by the procfs and the sysinfo process collectors: a watch
//! restarted when a member appeared after one went away, in the same interval or since.

/// A process: its pid and start time, which tell it from a later one with the same pid.
pub type Member = (u32, u64);

/// The members of one watch over the ticks, and its restarts.
#[derive(Debug, Default)]
pub struct Restarts {
    /// This tick's live members; sorted at the end of the tick.
    members: Vec<Member>,
    /// The previous tick's, sorted.
    prev: Vec<Member>,
    /// `prev` is from an earlier tick (not the first).
    primed: bool,
    /// A member went away and no new one has appeared since.
    lost: bool,
    count: u64,
}

impl Restarts {
    /// A live member seen on this tick.
    pub fn saw(&mut self, member: Member) {
        self.members.push(member);
    }

    /// Forgets this tick's members so far (the tick is read again).
    pub fn clear(&mut self) {
        self.members.clear();
    }

    /// Ends the tick: counts a restart if a member appeared after one went away.
    pub fn end_tick(&mut self) {
        self.members.sort_unstable();
        if self.primed {
            let left = self
                .prev
                .iter()
                .any(|m| self.members.binary_search(m).is_err());
            let joined = self
                .members
                .iter()
                .any(|m| self.prev.binary_search(m).is_err());
            self.lost |= left;
            if joined && self.lost {
                self.count += 1;
                self.lost = false;
            }
        }
        self.primed = true;
        std::mem::swap(&mut self.members, &mut self.prev);
        self.members.clear();
    }

    /// Restarts counted so far.
    pub fn total(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(r: &mut Restarts, members: &[Member]) -> u64 {
        for m in members {
            r.saw(*m);
        }
        r.end_tick();
        r.total()
    }

    #[test]
    fn a_restart_is_a_member_replaced_in_one_interval_or_across_several() {
        let mut r = Restarts::default();
        assert_eq!(tick(&mut r, &[(10, 1)]), 0, "the first tick only primes");
        assert_eq!(
            tick(&mut r, &[(10, 1), (11, 5)]),
            0,
            "a new worker is no restart"
        );
        assert_eq!(
            tick(&mut r, &[(12, 9), (11, 5)]),
            1,
            "replaced within one interval"
        );
        assert_eq!(tick(&mut r, &[(11, 5)]), 1, "gone");
        assert_eq!(tick(&mut r, &[]), 1, "down");
        assert_eq!(tick(&mut r, &[(13, 20)]), 2, "back: counted once");
        // The same pid with another start time is another process.
        assert_eq!(tick(&mut r, &[(13, 30)]), 3);
    }
}
