//! Per-source caps: how many connections (or handshakes) one source address
//! may hold at once, so that one host cannot take every slot of a listener.
//!
//! A [`PerSource`] counts what each address holds; [`PerSource::try_take`]
//! hands out a [`SourceSlot`] while the address is below the cap, and the
//! slot gives its place back when dropped. Only addresses that hold
//! something have an entry, so the map is bounded by the listener's own
//! connection limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Counts what each source address holds, against one cap.
#[derive(Debug)]
pub struct PerSource {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One place held by one source; given back on drop.
#[derive(Debug)]
pub struct SourceSlot {
    owner: Arc<PerSource>,
    source: IpAddr,
}

impl PerSource {
    /// A cap of `max` places per source (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A counter left as it was by a panic is still a counter.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for `source`, or `None` if it already holds the cap.
    /// IPv4-mapped IPv6 addresses count as their IPv4 address.
    pub fn try_take(self: &Arc<Self>, source: IpAddr) -> Option<SourceSlot> {
        let source = canonical(source);
        let mut held = self.lock();
        let n = held.entry(source).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            owner: Arc::clone(self),
            source,
        })
    }

    /// What `source` holds now.
    pub fn held_by(&self, source: IpAddr) -> usize {
        self.lock().get(&canonical(source)).copied().unwrap_or(0)
    }

    /// How many sources hold something.
    pub fn sources(&self) -> usize {
        self.lock().len()
    }
}

impl SourceSlot {
    /// The source that holds it.
    pub fn source(&self) -> IpAddr {
        self.source
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self.owner.lock();
        if let Some(n) = held.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_holds_at_most_the_cap_and_gives_places_back() {
        let caps = PerSource::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let one = caps.try_take(a).expect("first");
        let two = caps.try_take(a).expect("second");
        assert!(caps.try_take(a).is_none(), "a third from the same source");
        let other = caps.try_take(b).expect("another source is not affected");
        assert_eq!(
            (caps.held_by(a), caps.held_by(b), caps.sources()),
            (2, 1, 2)
        );
        drop(one);
        let again = caps.try_take(a).expect("a place given back");
        drop((two, again, other));
        assert_eq!(
            caps.sources(),
            0,
            "no entry is kept for a source that holds nothing"
        );
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let caps = PerSource::new(1);
        let _v4 = caps.try_take("192.0.2.7".parse().expect("ip")).expect("v4");
        assert!(caps
            .try_take("::ffff:192.0.2.7".parse().expect("ip"))
            .is_none());
    }
}
