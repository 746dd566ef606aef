//! When the followers' leader leases run out, as their leader sees it: what a leadership
//! transfer in a group of more than three voters waits for.
//!
//! openraft 0.9 makes a voter refuse every vote while the lease of the leader it last heard
//! runs (`election_timeout_max` after the last append or snapshot it accepted), and gives a
//! vote no way around that check: the thesis's transfer flag (§3.10) would have to reach
//! openraft's engine, and 0.9's `VoteRequest` is only a vote and a log id (and 0.9's
//! `Trigger` offers no transfer). With three voters it does not matter: the
//! target's own vote and the old leader's are a majority, and the old leader's lease is the
//! one it took office with. With five the target needs a follower's vote too, and a
//! follower's lease runs two election timeouts from the last append it accepted — which the
//! leader keeps renewing with every heartbeat, commit notice and read-index round.
//!
//! So the leader's transport records, for each peer, the calls that renew its lease (appends
//! and snapshots, heartbeats and read-index rounds included): how many are in flight and when
//! the last one ended. A follower's lease certainly ran out `lease` after that end, if no
//! call is in flight. [`lapses`] turns those records into the moment enough followers will
//! grant a vote; the transfer waits for it with heartbeats off and reads held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What the leader knows of its lease-renewing calls to one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Contact {
    /// Calls sent and not yet answered (or given up).
    pub in_flight: u32,
    /// When the last call ended: the peer accepted it, if at all, before then.
    pub last: Option<Instant>,
}

/// Every peer's [`Contact`], shared by the transport's per-peer clients.
#[derive(Debug, Default)]
pub(crate) struct Contacts {
    peers: Mutex<HashMap<u64, Contact>>,
}

impl Contacts {
    /// Records a call to `peer` that renews its lease; it ends when the guard is dropped
    /// (answered, failed, or dropped by openraft's timeout).
    pub(crate) fn call(self: &Arc<Self>, peer: u64) -> Calling {
        self.update(peer, |c| c.in_flight += 1);
        Calling {
            contacts: self.clone(),
            peer,
        }
    }

    /// What is known of `peer` now (a peer never called: nothing in flight, no last call).
    pub(crate) fn get(&self, peer: u64) -> Contact {
        self.lock().get(&peer).copied().unwrap_or_default()
    }

    fn update(&self, peer: u64, f: impl FnOnce(&mut Contact)) {
        f(self.lock().entry(peer).or_default());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Contact>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lease-renewing call in flight.
pub(crate) struct Calling {
    contacts: Arc<Contacts>,
    peer: u64,
}

impl Drop for Calling {
    fn drop(&mut self) {
        let now = Instant::now();
        self.contacts.update(self.peer, |c| {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.last = Some(now);
        });
    }
}

/// When enough followers' leases have run out (see [`lapses`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leases {
    /// Already: none are needed, or enough peers never heard from this leader.
    Lapsed,
    /// At this moment, unless a further call renews them first.
    LapseAt(Instant),
    /// Not known yet: too many peers have a call in flight, being renewed as we speak.
    Renewing,
}

/// When at least `needed` of these peers will have let their lease run out: the `needed`-th
/// earliest end of a lease (a peer never called first of all).
pub(crate) fn lapses(
    peers: impl IntoIterator<Item = Contact>,
    needed: usize,
    lease: Duration,
) -> Leases {
    if needed == 0 {
        return Leases::Lapsed;
    }
    // `None` (never called) sorts before every end.
    let mut ends: Vec<Option<Instant>> = peers
        .into_iter()
        .filter(|c| c.in_flight == 0)
        .map(|c| c.last.map(|last| last + lease))
        .collect();
    ends.sort();
    match ends.get(needed - 1) {
        None => Leases::Renewing,
        Some(None) => Leases::Lapsed,
        Some(Some(end)) => Leases::LapseAt(*end),
    }
}

/// How many votes a transfer target needs from voters other than itself and the old leader,
/// in a group of `voters`: a majority, less those two.
pub(crate) fn needed_from_followers(voters: usize) -> usize {
    (voters / 2 + 1).saturating_sub(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ended(at: Instant) -> Contact {
        Contact {
            in_flight: 0,
            last: Some(at),
        }
    }

    #[test]
    fn three_voters_need_no_follower_five_need_one_seven_need_two() {
        assert_eq!(needed_from_followers(1), 0);
        assert_eq!(needed_from_followers(2), 0);
        assert_eq!(needed_from_followers(3), 0);
        assert_eq!(needed_from_followers(4), 1);
        assert_eq!(needed_from_followers(5), 1);
        assert_eq!(needed_from_followers(7), 2);
    }

    #[test]
    fn nothing_needed_has_lapsed() {
        assert_eq!(lapses([], 0, ms(200)), Leases::Lapsed);
    }

    #[test]
    fn the_needed_earliest_lease_end_counts() {
        let t = Instant::now();
        let peers = [ended(t + ms(30)), ended(t), ended(t + ms(10))];
        assert_eq!(lapses(peers, 1, ms(200)), Leases::LapseAt(t + ms(200)));
        assert_eq!(lapses(peers, 2, ms(200)), Leases::LapseAt(t + ms(210)));
        assert_eq!(lapses(peers, 3, ms(200)), Leases::LapseAt(t + ms(230)));
        assert_eq!(lapses(peers, 4, ms(200)), Leases::Renewing);
    }

    #[test]
    fn a_peer_with_a_call_in_flight_is_still_being_renewed() {
        let t = Instant::now();
        let busy = Contact {
            in_flight: 1,
            last: Some(t),
        };
        assert_eq!(lapses([busy], 1, ms(200)), Leases::Renewing);
        // Another peer can stand in for it.
        assert_eq!(
            lapses([busy, ended(t + ms(5))], 1, ms(200)),
            Leases::LapseAt(t + ms(205))
        );
    }

    #[test]
    fn a_peer_never_called_holds_no_lease_of_this_leader() {
        let t = Instant::now();
        assert_eq!(lapses([Contact::default()], 1, ms(200)), Leases::Lapsed);
        assert_eq!(
            lapses([ended(t), Contact::default()], 2, ms(200)),
            Leases::LapseAt(t + ms(200))
        );
    }

    #[test]
    fn calls_are_recorded_when_they_end() {
        let contacts = Arc::new(Contacts::default());
        let call = contacts.call(2);
        let second = contacts.call(2);
        assert_eq!(contacts.get(2).in_flight, 2);
        assert_eq!(contacts.get(2).last, None);
        drop(call);
        assert_eq!(contacts.get(2).in_flight, 1);
        let first_end = contacts.get(2).last.expect("an end");
        drop(second);
        assert_eq!(contacts.get(2).in_flight, 0);
        assert!(contacts.get(2).last.expect("an end") >= first_end);
        assert_eq!(contacts.get(3), Contact::default());
    }
}
