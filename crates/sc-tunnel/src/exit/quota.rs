//! The anonymous-session quota ([`Limits::anonymous_quota`]): a count of
//! the established anonymous sessions of one listener, against its cap.
//! Its whole cost is this counter; a session holds a [`QuotaSlot`] while it
//! lasts and gives its place back when the slot is dropped.
//!
//! [`Limits::anonymous_quota`]: super::Limits::anonymous_quota

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Places held at once, against one cap.
#[derive(Debug)]
pub(crate) struct Quota {
    max: usize,
    held: AtomicUsize,
}

/// One place of a [`Quota`]; given back on drop.
#[derive(Debug)]
pub(crate) struct QuotaSlot {
    owner: Arc<Quota>,
}

impl Quota {
    /// A quota of `max` places.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: AtomicUsize::new(0),
        })
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Places held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// A place, or `None` when all are held.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<QuotaSlot> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| QuotaSlot {
                owner: Arc::clone(self),
            })
    }
}

impl Drop for QuotaSlot {
    fn drop(&mut self) {
        self.owner.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_cap_and_places_come_back() {
        let quota = Quota::new(2);
        let one = quota.try_take().expect("first");
        let two = quota.try_take().expect("second");
        assert!(quota.try_take().is_none(), "a third over the cap");
        assert_eq!(quota.held(), 2);
        drop(one);
        let again = quota.try_take().expect("a place given back");
        drop((two, again));
        assert_eq!(quota.held(), 0);
    }
}
