//! Who may hold an HTTP connection that has not become a WebSocket yet:
//! at most `total` such connections, at most `per_ip` from one address.
//! A new connection beyond either bound is let in and the oldest one it
//! competes with is closed instead, so that a flood of idle or trickling
//! sockets cannot lock anyone out: an attacker's connections only push out
//! each other, while a browser's handshake, done in a round trip, is gone
//! from here long before its turn to be closed comes. Pure bookkeeping,
//! no I/O: the shell closes what [`Gate::enter`] names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// The connections before their upgrade, oldest first.
#[derive(Debug)]
pub(super) struct Gate {
    total: usize,
    per_ip: usize,
    next: u64,
    /// Every connection by its id (ids grow: the first is the oldest).
    open: BTreeMap<u64, IpAddr>,
    by_ip: HashMap<IpAddr, BTreeSet<u64>>,
}

impl Gate {
    /// A gate with these bounds (each at least 1).
    pub fn new(total: usize, per_ip: usize) -> Self {
        Self {
            total: total.max(1),
            per_ip: per_ip.max(1),
            next: 0,
            open: BTreeMap::new(),
            by_ip: HashMap::new(),
        }
    }

    /// A connection from `ip` arrived: its id, and the ids of the
    /// connections to close to make room for it.
    pub fn enter(&mut self, ip: IpAddr) -> (u64, Vec<u64>) {
        let mut evicted = Vec::new();
        let same_ip = self.by_ip.get(&ip).map_or(0, BTreeSet::len);
        if same_ip >= self.per_ip
            && let Some(oldest) = self.by_ip.get(&ip).and_then(|s| s.first().copied())
        {
            self.leave(oldest);
            evicted.push(oldest);
        }
        if self.open.len() >= self.total
            && let Some((&oldest, _)) = self.open.first_key_value()
        {
            self.leave(oldest);
            evicted.push(oldest);
        }
        let id = self.next;
        self.next += 1;
        self.open.insert(id, ip);
        self.by_ip.entry(ip).or_default().insert(id);
        (id, evicted)
    }

    /// Connection `id` closed or became a WebSocket.
    pub fn leave(&mut self, id: u64) {
        let Some(ip) = self.open.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_ip.get_mut(&ip) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Connections in.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn one_address_beyond_its_share_pushes_out_its_own_oldest() {
        let mut g = Gate::new(100, 3);
        let ids: Vec<u64> = (0..3).map(|_| g.enter(ip(1)).0).collect();
        let other = g.enter(ip(2)).0;
        let (fourth, evicted) = g.enter(ip(1));
        assert_eq!(evicted, vec![ids[0]], "its own oldest, not the other's");
        assert_eq!(g.len(), 4);
        g.leave(fourth);
        g.leave(other);
        let (_, evicted) = g.enter(ip(1));
        assert!(evicted.is_empty(), "room again");
    }

    #[test]
    fn beyond_the_total_the_oldest_of_all_goes() {
        let mut g = Gate::new(3, 10);
        let first = g.enter(ip(1)).0;
        g.enter(ip(2));
        g.enter(ip(3));
        let (_, evicted) = g.enter(ip(4));
        assert_eq!(evicted, vec![first]);
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn a_flood_never_holds_more_than_the_bounds_and_a_newcomer_always_enters() {
        let mut g = Gate::new(50, 8);
        for n in 0..10_000u32 {
            g.enter(ip((n % 7) as u8));
            assert!(g.len() <= 50);
        }
        let (browser, _) = g.enter(ip(200));
        assert!(g.open.contains_key(&browser));
        for ids in g.by_ip.values() {
            assert!(ids.len() <= 8);
        }
    }

    #[test]
    fn leaving_twice_or_after_eviction_is_harmless() {
        let mut g = Gate::new(1, 1);
        let (a, _) = g.enter(ip(1));
        let (b, evicted) = g.enter(ip(1));
        assert_eq!(evicted, vec![a]);
        g.leave(a);
        g.leave(b);
        g.leave(b);
        assert_eq!(g.len(), 0);
        assert!(g.by_ip.is_empty());
    }
}
