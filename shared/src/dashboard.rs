//! The page's state and chart geometry, kept pure so they are tested natively.
//!
//! [`Dashboard::apply`] is the reducer the page feeds every server message into; the chart
//! helpers turn that state into SVG coordinates with a bounded number of points per series.

use std::collections::{BTreeMap, VecDeque};

use crate::api::{AccountBalance, LogLine};
use crate::money::Money;
use crate::protocol::{
    Counters, GeneratorStatus, HISTORY_SAMPLES, MAX_SHOWN_ACCOUNTS, MAX_SHOWN_PARTITIONS,
    PROTOCOL_VERSION, PartitionView, Sample, ServerMsg, StoreStatus,
};
use crate::transaction::AccountId;

/// Log lines the page keeps (newest first).
pub const LOG_CAPACITY: usize = 200;

/// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// Colour and dash pattern of an account's series: colours repeat every 8 accounts with a
/// different dash, so 32 accounts stay distinguishable.
pub fn series_style(account: AccountId) -> (&'static str, &'static str) {
    let i = account.saturating_sub(1) as usize;
    let dash = ["", "6 3", "2 3", "8 3 2 3"][(i / PALETTE.len()) % 4];
    (PALETTE[i % PALETTE.len()], dash)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dashboard {
    pub topic: String,
    pub opening_balance: Money,
    pub accounts: BTreeMap<AccountId, AccountBalance>,
    pub counters: Counters,
    pub generator: Option<GeneratorStatus>,
    pub broker_reachable: bool,
    pub store: StoreStatus,
    /// Newest first, at most [`LOG_CAPACITY`].
    pub log: VecDeque<LogLine>,
    /// Oldest first, at most [`HISTORY_SAMPLES`].
    pub history: VecDeque<Sample>,
    /// Set when the server speaks another protocol version.
    pub reload: Option<String>,
    pub snapshots: u64,
    /// The server wants a presenter login before it takes commands.
    pub presenter_required: bool,
    /// This page may send commands (no login needed, or logged in).
    pub presenter: bool,
    pub partitions: Vec<PartitionView>,
}

/// What a message means for the person at the page, besides the state change.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    Ok { id: Option<u64>, text: String },
    Error { id: Option<u64>, text: String },
}

impl Dashboard {
    /// Whether `account`'s figures are only as last seen: its partition now belongs to another
    /// member of the balance calculator's group (a second cashflow took it).
    pub fn is_stale(&self, account: AccountId) -> bool {
        let Some(p) = self.accounts.get(&account).and_then(|a| a.partition) else {
            return false;
        };
        self.partitions
            .iter()
            .find(|v| v.partition == p)
            .is_some_and(|v| !v.owned)
    }

    pub fn apply(&mut self, msg: ServerMsg) -> Option<Notice> {
        match msg {
            ServerMsg::Presenter { id } => {
                self.presenter = true;
                Some(Notice::Ok {
                    id,
                    text: "logged in as presenter".into(),
                })
            }
            ServerMsg::Hello {
                protocol,
                presenter_required,
                ..
            } => {
                self.presenter_required = presenter_required;
                self.presenter = !presenter_required;
                if protocol != PROTOCOL_VERSION {
                    self.reload = Some(format!(
                        "the server speaks protocol {protocol}, this page {PROTOCOL_VERSION}: reload the page"
                    ));
                }
                None
            }
            ServerMsg::Reload { reason } => {
                self.reload = Some(reason);
                None
            }
            ServerMsg::Snapshot(s) => {
                self.topic = s.topic;
                self.opening_balance = s.opening_balance;
                self.accounts = s
                    .accounts
                    .into_iter()
                    .take(MAX_SHOWN_ACCOUNTS)
                    .map(|a| (a.account, a))
                    .collect();
                self.counters = s.counters;
                self.generator = Some(s.generator);
                self.broker_reachable = s.broker_reachable;
                self.store = s.store;
                self.log = s.log.into_iter().take(LOG_CAPACITY).collect();
                self.history = s
                    .history
                    .into_iter()
                    .rev()
                    .take(HISTORY_SAMPLES)
                    .rev()
                    .collect();
                self.partitions = s.partitions;
                self.partitions.truncate(MAX_SHOWN_PARTITIONS);
                self.snapshots += 1;
                None
            }
            ServerMsg::Delta(d) => {
                for a in d.dropped {
                    self.accounts.remove(&a);
                }
                for a in d.accounts {
                    self.accounts.insert(a.account, a);
                }
                // A server keeps this bounded; a page does too, whatever it is sent.
                while self.accounts.len() > MAX_SHOWN_ACCOUNTS {
                    self.accounts.pop_last();
                }
                self.counters = d.counters;
                if let Some(g) = d.generator {
                    self.generator = Some(g);
                }
                if let Some(r) = d.broker_reachable {
                    self.broker_reachable = r;
                }
                if let Some(s) = d.store {
                    self.store = s;
                }
                if let Some(mut p) = d.partitions {
                    p.truncate(MAX_SHOWN_PARTITIONS);
                    self.partitions = p;
                }
                for line in d.log.into_iter().rev() {
                    self.log.push_front(line);
                }
                self.log.truncate(LOG_CAPACITY);
                if let Some(s) = d.sample {
                    if self.history.len() == HISTORY_SAMPLES {
                        self.history.pop_front();
                    }
                    self.history.push_back(s);
                }
                None
            }
            ServerMsg::Ack {
                id,
                generator,
                transaction,
            } => {
                self.generator = Some(generator);
                let text = match transaction {
                    Some(t) => format!(
                        "sent {} {} to account {}",
                        t.transaction_type,
                        format_money(t.amount),
                        t.account
                    ),
                    None => "done".to_owned(),
                };
                Some(Notice::Ok { id, text })
            }
            ServerMsg::Error { id, message } => Some(Notice::Error { id, text: message }),
        }
    }

    /// How many accounts the history charts (accounts 1..=n).
    pub fn charted_accounts(&self) -> usize {
        self.history.back().map(|s| s.balances.len()).unwrap_or(0)
    }
}

/// `1234567` minor units → `"12,345.67"`.
pub fn format_money(m: Money) -> String {
    let s = m.to_string();
    let (sign, rest) = s.strip_prefix('-').map(|r| ("-", r)).unwrap_or(("", &s));
    let (whole, cents) = rest.split_once('.').unwrap_or((rest, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{cents}")
}

/// An axis from `lo` to `hi` in steps of `step`, all "nice" numbers (1, 2, 5 × 10^k).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub lo: i64,
    pub hi: i64,
    pub step: i64,
}

impl Scale {
    /// A scale covering `min..=max` with about `ticks` steps. Values are minor units.
    pub fn nice(min: i64, max: i64, ticks: u32) -> Scale {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let span = (max.saturating_sub(min)).max(100) as f64;
        let raw = span / ticks.max(1) as f64;
        let mag = 10f64.powi(raw.log10().floor() as i32);
        let norm = raw / mag;
        // Round to the nearest nice step (Heckbert's "nice numbers"): about `ticks` steps.
        let nice = if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
        let step = ((nice * mag) as i64).max(1);
        let lo = min.div_euclid(step) * step;
        let hi = (max.div_euclid(step) + i64::from(max.rem_euclid(step) != 0)) * step;
        Scale {
            lo,
            hi: hi.max(lo + step),
            step,
        }
    }

    pub fn ticks(&self) -> impl Iterator<Item = i64> + '_ {
        (0..)
            .map(move |i| self.lo + i * self.step)
            .take_while(move |v| *v <= self.hi)
    }

    /// Pixel y for `v` in a chart of height `h` (0 at the top).
    pub fn y(&self, v: i64, h: f64) -> f64 {
        let span = (self.hi - self.lo).max(1) as f64;
        h - (v - self.lo) as f64 / span * h
    }
}

/// SVG `points` for one account's balance over the history, at most `max_points` points
/// (every k-th sample, always including the newest). `None` if the account is not charted.
pub fn line_points(
    history: &VecDeque<Sample>,
    index: usize,
    scale: &Scale,
    w: f64,
    h: f64,
    max_points: usize,
) -> Option<String> {
    let n = history.len();
    if n == 0 || history.back().is_none_or(|s| s.balances.len() <= index) {
        return None;
    }
    let t0 = history.front().map(|s| s.t_ms).unwrap_or(0);
    let t1 = history.back().map(|s| s.t_ms).unwrap_or(0);
    let span = (t1 - t0).max(1) as f64;
    let stride = n.div_ceil(max_points.max(2)).max(1);
    let mut out = String::with_capacity(16 * (n / stride + 1));
    let mut push = |s: &Sample| {
        if let Some(v) = s.balances.get(index) {
            let x = (s.t_ms - t0) as f64 / span * w;
            let y = scale.y(*v, h);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{x:.1},{y:.1}"));
        }
    };
    for (i, s) in history.iter().enumerate() {
        if i % stride == 0 || i == n - 1 {
            push(s);
        }
    }
    Some(out)
}

/// The range of all charted balances in the history, for the line chart's scale.
pub fn history_range(history: &VecDeque<Sample>) -> Option<(i64, i64)> {
    history
        .iter()
        .flat_map(|s| s.balances.iter().copied())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Delta, Snapshot};

    fn sample(t: i64, balances: Vec<i64>) -> Sample {
        Sample {
            t_ms: t,
            balances,
            applied_per_second: 0.0,
        }
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
            },
            broker_reachable: true,
            log: vec![],
            history: vec![sample(0, vec![100])],
            partitions: vec![PartitionView {
                partition: 0,
                records: 1,
                owned: true,
            }],
            store: StoreStatus {
                restoring: true,
                percent: 40,
                recreated: 0,
            },
        };
        d.apply(ServerMsg::Snapshot(Box::new(snap.clone())));
        assert_eq!(d.accounts[&1].balance, Money::from_minor(100));
        assert_eq!(d.store.percent, 40);
        let delta = Delta {
            accounts: vec![acct(2, 5, 1)],
            sample: Some(sample(1000, vec![100, 5])),
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
                },
                PartitionView {
                    partition: 1,
                    records: 2,
                    owned: true,
                },
            ]),
            ..Delta::default()
        };
        let on = |account, partition| AccountBalance {
            partition: Some(partition),
            ..acct(account, 5, 1)
        };
        let moved = Delta {
            accounts: vec![on(1, 0), on(2, 1)],
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
                .map(|a| acct(a, 1, 1))
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
            accounts: vec![acct(5000, 1, 9)],
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
                sample: Some(sample(i, vec![i])),
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
        assert!(
            (s.y(12_000, 100.0) - 0.0).abs() < 1e-9 && (s.y(9_000, 100.0) - 100.0).abs() < 1e-9
        );
        let flat = Scale::nice(10_000, 10_000, 4);
        assert!(flat.lo <= 10_000 && flat.hi > flat.lo);
        let neg = Scale::nice(-250, 300, 5);
        assert!(neg.lo <= -250 && neg.hi >= 300);
    }

    #[test]
    fn line_points_are_bounded_and_keep_the_newest() {
        let history: VecDeque<Sample> =
            (0..600).map(|i| sample(i * 1000, vec![i, 2 * i])).collect();
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
}
