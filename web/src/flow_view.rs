//! The path of real records: producer → topic partitions (lanes, offsets growing) → the
//! calculator's members → ledger. Every dot is a record Kafka acknowledged, placed by the
//! partition and offset of its delivery report; once the calculator applies it, it travels on to
//! the member that applied it and into the ledger. The server chooses the records (every one up
//! to 5 a second, a sample of at most 20 a second above), so the drawing stays bounded.

use cashflow_shared::dashboard::{Dashboard, format_money, series_style};
use cashflow_shared::flow::FlowDot;
use cashflow_shared::{Money, command::Command};
use leptos::prelude::*;

use crate::socket::Ctx;

const W: f64 = 820.0;
const LANE_TOP: f64 = 34.0;
const LANE_GAP: f64 = 30.0;
const PRODUCER_X: f64 = 50.0;
const LANE_X0: f64 = 150.0;
const LANE_X1: f64 = 520.0;
const MEMBER_X: f64 = 630.0;
const LEDGER_X: f64 = 760.0;
/// Offsets a lane shows (the newest ones); older waiting records sit at its start.
const LANE_OFFSETS: f64 = 24.0;
/// Dots drawn at most (the newest).
const DRAWN: usize = 40;

fn lanes(d: &Dashboard) -> usize {
    d.partitions.len().clamp(1, 12)
}

/// The producer's and the ledger's row: the middle of the lanes.
fn mid_y(d: &Dashboard) -> f64 {
    LANE_TOP + lanes(d) as f64 * LANE_GAP / 2.0 - LANE_GAP / 2.0
}

fn lane_y(p: i32) -> f64 {
    LANE_TOP + p as f64 * LANE_GAP
}

fn member_y(d: &Dashboard, member: Option<u32>) -> f64 {
    let n = d.group.members.len().max(1) as f64;
    let i = member
        .and_then(|m| d.group.members.iter().position(|x| x.member == m))
        .unwrap_or(0) as f64;
    let span = lanes(d) as f64 * LANE_GAP;
    LANE_TOP + (i + 0.5) * span / n - LANE_GAP / 2.0
}

/// Each member of the calculator and the row of its box.
fn member_rows(d: &Dashboard) -> impl Iterator<Item = (u32, f64)> + '_ {
    d.group
        .members
        .iter()
        .map(|m| (m.member, member_y(d, Some(m.member))))
}

/// The end offset of partition `p` as far as the page knows (the broker's view, or a newer
/// record's offset).
fn lane_end(d: &Dashboard, p: i32) -> i64 {
    let broker = d
        .topic_view
        .as_ref()
        .and_then(|v| v.partitions.iter().find(|x| x.partition == p))
        .map_or(0, |x| x.end);
    let dots = d
        .flow
        .iter()
        .filter(|x| x.partition == p)
        .map(|x| x.offset + 1)
        .max()
        .unwrap_or(0);
    broker.max(dots)
}

fn lane_x(d: &Dashboard, dot: &FlowDot) -> f64 {
    let behind = (lane_end(d, dot.partition) - 1 - dot.offset).max(0) as f64;
    (LANE_X1 - 10.0 - behind * (LANE_X1 - LANE_X0) / LANE_OFFSETS).max(LANE_X0 + 8.0)
}

fn dot_view(d: &Dashboard, dot: FlowDot, ctx: Ctx) -> impl IntoView + use<> {
    let followed = move || ctx.highlighted() == Some(dot.account);
    // Applied before the page ever drew it waiting (the usual case below a few records a
    // second): it travels the whole way, from the producer, not from its lane.
    let direct = dot.applied_ms.is_some() && !d.flow_was_waiting(dot.partition, dot.offset);
    let account = dot.account;
    let (colour, _) = series_style(dot.account);
    let style = format!(
        "--px: {PRODUCER_X}px; --py: {py}px; --x: {x:.1}px; --y: {y:.1}px; --mx: {MEMBER_X}px; --my: {my:.1}px; --lx: {LEDGER_X}px; --ly: {ly:.1}px",
        py = mid_y(d),
        x = lane_x(d, &dot),
        y = lane_y(dot.partition),
        my = member_y(d, dot.member),
        ly = mid_y(d),
    );
    let kind = if dot.delta >= 0 { "Credit" } else { "Debit" };
    let title = format!(
        "account {} · {kind} {} · partition {} offset {}{}",
        dot.account,
        format_money(Money::from_minor(dot.delta.abs())),
        dot.partition,
        dot.offset,
        dot.member
            .map(|m| format!(" · applied by member {m}"))
            .unwrap_or_else(|| " · waiting in the partition".into())
    );
    let applied = dot.applied_ms.is_some();
    view! {
        <g class="dot" class:applied=applied class:direct=direct class:followed=followed style=style data-testid="dot" data-partition=dot.partition
           data-offset=dot.offset data-account=dot.account data-applied=applied.to_string() data-direct=direct.to_string()
           on:click=move |_| ctx.follow.update(|f| *f = if *f == Some(account) { None } else { Some(account) })
           on:pointerenter=move |_| ctx.hover.set(Some(account))
           on:pointerleave=move |_| ctx.hover.set(None)>
            <circle r="7" fill=colour stroke="#000" stroke-width="1"></circle>
            <text y="4" text-anchor="middle" class="dotlabel">{dot.account}</text>
            <title>{title}</title>
        </g>
    }
}

/// Where the boxes and lanes stand: redrawn when a lane or a member comes or goes.
#[derive(Clone, Debug, PartialEq)]
struct Layout {
    lanes: usize,
    /// Each member and the row of its box.
    members: Vec<(u32, f64)>,
    mid: f64,
    height: f64,
}

fn layout_of(d: &Dashboard) -> Layout {
    Layout {
        lanes: lanes(d),
        members: member_rows(d).collect(),
        mid: mid_y(d),
        height: LANE_TOP + lanes(d) as f64 * LANE_GAP + 4.0,
    }
}

#[component]
pub fn FlowView() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let dots = ctx.select(|d| {
        let skip = d.flow.len().saturating_sub(DRAWN);
        d.flow.iter().skip(skip).copied().collect::<Vec<_>>()
    });
    let layout = ctx.select(layout_of);
    // Each lane's "end offset · owner", which changes on most frames: a text of its own.
    let ends = ctx.select(|d| {
        (0..lanes(d) as i32)
            .map(|p| {
                let owner = d.group.owner(p).map_or("–".to_owned(), |m| format!("M{m}"));
                format!("{} · {owner}", lane_end(d, p))
            })
            .collect::<Vec<_>>()
    });
    // The lanes' and boxes' shapes under the dots, their labels over them (with a halo), so a
    // stream of dots never hides an offset, an owner or a member's name.
    let frame = move || {
        let l = layout.get();
        let lane_rows = (0..l.lanes as i32)
            .map(|p| view! {
                <rect class="flowlane" x=LANE_X0 y=lane_y(p) - 10.0 width=LANE_X1 - LANE_X0 height="20" rx="4"></rect>
            })
            .collect_view();
        let members = l
            .members
            .iter()
            .map(|(_, y)| view! { <rect class="flowbox" x=MEMBER_X - 40.0 y=y - 12.0 width="80" height="24" rx="5"></rect> })
            .collect_view();
        view! {
            <rect class="flowbox" x=PRODUCER_X - 40.0 y=l.mid - 14.0 width="80" height="28" rx="5"></rect>
            <rect class="flowbox" x=LEDGER_X - 40.0 y=l.mid - 14.0 width="80" height="28" rx="5"></rect>
            {lane_rows}
            {members}
        }
    };
    let labels = move || {
        let l = layout.get();
        let lane_labels = (0..l.lanes as i32)
            .map(|p| {
                let end = move || ends.with(|e| e.get(p as usize).cloned().unwrap_or_default());
                view! {
                    <text x=LANE_X0 - 8.0 y=lane_y(p) + 4.0 text-anchor="end" class="axis flowlabel">{format!("p{p}")}</text>
                    <text x=LANE_X1 + 6.0 y=lane_y(p) + 4.0 class="axis flowlabel" data-testid="lane-end">{end}</text>
                }
            })
            .collect_view();
        let members = l
            .members
            .iter()
            .map(|(m, y)| view! { <text x=MEMBER_X y=y + 4.0 text-anchor="middle" class="flowlabel boxlabel">{format!("member {m}")}</text> })
            .collect_view();
        view! {
            <text x=PRODUCER_X y=l.mid + 4.0 text-anchor="middle" class="flowlabel boxlabel">"producer"</text>
            <text x=LEDGER_X y=l.mid + 4.0 text-anchor="middle" class="flowlabel boxlabel">"ledger"</text>
            <text x=(LANE_X0 + LANE_X1) / 2.0 y="12" text-anchor="middle" class="axis">"topic partitions: newest offsets on the right, end offset · owner"</text>
            {lane_labels}
            {members}
        }
    };
    let height = move || layout.with(|l| l.height);
    let slow = move |_| {
        ctx.send(Command::SetRate { rate: Some(0.5) });
    };
    // Following an account from here, beside the lanes (the bars are a screen further down):
    // typed, or a dot clicked. The field is only read, never written back while typing.
    let follow_typed = move |ev| {
        let text = event_target_value(&ev);
        let text = text.trim();
        if text.is_empty() {
            ctx.follow.set(None);
        } else if let Ok(a) = text.parse() {
            ctx.follow.set(Some(a));
        }
    };
    let following = move || {
        ctx.follow.get().map(|a| {
            view! {
                <span data-testid="following">{format!("following account {a}: its dots are ringed, its bars and lanes marked")}</span>
                <button data-testid="unfollow" on:click=move |_| ctx.follow.set(None)>"stop following"</button>
            }
        })
    };
    view! {
        <svg class="flow" viewBox=move || format!("0 0 {W} {}", height()) role="img"
             aria-label="records from the producer through the partitions and members into the ledger">
            {frame}
            {crate::list::keyed(Box::new(move || dots.with(|dots| {
                dots.iter().map(|&dot| {
                    let key = (dot.partition, dot.offset, dot.applied_ms.is_some());
                    crate::list::row(&key, move || ctx.read(|d| dot_view(d, dot, ctx)).into_any())
                }).collect()
            })))}
            {labels}
        </svg>
        <div class="legend">
            <span>"Each dot is a real record: its lane and place are the partition and offset Kafka gave it. Up to 5 a second every record is drawn; above that a sample of at most 20 a second."</span>
            <button class="presenter-only" data-testid="slow-motion" disabled=move || !ctx.can_command() on:click=slow>"Slow motion (0.5 tx/s)"</button>
        </div>
        <div class="legend follow">
            <label>"Follow account " <input type="text" inputmode="numeric" size="6" data-testid="follow-account"
                placeholder="number" on:input=follow_typed/></label>
            <span>" or click a dot. "</span>
            {following}
        </div>
    }
}
