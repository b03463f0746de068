//! An account's history as a chain through its transfers, for a store
//! that keeps no per-account index of them.
//!
//! *Rationale.* A store that indexes `(account, seq)` for both sides of
//! every transfer writes two index entries per transfer at random places
//! of two large indexes: on SQLite that tripled the cost of a batch's
//! insert (each entry dirties its own page). Instead each transfer records,
//! per side, two earlier transfers of that account (`prev`, the one before,
//! and `jump`, further back), and the account keeps a short [`Spine`]: the
//! chain grows with nothing but two numbers per side in the row written
//! anyway, and the account row, which every batch writes already.
//!
//! *The links.* An account's transfers are numbered by depth 1, 2, 3, …
//! in history order. The transfer at depth `d` links `prev` to depth
//! `d - 1` and `jump` to depth `d & (d - 1)` (`d` less its lowest set bit;
//! none when that is 0), as a Fenwick tree does. From the newest transfer,
//! any depth, and the first transfer after any `seq`, is reached in
//! O(log² n) steps, each one row read by `seq` ([`descend`]): a page of an
//! account's history costs O(log² n + page), whatever its length.
//!
//! *The spine.* To link a new transfer the store needs the `seq` at depth
//! `d & (d - 1)`, which is `D >> k << k` for the account's depth `D` and
//! `k = trailing_zeros(D + 1) + 1`. So the account keeps, for each `k`
//! below the bit length of `D`, the `seq` at depth `D >> k << k`: at most
//! 64 numbers, usually a handful.

use std::fmt;

/// What a store keeps per account: its depth (transfers so far) and the
/// `seq` at depth `depth >> k << k` for each `k` below its bit length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spine {
    depth: u64,
    seqs: Vec<i64>,
}

/// The links of one side of a new transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its depth in the account's history (1 for the first).
    pub depth: u64,
    /// The account's transfer before it.
    pub prev: Option<i64>,
    /// The account's transfer at depth `depth & (depth - 1)`.
    pub jump: Option<i64>,
}

/// Why a stored spine is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an account's history spine is \"DEPTH SEQ…\" with one seq per bit of DEPTH, increasing back to front, not {text:?}")]
pub struct SpineError {
    pub text: String,
}

impl Spine {
    /// The spine of an account with no transfers.
    pub fn empty() -> Spine {
        Spine::default()
    }

    /// The transfers so far.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// The newest transfer's seq.
    pub fn last(&self) -> Option<i64> {
        self.seqs.first().copied()
    }

    /// Links a new transfer `seq` (after every one so far) and moves the
    /// spine to it.
    pub fn push(&mut self, seq: i64) -> Link {
        assert!(
            self.last().is_none_or(|last| seq > last),
            "an account's transfers are linked in history order"
        );
        let depth = self.depth + 1;
        let low = depth.trailing_zeros() as usize;
        let jump_depth = depth & (depth - 1);
        let link = Link {
            depth,
            prev: self.last(),
            jump: (jump_depth > 0).then(|| self.seqs[low + 1]),
        };
        let bits = (u64::BITS - depth.leading_zeros()) as usize;
        self.seqs.resize(bits, seq);
        for at in &mut self.seqs[..=low] {
            *at = seq;
        }
        self.depth = depth;
        link
    }

    /// Parses `"DEPTH SEQ…"` (`""`: empty).
    pub fn parse(text: &str) -> Result<Spine, SpineError> {
        let bad = || SpineError {
            text: text.to_owned(),
        };
        if text.is_empty() {
            return Ok(Spine::empty());
        }
        let mut words = text.split(' ');
        let depth: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let seqs = words
            .map(|w| w.parse::<i64>().map_err(|_| bad()))
            .collect::<Result<Vec<i64>, SpineError>>()?;
        let bits = (u64::BITS - depth.leading_zeros()) as usize;
        let ordered = seqs.windows(2).all(|w| w[0] >= w[1]);
        if depth == 0 || seqs.len() != bits || !ordered || seqs.iter().any(|s| *s <= 0) {
            return Err(bad());
        }
        Ok(Spine { depth, seqs })
    }
}

impl fmt::Display for Spine {
    /// `"DEPTH SEQ…"`, or `""` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.depth == 0 {
            return Ok(());
        }
        write!(f, "{}", self.depth)?;
        for seq in &self.seqs {
            write!(f, " {seq}")?;
        }
        Ok(())
    }
}

/// One step down a chain from a transfer at `depth` whose links are
/// `prev` and `jump`, towards `target`: the first transfer after a seq, or
/// a depth. `None` when the transfer is the target.
///
/// The rule a store's recursive query follows too (see the store's
/// `sql::ledger`): take the jump when it does not pass the target, else
/// the previous transfer.
pub fn descend(
    depth: u64,
    prev: Option<i64>,
    jump: Option<i64>,
    target: Target,
) -> Option<(i64, u64)> {
    let jump_depth = depth & depth.wrapping_sub(1);
    match target {
        Target::After { seq } => match (jump, prev) {
            (Some(j), _) if j > seq => Some((j, jump_depth)),
            (_, Some(p)) if p > seq => Some((p, depth - 1)),
            _ => None,
        },
        Target::Depth { depth: goal } => {
            if depth <= goal {
                None
            } else if jump_depth >= goal && jump.is_some() {
                jump.map(|j| (j, jump_depth))
            } else {
                prev.map(|p| (p, depth - 1))
            }
        }
    }
}

/// Where [`descend`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The account's first transfer after `seq`.
    After { seq: i64 },
    /// The account's transfer at this depth.
    Depth { depth: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` transfers at seqs 10, 20, …: its links by depth.
    fn chain(n: u64) -> (Vec<Link>, Spine) {
        let mut spine = Spine::empty();
        let links = (1..=n).map(|d| spine.push(10 * d as i64)).collect();
        (links, spine)
    }

    fn walk(links: &[Link], top: u64, target: Target) -> (u64, usize) {
        let (mut depth, mut steps) = (top, 0);
        loop {
            let link = &links[depth as usize - 1];
            match descend(depth, link.prev, link.jump, target) {
                None => return (depth, steps),
                Some((seq, next)) => {
                    assert_eq!(seq, 10 * next as i64, "a link names its depth's seq");
                    depth = next;
                    steps += 1;
                }
            }
        }
    }

    #[test]
    fn links_point_at_their_depths() {
        let (links, spine) = chain(300);
        for link in &links {
            let d = link.depth;
            assert_eq!(link.prev, (d > 1).then(|| 10 * (d as i64 - 1)));
            let j = d & (d - 1);
            assert_eq!(link.jump, (j > 0).then(|| 10 * j as i64));
        }
        assert_eq!(spine.depth(), 300);
        assert_eq!(spine.last(), Some(3000));
        assert_eq!(Spine::parse(&spine.to_string()), Ok(spine.clone()));
        assert_eq!(
            spine.to_string(),
            "300 3000 3000 3000 2960 2880 2880 2560 2560 2560"
        );
        assert_eq!(Spine::parse(""), Ok(Spine::empty()));
        for bad in ["0", "3 1", "3 5 9", "x", "2 4 -1", "1 2 "] {
            assert!(Spine::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_target_is_reached_in_few_steps() {
        let (links, _) = chain(1_100);
        for top in [1, 2, 7, 64, 255, 256, 1_023, 1_100] {
            for goal in 1..=top {
                let (found, steps) = walk(&links, top, Target::Depth { depth: goal });
                assert_eq!(found, goal);
                assert!(steps <= 2 * 11 * 11, "{top} to {goal}: {steps} steps");
                // The first transfer after the seq of depth goal - 1 (or
                // any seq just under goal's) is at depth goal.
                let seq = 10 * goal as i64 - 5;
                let (found, steps) = walk(&links, top, Target::After { seq });
                assert_eq!(found, goal, "after {seq} from {top}");
                assert!(steps <= 2 * 11 * 11, "{top} after {seq}: {steps} steps");
            }
        }
    }
}
