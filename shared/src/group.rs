//! The balance calculator's consumer group as its own members see it: which member owns which
//! partition, whether consumption is paused, and a timeline of rebalances (when, which
//! partitions moved from whom to whom, how long each stood still).
//!
//! Fed by the members' rebalance callbacks (revoked / assigned, with the time) and by the
//! server when a member joins or leaves; pure, so the timeline's rules are tested here.

use std::collections::{BTreeMap, VecDeque};

mod status;

pub use status::{GroupStatus, MemberInfo, Move, Rebalance};

/// Rebalances kept in the timeline.
pub const REBALANCES_KEPT: usize = 16;
/// A rebalance whose revoked partitions are not all assigned again within this long is closed
/// anyway (its partitions are shown without a new owner).
pub const REBALANCE_GIVE_UP_MS: i64 = 60_000;

/// A partition revoked and not yet assigned again.
#[derive(Clone, Copy, Debug)]
struct Pending {
    from: u32,
    at_ms: i64,
}

#[derive(Debug, Default)]
struct Open {
    rebalance: Option<Rebalance>,
    pending: BTreeMap<i32, Pending>,
}

/// The group's state; see the module docs.
#[derive(Debug, Default)]
pub struct Group {
    status: GroupStatus,
    open: Open,
    history: VecDeque<Rebalance>,
    /// A cause given before the callbacks it explains ("member 2 added").
    next_cause: Option<String>,
    /// The member whose start `next_cause` names, if it is a join.
    next_cause_member: Option<u32>,
}

impl Group {
    pub fn new(group: &str) -> Group {
        Group {
            status: GroupStatus {
                group: group.to_owned(),
                ..GroupStatus::default()
            },
            ..Group::default()
        }
    }

    /// A member was started; the rebalance it causes is said to be `cause`.
    pub fn joined(&mut self, member: u32, cause: impl Into<String>) {
        if !self.status.members.iter().any(|m| m.member == member) {
            self.status.members.push(MemberInfo {
                member,
                ..MemberInfo::default()
            });
            self.status.members.sort_by_key(|m| m.member);
        }
        self.next_cause = Some(cause.into());
        self.next_cause_member = Some(member);
    }

    /// The next rebalance will be because of `cause` (said before the member stops, since its
    /// revocation comes while it closes).
    pub fn expect(&mut self, cause: impl Into<String>) {
        self.next_cause = Some(cause.into());
        self.next_cause_member = None;
    }

    /// A member stopped (after its last revocation, if any): what it still held is revoked now.
    pub fn left(&mut self, member: u32, cause: impl Into<String>, now_ms: i64) {
        let held = self
            .status
            .members
            .iter()
            .find(|m| m.member == member)
            .map(|m| m.partitions.clone())
            .unwrap_or_default();
        if !held.is_empty() {
            self.next_cause = Some(cause.into());
            self.next_cause_member = None;
            self.revoked(member, &held, now_ms);
        }
        self.status.members.retain(|m| m.member != member);
    }

    pub fn set_member_id(&mut self, member: u32, id: String) {
        if let Some(m) = self.status.members.iter_mut().find(|m| m.member == member) {
            m.member_id = id;
        }
    }

    pub fn count_records(&mut self, member: u32, n: u64) {
        if let Some(m) = self.status.members.iter_mut().find(|m| m.member == member) {
            m.records += n;
        }
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.status.paused = paused;
    }

    fn open(&mut self, now_ms: i64) -> &mut Rebalance {
        let cause = if self.open.rebalance.is_none() {
            self.next_cause_member = None;
            self.next_cause.take()
        } else {
            None
        };
        self.open.rebalance.get_or_insert_with(|| Rebalance {
            started_ms: now_ms,
            ended_ms: None,
            cause: cause.unwrap_or_else(|| "the broker rebalanced the group".into()),
            moves: Vec::new(),
            paused_ms: 0,
        })
    }

    /// `member` gave up `partitions`.
    pub fn revoked(&mut self, member: u32, partitions: &[i32], now_ms: i64) {
        let mut any = false;
        for &p in partitions {
            if let Some(m) = self.status.members.iter_mut().find(|m| m.member == member)
                && let Some(i) = m.partitions.iter().position(|&q| q == p)
            {
                m.partitions.remove(i);
                self.open.pending.insert(
                    p,
                    Pending {
                        from: member,
                        at_ms: now_ms,
                    },
                );
                any = true;
            }
        }
        if any {
            self.open(now_ms);
        }
    }

    /// `member` was given `partitions`.
    pub fn assigned(&mut self, member: u32, partitions: &[i32], now_ms: i64) {
        if partitions.is_empty() {
            return;
        }
        let mut moves = Vec::new();
        for &p in partitions {
            // A partition is owned by one member at a time; take it from any other first.
            for m in self.status.members.iter_mut() {
                m.partitions.retain(|&q| q != p);
            }
            let (from, paused_ms) = match self.open.pending.remove(&p) {
                Some(x) => (Some(x.from), now_ms - x.at_ms),
                None => (None, 0),
            };
            moves.push(Move {
                partition: p,
                from,
                to: Some(member),
                paused_ms,
            });
        }
        if let Some(m) = self.status.members.iter_mut().find(|m| m.member == member) {
            m.partitions.extend_from_slice(partitions);
            m.partitions.sort_unstable();
        }
        // A member that joined while this rebalance was open is part of it: say so, rather than
        // list its partitions under the earlier member's cause (and give its cause to the next).
        let joined_now = self.next_cause_member == Some(member);
        let late_cause = if joined_now && self.open.rebalance.is_some() {
            self.next_cause_member = None;
            self.next_cause.take()
        } else {
            None
        };
        let r = self.open(now_ms);
        if let Some(c) = late_cause {
            r.cause = format!("{}, {c}", r.cause);
        }
        for mv in moves {
            r.paused_ms = r.paused_ms.max(mv.paused_ms);
            r.moves.retain(|x| x.partition != mv.partition);
            r.moves.push(mv);
        }
        r.moves.sort_by_key(|m| m.partition);
        self.close_if_settled(now_ms);
    }

    /// Closes the open rebalance once every revoked partition has an owner again, or after
    /// [`REBALANCE_GIVE_UP_MS`] (called on every change and by [`tick`](Self::tick)).
    fn close_if_settled(&mut self, now_ms: i64) {
        let Some(r) = &self.open.rebalance else {
            return;
        };
        let gave_up = now_ms - r.started_ms >= REBALANCE_GIVE_UP_MS;
        if !self.open.pending.is_empty() && !gave_up {
            return;
        }
        let Some(mut r) = self.open.rebalance.take() else {
            return;
        };
        for (p, x) in std::mem::take(&mut self.open.pending) {
            r.moves.push(Move {
                partition: p,
                from: Some(x.from),
                to: None,
                paused_ms: now_ms - x.at_ms,
            });
            r.paused_ms = r.paused_ms.max(now_ms - x.at_ms);
        }
        r.moves.sort_by_key(|m| m.partition);
        r.ended_ms = Some(now_ms);
        if self.history.len() == REBALANCES_KEPT {
            self.history.pop_front();
        }
        self.history.push_back(r);
    }

    /// Lets a rebalance that never settles close after its time-out.
    pub fn tick(&mut self, now_ms: i64) {
        self.close_if_settled(now_ms);
    }

    /// A copy for the page: members, and the timeline with the open rebalance last.
    pub fn status(&self) -> GroupStatus {
        let mut s = self.status.clone();
        s.rebalances = self.history.iter().cloned().collect();
        if let Some(r) = &self.open.rebalance {
            let mut r = r.clone();
            for (&p, x) in &self.open.pending {
                r.moves.push(Move {
                    partition: p,
                    from: Some(x.from),
                    to: None,
                    paused_ms: 0,
                });
            }
            r.moves.sort_by_key(|m| m.partition);
            s.rebalances.push(r);
        }
        s
    }

    /// Every partition's owner, for checks: no partition is owned twice by construction.
    pub fn owners(&self) -> BTreeMap<i32, u32> {
        self.status
            .members
            .iter()
            .flat_map(|m| m.partitions.iter().map(move |&p| (p, m.member)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_added_takes_partitions_and_the_timeline_says_how_long_they_stood_still() {
        let mut g = Group::new("cashflow-balance");
        g.joined(1, "calculator started");
        g.assigned(1, &[0, 1, 2, 3, 4, 5], 1_000);
        let s = g.status();
        assert_eq!(s.members[0].partitions, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(s.rebalances.len(), 1);
        assert_eq!(s.rebalances[0].cause, "calculator started");
        assert!(s.rebalances[0].moves.iter().all(|m| m.from.is_none()));
        assert_eq!(s.rebalances[0].ended_ms, Some(1_000));

        g.joined(2, "member 2 added");
        g.revoked(1, &[3, 4, 5], 2_000);
        let open = g.status();
        assert_eq!(open.rebalances.len(), 2);
        assert_eq!(
            open.rebalances[1].ended_ms, None,
            "still waiting for 3, 4, 5"
        );
        g.assigned(2, &[3, 4, 5], 2_250);
        let s = g.status();
        assert_eq!(s.members[0].partitions, vec![0, 1, 2]);
        assert_eq!(s.members[1].partitions, vec![3, 4, 5]);
        let r = &s.rebalances[1];
        assert_eq!(r.cause, "member 2 added");
        assert_eq!(r.ended_ms, Some(2_250));
        assert_eq!(r.paused_ms, 250);
        assert_eq!(
            r.moves,
            (3..6)
                .map(|p| Move {
                    partition: p,
                    from: Some(1),
                    to: Some(2),
                    paused_ms: 250
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(g.owners().len(), 6);
    }

    /// Members 2 and 3 added in quick succession join one rebalance: it names both, and member
    /// 3's partitions are not listed under "member 2 added" alone (issue 21, bug 7).
    #[test]
    fn members_joining_one_rebalance_are_both_its_cause() {
        let mut g = Group::new("g");
        g.joined(1, "start");
        g.assigned(1, &[0, 1, 2, 3, 4, 5], 0);
        g.joined(2, "member 2 added");
        g.revoked(1, &[0, 1, 2, 3, 4, 5], 100);
        g.joined(3, "member 3 added");
        g.assigned(1, &[0, 1], 300);
        g.assigned(2, &[2, 3], 300);
        g.assigned(3, &[4, 5], 300);
        let s = g.status();
        assert_eq!(s.rebalances.len(), 2);
        let r = s.rebalances.last().unwrap();
        assert_eq!(r.cause, "member 2 added, member 3 added");
        assert_eq!(r.moves.iter().filter(|m| m.to == Some(3)).count(), 2);
        // A later rebalance gets its own cause, not member 3's.
        g.expect("member 3 removed");
        g.revoked(3, &[4, 5], 1_000);
        g.assigned(1, &[4, 5], 1_100);
        assert_eq!(
            g.status().rebalances.last().unwrap().cause,
            "member 3 removed"
        );
    }

    #[test]
    fn a_member_that_leaves_gives_its_partitions_back() {
        let mut g = Group::new("g");
        g.joined(1, "start");
        g.joined(2, "start");
        g.assigned(1, &[0, 1, 2], 0);
        g.assigned(2, &[3, 4, 5], 0);
        g.left(2, "member 2 removed", 5_000);
        assert_eq!(g.status().members.len(), 1);
        g.assigned(1, &[3, 4, 5], 5_400);
        let s = g.status();
        let r = s.rebalances.last().unwrap();
        assert_eq!(r.cause, "member 2 removed");
        assert_eq!(r.paused_ms, 400);
        assert!(r.moves.iter().all(|m| m.from == Some(2) && m.to == Some(1)));
        assert_eq!(s.members[0].partitions, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_rebalance_that_never_settles_closes_after_its_time_out() {
        let mut g = Group::new("g");
        g.joined(1, "start");
        g.assigned(1, &[0, 1], 0);
        g.revoked(1, &[1], 10);
        g.tick(10 + REBALANCE_GIVE_UP_MS - 1);
        assert_eq!(g.status().rebalances.last().unwrap().ended_ms, None);
        g.tick(10 + REBALANCE_GIVE_UP_MS);
        let r = g.status().rebalances.last().unwrap().clone();
        assert_eq!(r.ended_ms, Some(10 + REBALANCE_GIVE_UP_MS));
        assert_eq!(r.moves[0].to, None);
    }

    #[test]
    fn the_timeline_is_bounded() {
        let mut g = Group::new("g");
        g.joined(1, "start");
        for i in 0..100 {
            g.assigned(1, &[0], i * 10);
            g.revoked(1, &[0], i * 10 + 5);
        }
        assert!(g.status().rebalances.len() <= REBALANCES_KEPT + 1);
    }
}
