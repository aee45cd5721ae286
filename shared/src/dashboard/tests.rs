use super::*;
use crate::protocol::{AccountRow, Delta, SampleChange, Snapshot};

fn sample(t: i64, balances: Vec<i64>) -> Sample {
    Sample {
        t_ms: t,
        balances,
        applied_per_second: 0.0,
    }
}

/// A point as the first of a history (every balance "changed").
fn change(t: i64, balances: Vec<i64>) -> SampleChange {
    SampleChange::between(None, &sample(t, balances))
}

fn row(account: AccountId, minor: i64, count: u64) -> AccountRow {
    (&acct(account, minor, count)).into()
}

fn acct(account: AccountId, minor: i64, count: u64) -> AccountBalance {
    AccountBalance {
        account,
        balance: Money::from_minor(minor),
        count,
        partition: None,
    }
}

#[test]
fn snapshot_then_deltas() {
    let mut d = Dashboard::default();
    let snap = Snapshot {
        topic: "t".into(),
        opening_balance: Money::from_major(100),
        accounts: vec![acct(1, 100, 1)],
        counters: Counters::default(),
        generator: GeneratorStatus {
            running: true,
            rate: Some(2.0),
            settings: Default::default(),
            ..Default::default()
        },
        broker_reachable: true,
        broker_managed: true,
        log: vec![],
        history: vec![sample(0, vec![100])],
        partitions: vec![PartitionView {
            partition: 0,
            records: 1,
            owned: true,
            member: Some(1),
        }],
        store: StoreStatus {
            restoring: true,
            percent: 40,
            recreated: 0,
        },
        topic_view: None,
        group: Default::default(),
        flow: vec![],
        dead_letters: vec![],
        replay: Default::default(),
        naive: Default::default(),
        outage: Default::default(),
        lessons: Default::default(),
    };
    d.apply(ServerMsg::Snapshot(Box::new(snap.clone())));
    assert_eq!(d.accounts[&1].balance, Money::from_minor(100));
    assert_eq!(d.store.percent, 40);
    let delta = Delta {
        accounts: vec![row(2, 5, 1)],
        sample: Some(change(1000, vec![100, 5])),
        store: Some(StoreStatus::default()),
        ..Default::default()
    };
    d.apply(ServerMsg::Delta(Box::new(delta)));
    assert!(!d.store.restoring, "the restore ended");
    assert_eq!(d.accounts.len(), 2);
    assert_eq!(d.history.len(), 2);
    assert_eq!(
        d.partitions[0].records, 1,
        "a delta without partitions keeps them"
    );
    let moved = Delta {
        partitions: Some(vec![
            PartitionView {
                partition: 0,
                records: 7,
                owned: false,
                member: None,
            },
            PartitionView {
                partition: 1,
                records: 2,
                owned: true,
                member: Some(1),
            },
        ]),
        ..Delta::default()
    };
    let on = |account, partition| AccountBalance {
        partition: Some(partition),
        ..acct(account, 5, 1)
    };
    let moved = Delta {
        accounts: vec![(&on(1, 0)).into(), (&on(2, 1)).into()],
        ..moved
    };
    d.apply(ServerMsg::Delta(Box::new(moved)));
    assert_eq!(d.partitions.len(), 2);
    assert!(!d.partitions[0].owned && d.partitions[1].owned);
    assert!(d.is_stale(1), "partition 0 belongs to another member");
    assert!(!d.is_stale(2));
    assert!(!d.is_stale(99), "unknown accounts are not stale");
    // A new snapshot replaces everything (e.g. after the server restarted).
    d.apply(ServerMsg::Snapshot(Box::new(snap)));
    assert_eq!(d.accounts.len(), 1);
    assert_eq!(d.history.len(), 1);
    assert_eq!(d.snapshots, 2);
}

#[test]
fn dropped_accounts_leave_and_the_page_keeps_at_most_the_shown_number() {
    let mut d = Dashboard::default();
    let delta = Delta {
        accounts: (1..=MAX_SHOWN_ACCOUNTS as u32 + 30)
            .map(|a| row(a, 1, 1))
            .collect(),
        ..Default::default()
    };
    d.apply(ServerMsg::Delta(Box::new(delta)));
    assert_eq!(
        d.accounts.len(),
        MAX_SHOWN_ACCOUNTS,
        "bounded whatever it is sent"
    );
    let delta = Delta {
        accounts: vec![row(5000, 1, 9)],
        dropped: vec![3, 4],
        ..Default::default()
    };
    d.apply(ServerMsg::Delta(Box::new(delta)));
    assert!(!d.accounts.contains_key(&3) && !d.accounts.contains_key(&4));
    assert!(d.accounts.contains_key(&5000));
}

#[test]
fn log_and_history_are_bounded() {
    let mut d = Dashboard::default();
    for i in 0..(HISTORY_SAMPLES as i64 + 50) {
        let line = LogLine {
            partition: 0,
            offset: i,
            timestamp_ms: None,
            text: format!("{i}"),
        };
        let delta = Delta {
            log: vec![line.clone(), line],
            sample: Some(change(i, vec![i])),
            ..Default::default()
        };
        d.apply(ServerMsg::Delta(Box::new(delta)));
    }
    assert_eq!(d.history.len(), HISTORY_SAMPLES);
    assert_eq!(d.history.front().unwrap().t_ms, 50);
    assert_eq!(d.log.len(), LOG_CAPACITY);
    assert_eq!(
        d.log.front().unwrap().offset,
        HISTORY_SAMPLES as i64 + 49,
        "newest first"
    );
}

#[test]
fn other_protocol_asks_for_reload() {
    let mut d = Dashboard::default();
    d.apply(ServerMsg::Hello {
        protocol: PROTOCOL_VERSION,
        server: "x".into(),
        presenter_required: true,
    });
    assert!(d.presenter_required && !d.presenter);
    d.apply(ServerMsg::Presenter { id: Some(1) });
    assert!(d.presenter);
    assert!(d.reload.is_none());
    d.apply(ServerMsg::Hello {
        protocol: PROTOCOL_VERSION + 1,
        server: "x".into(),
        presenter_required: false,
    });
    assert!(d.reload.as_deref().unwrap().contains("reload"));
}

#[test]
fn money_formatting() {
    assert_eq!(format_money(Money::from_minor(123_456_789)), "1,234,567.89");
    assert_eq!(format_money(Money::from_minor(-100_000)), "-1,000.00");
    assert_eq!(format_money(Money::from_minor(5)), "0.05");
    assert_eq!(format_money(Money::from_minor(99_999)), "999.99");
}

#[test]
fn nice_scales() {
    let s = Scale::nice(9_003, 11_870, 5);
    assert_eq!(
        s,
        Scale {
            lo: 9_000,
            hi: 12_000,
            step: 500
        }
    );
    assert_eq!(
        s.ticks().collect::<Vec<_>>(),
        vec![9_000, 9_500, 10_000, 10_500, 11_000, 11_500, 12_000]
    );
    assert!((s.y(12_000, 100.0) - 0.0).abs() < 1e-9 && (s.y(9_000, 100.0) - 100.0).abs() < 1e-9);
    let flat = Scale::nice(10_000, 10_000, 4);
    assert!(flat.lo <= 10_000 && flat.hi > flat.lo);
    let neg = Scale::nice(-250, 300, 5);
    assert!(neg.lo <= -250 && neg.hi >= 300);
}

#[test]
fn line_points_are_bounded_and_keep_the_newest() {
    let history: VecDeque<Sample> = (0..600).map(|i| sample(i * 1000, vec![i, 2 * i])).collect();
    let scale = Scale::nice(0, 1200, 4);
    let pts = line_points(&history, 1, &scale, 600.0, 200.0, 150).unwrap();
    let n = pts.split(' ').count();
    assert!(n <= 151, "{n} points");
    let last = pts.rsplit(' ').next().unwrap();
    let (x, y) = last.split_once(',').unwrap();
    assert_eq!(x, "600.0", "newest sample at the right edge");
    assert_eq!(
        scale,
        Scale {
            lo: 0,
            hi: 1500,
            step: 500
        }
    );
    // 1198 on a 0..=1500 scale, 200 px high: 40.27 px from the top.
    assert_eq!(y, "40.3");
    assert!(line_points(&history, 2, &scale, 600.0, 200.0, 150).is_none());
    assert_eq!(history_range(&history), Some((0, 1198)));
}

#[test]
fn series_styles_differ_for_32_accounts() {
    let styles: std::collections::HashSet<_> = (1..=32).map(series_style).collect();
    assert_eq!(styles.len(), 32);
}

#[test]
fn followed_records_are_updated_in_place_and_bounded() {
    use crate::flow::{FlowDot, MAX_DOTS};
    let dot = |offset, applied: Option<i64>| FlowDot {
        partition: 1,
        offset,
        account: 3,
        delta: -800,
        acked_ms: 0,
        applied_ms: applied,
        member: applied.map(|_| 1),
    };
    let mut d = Dashboard::default();
    let delta = |flow| {
        ServerMsg::Delta(Box::new(Delta {
            flow,
            ..Delta::default()
        }))
    };
    d.apply(delta(vec![dot(7, None)]));
    d.apply(delta(vec![dot(7, Some(5))]));
    assert_eq!(d.flow.len(), 1);
    assert_eq!(d.flow[0].member, Some(1));
    d.apply(delta((0..200).map(|o| dot(100 + o, None)).collect()));
    assert_eq!(d.flow.len(), MAX_DOTS);
    assert_eq!(d.flow.back().map(|x| x.offset), Some(299));
}

#[test]
fn sparklines_span_their_box() {
    use crate::chart::sparkline_points;
    assert_eq!(
        sparkline_points(&[0.0, 5.0, 10.0], 100.0, 24.0),
        "0.0,22.0 50.0,12.0 100.0,2.0"
    );
    // All zero: flat on the bottom (the scale is at least 1), one point at the left.
    assert_eq!(sparkline_points(&[0.0], 120.0, 24.0), "0.0,22.0");
    assert_eq!(sparkline_points(&[], 120.0, 24.0), "");
}

/// The patched parts end exactly where the server's are, and each refresh of the broker's
/// view adds one point to every group's lag history, as the server's view does.
#[test]
fn patches_bring_the_page_to_the_servers_parts() {
    use crate::api::{GroupView, TopicView};
    let view = |taken_ms, lag: i64, history: Vec<i64>| TopicView {
        topic: "t".into(),
        taken_ms,
        groups: vec![GroupView {
            group: "g".into(),
            committed: [(0, 5), (3, 7)].into(),
            lag: [(0, lag)].into(),
            total_lag: lag,
            lag_history: history,
            ..GroupView::default()
        }],
        ..TopicView::default()
    };
    // What the server strips before diffing.
    let bare = |mut v: TopicView| {
        for g in &mut v.groups {
            g.lag_history.clear();
        }
        v
    };
    let mut d = Dashboard::default();
    let first = view(1, 4, vec![9, 4]);
    let patch = crate::patch::diff_of(&None, &Some(bare(first.clone())));
    d.apply(ServerMsg::Delta(Box::new(Delta {
        topic_view: patch,
        ..Delta::default()
    })));
    assert_eq!(d.topic_view.as_ref().unwrap().groups[0].lag_history, [4]);
    d.topic_view = Some(first.clone());
    let second = view(2, 6, vec![9, 4, 6]);
    let patch = crate::patch::diff_of(&Some(bare(first)), &Some(bare(second.clone())));
    assert!(!patch.as_ref().unwrap().to_string().contains("committed"));
    let mut counters = Counters {
        sent: 40,
        ..Counters::default()
    };
    counters.latency.p99_ms = Some(12);
    d.apply(ServerMsg::Delta(Box::new(Delta {
        topic_view: patch,
        counters: crate::patch::diff_of(&Counters::default(), &counters),
        ..Delta::default()
    })));
    assert_eq!(d.topic_view, Some(second));
    assert_eq!(d.counters, counters);
    // A patch that does not fit changes nothing.
    let before = d.clone();
    d.apply(ServerMsg::Delta(Box::new(Delta {
        counters: Some(serde_json::json!({"sent": "many"})),
        topic_view: Some(serde_json::json!({"groups": 3})),
        ..Delta::default()
    })));
    assert_eq!(d, before);
}

/// The flow draws a record from the producer unless the page saw it waiting in its partition
/// (slow motion showed dots appearing at their lane's end); what it remembers stays bounded.
#[test]
fn the_page_knows_which_followed_records_it_saw_waiting() {
    use crate::flow::{FlowDot, MAX_DOTS};
    let dot = |offset, applied: bool| FlowDot {
        partition: 1,
        offset,
        account: 3,
        delta: 5,
        acked_ms: 10,
        applied_ms: applied.then_some(12),
        member: applied.then_some(1),
    };
    let mut d = Dashboard::default();
    let send = |d: &mut Dashboard, dots: Vec<FlowDot>| {
        d.apply(ServerMsg::Delta(Box::new(Delta {
            flow: dots,
            ..Delta::default()
        })))
    };
    send(&mut d, vec![dot(0, true)]);
    assert!(!d.flow_was_waiting(1, 0), "first seen applied");
    send(&mut d, vec![dot(1, false)]);
    send(&mut d, vec![dot(1, true)]);
    assert!(d.flow_was_waiting(1, 1), "seen waiting, then applied");
    for o in 2..(MAX_DOTS as i64 * 3) {
        send(&mut d, vec![dot(o, false)]);
    }
    assert_eq!(d.flow.len(), MAX_DOTS);
    assert!(!d.flow_was_waiting(1, 1), "forgotten with its dot");
    assert!(d.flow_waiting.len() <= MAX_DOTS);
}

/// Lag histories follow their group by name when another group sorts before it, and a patch
/// that does not fit keeps them (the review found the page's histories shifted by one).
#[test]
fn lag_histories_follow_their_group_by_name() {
    use crate::api::{GroupView, TopicView};
    let group = |name: &str, lag| GroupView {
        group: name.into(),
        total_lag: lag,
        ..GroupView::default()
    };
    let view = |taken_ms, groups| {
        Some(TopicView {
            topic: "t".into(),
            taken_ms,
            groups,
            ..TopicView::default()
        })
    };
    let mut page = None;
    let p = crate::patch::diff_of(&None, &view(1, vec![group("cashflow-balance", 5)])).unwrap();
    patch_topic_view(&mut page, &p);
    let p = crate::patch::diff_of(
        &view(1, vec![group("cashflow-balance", 5)]),
        &view(2, vec![group("a-foreign", 9), group("cashflow-balance", 7)]),
    )
    .unwrap();
    patch_topic_view(&mut page, &p);
    let v = page.as_ref().unwrap();
    assert_eq!(v.groups[0].group, "a-foreign");
    assert_eq!(v.groups[0].lag_history, [9]);
    assert_eq!(v.groups[1].lag_history, [5, 7]);
    let before = page.clone();
    patch_topic_view(&mut page, &serde_json::json!({"groups": 3}));
    assert_eq!(page, before);
}
