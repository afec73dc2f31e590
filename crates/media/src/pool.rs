//! The relay's UDP port pool: even RTP ports in a configured range, each with RTCP on the odd port above it.
//!
//! O(1) allocate and release, memory fixed at construction (one slot per pair), and a port is never handed out
//! twice. Released pairs go to the back of the queue, so a port rests as long as possible before it is reused:
//! late packets of an ended call then find no socket, rather than the next call.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// Most port pairs a pool manages (every even port of the whole 16-bit space).
pub const MAX_PAIRS: usize = 32768;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("port range {lo}-{hi} holds no even port with its odd RTCP port above it")]
    EmptyRange { lo: u16, hi: u16 },
    #[error("no free media ports ({capacity} pairs, all in use)")]
    Exhausted { capacity: usize },
    #[error("port {0} is not an RTP port of this pool")]
    NotInPool(u16),
    #[error("port {0} is not allocated")]
    NotAllocated(u16),
}

/// A fixed set of (RTP, RTCP = RTP + 1) port pairs.
#[derive(Debug, Clone)]
pub struct PortPool {
    first: u16,
    free: VecDeque<u16>,
    in_use: Vec<bool>,
}

impl PortPool {
    /// All even ports `p` with `lo <= p` and `p + 1 <= hi`.
    pub fn new(range: RangeInclusive<u16>) -> Result<Self, PoolError> {
        let (lo, hi) = (*range.start(), *range.end());
        let first = lo
            .checked_add(lo % 2)
            .filter(|&f| f < hi)
            .ok_or(PoolError::EmptyRange { lo, hi })?;
        let pairs = usize::from(hi - first - 1) / 2 + 1;
        let free = (0..pairs).map(|i| first + 2 * i as u16).collect();
        Ok(PortPool {
            first,
            free,
            in_use: vec![false; pairs],
        })
    }

    /// Pairs in the pool.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    /// Pairs free now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// One pair: its RTP port (RTCP is the port above).
    pub fn allocate_one(&mut self) -> Result<u16, PoolError> {
        let port = self.free.pop_front().ok_or(PoolError::Exhausted {
            capacity: self.capacity(),
        })?;
        let slot = self.slot(port).ok_or(PoolError::NotInPool(port))?;
        self.in_use[slot] = true;
        Ok(port)
    }

    /// `n` pairs (one per call leg), all or none.
    pub fn allocate(&mut self, n: usize) -> Result<Vec<u16>, PoolError> {
        if n > self.available() {
            return Err(PoolError::Exhausted {
                capacity: self.capacity(),
            });
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.allocate_one()?);
        }
        Ok(out)
    }

    /// Give a pair back. Releasing a port twice or one the pool does not own is an error and changes nothing.
    pub fn release(&mut self, port: u16) -> Result<(), PoolError> {
        let slot = self.slot(port).ok_or(PoolError::NotInPool(port))?;
        if !self.in_use[slot] {
            return Err(PoolError::NotAllocated(port));
        }
        self.in_use[slot] = false;
        self.free.push_back(port);
        Ok(())
    }

    pub fn is_allocated(&self, port: u16) -> bool {
        self.slot(port).is_some_and(|s| self.in_use[s])
    }

    fn slot(&self, port: u16) -> Option<usize> {
        let off = port.checked_sub(self.first)?;
        off.is_multiple_of(2)
            .then_some(usize::from(off / 2))
            .filter(|&s| s < self.in_use.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_a_range() {
        let p = PortPool::new(10000..=10009).unwrap();
        assert_eq!(p.capacity(), 5);
        let p = PortPool::new(10001..=10008).unwrap(); // 10002, 10004, 10006 (10008 has no 10009)
        assert_eq!(p.capacity(), 3);
        assert_eq!(PortPool::new(65534..=65535).unwrap().capacity(), 1);
        assert_eq!(PortPool::new(0..=65535).unwrap().capacity(), MAX_PAIRS);
        for (lo, hi) in [
            (10000, 10000),
            (10001, 10002),
            (10000, 9000),
            (65535, 65535),
        ] {
            assert_eq!(
                PortPool::new(lo..=hi).unwrap_err(),
                PoolError::EmptyRange { lo, hi }
            );
        }
    }

    #[test]
    fn allocate_until_exhausted_then_release() {
        let mut p = PortPool::new(20000..=20007).unwrap();
        let got = p.allocate(3).unwrap();
        assert_eq!(got, [20000, 20002, 20004]);
        assert_eq!(p.allocate(2), Err(PoolError::Exhausted { capacity: 4 }));
        assert_eq!(p.available(), 1, "all or none");
        assert_eq!(p.allocate_one(), Ok(20006));
        assert_eq!(p.allocate_one(), Err(PoolError::Exhausted { capacity: 4 }));
        p.release(20002).unwrap();
        assert!(!p.is_allocated(20002));
        assert_eq!(p.allocate_one(), Ok(20002));
    }

    #[test]
    fn bad_releases_change_nothing() {
        let mut p = PortPool::new(20000..=20007).unwrap();
        let a = p.allocate_one().unwrap();
        p.release(a).unwrap();
        assert_eq!(p.release(a), Err(PoolError::NotAllocated(a)));
        assert_eq!(p.release(20001), Err(PoolError::NotInPool(20001)));
        assert_eq!(p.release(20008), Err(PoolError::NotInPool(20008)));
        assert_eq!(p.release(1), Err(PoolError::NotInPool(1)));
        assert_eq!(p.available(), 4);
    }

    #[test]
    fn released_ports_rest_before_reuse_and_are_never_doubled() {
        let mut p = PortPool::new(30000..=30099).unwrap();
        let mut held = std::collections::BTreeSet::new();
        let mut seed = 99u32;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            if !seed.is_multiple_of(3) {
                if let Ok(port) = p.allocate_one() {
                    assert!(held.insert(port), "{port} handed out twice");
                }
            } else if let Some(&port) = held.iter().nth(seed as usize % held.len().max(1)) {
                held.remove(&port);
                p.release(port).unwrap();
            }
            assert_eq!(p.available() + held.len(), p.capacity());
        }
        let mut p = PortPool::new(30000..=30005).unwrap();
        let a = p.allocate_one().unwrap();
        p.release(a).unwrap();
        assert_ne!(
            p.allocate_one().unwrap(),
            a,
            "the longest-resting pair comes first"
        );
    }
}
