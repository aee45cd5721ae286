//! The outage lesson's panel: stop the Apache Kafka broker cashflow runs for a few seconds and watch generation
//! hold, then every transaction delivered exactly once; on a cluster, the leaders and in-sync
//! replicas in the topic panel move instead.

use cashflow_shared::command::Command;
use cashflow_shared::lessons::LessonId;
use cashflow_shared::outage::{
    LocalNode, MAX_OUTAGE_SECONDS, MIN_OUTAGE_SECONDS, NodeState, OutageState, may_start_node,
    may_stop_node,
};
use leptos::prelude::*;

use super::{Buttons, Lesson, Panel};
use crate::socket::{Ctx, Part};

pub(super) const LESSON: Lesson = Lesson {
    id: LessonId::Outage,
    actions,
    panel: Some(Panel {
        heading: "Outage · the broker goes away",
        view: || view! { <OutagePanel/> }.into_any(),
    }),
};

/// What the presenter can do here: stop the broker cashflow runs (one node, or all three for a
/// while), or, on a Kafka it does not run, where to do it instead.
fn actions(b: Buttons) -> AnyView {
    let ctx = b.ctx;
    // Memos: the buttons are made again only when the answer changes, not on every frame (a
    // button replaced 20 times a second cannot be clicked).
    let managed = ctx.select(|d| d.broker_managed);
    let cluster = ctx.select(|d| d.topic_view.as_ref().is_some_and(|v| v.brokers.len() > 1));
    const STOP_10_S: &[Command] = &[Command::Start, Command::StopBroker { seconds: 10 }];
    view! {
        {move || match (managed.get(), cluster.get()) {
            (true, true) => view! {
                {b.button("do-stop-node", "Stop node 2", &[Command::Start, Command::StopNode { node: 2 }])}
                {b.button("do-start-node", "Start node 2", &[Command::StartNode { node: 2 }])}
                {b.button("do-outage", "Stop all three for 10 s", STOP_10_S)}
            }.into_any(),
            (true, false) => b.button("do-outage", "Stop the broker for 10 s", STOP_10_S),
            (false, true) => view! { <span class="reason" data-testid="outage-elsewhere">"On the cluster: scripts/kafka.sh kill N (then revive N) in a terminal."</span> }.into_any(),
            (false, false) => view! { <span class="reason" data-testid="outage-elsewhere">"This server uses a Kafka it does not run (--brokers), so it cannot stop it: stop that broker from its own terminal, or start cashflow without --brokers for this lesson."</span> }.into_any(),
        }}
    }
    .into_any()
}

#[component]
fn OutagePanel() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let off = move || !ctx.can_command();
    // Long enough for the broker watch (a check every 2 s, each with its time-out) to see it.
    let seconds = RwSignal::new(10u32);
    let outage = ctx.select(|d| d.outage.clone());
    let managed = ctx.select(|d| d.broker_managed);
    // A memo: the node rows (and their buttons) are made again only when a node changes.
    let nodes = ctx.select(|d| d.outage.nodes.clone());
    view! {
        <div class="outage">
            <div class="row presenter-only" class:hidden=move || !managed.get()>
                <label>"Stop the broker for "
                    <input type="number" data-testid="outage-seconds" min=MIN_OUTAGE_SECONDS max=MAX_OUTAGE_SECONDS
                        prop:value=move || seconds.get().to_string()
                        on:change=move |ev| if let Ok(s) = event_target_value(&ev).parse() { seconds.set(s) }/>
                    " s"</label>
                <button data-testid="stop-broker" disabled=move || off() || !outage.with(|o| o.finished())
                    on:click=move |_| { ctx.send(Command::StopBroker { seconds: seconds.get() }); }>"Stop the broker"</button>
            </div>
            {move || (nodes.get().len() > 1).then(|| view! { <NodeRows nodes/> })}
            {move || {
                let o = outage.get();
                let class = match o.state {
                    OutageState::Recovered => "invariant ok",
                    OutageState::Failed => "invariant bad",
                    OutageState::Down => "invariant bad",
                    _ => "invariant",
                };
                view! {
                    <p class=class data-testid="outage" data-state=format!("{:?}", o.state)
                        data-recovery-ms=o.recovery_ms data-failed=o.failed data-duplicates=o.duplicates
                        data-held=o.held.to_string()>{o.describe()}</p>
                }
            }}
            <p class="legend">{move || if nodes.get().len() > 1 {
                "Three nodes, each broker and controller; every partition has three replicas and a write needs two in sync (acks=all, min.insync.replicas=2). Stop one node: the partitions it led get new leaders (L in the topic lanes) from their in-sync replicas, and nothing is lost. A second node cannot be stopped while one is down: the controllers need two of three for their quorum."
            } else if managed.get() {
                "The producer is idempotent (acks=all): while the broker is away its sends wait and retry, and the broker drops a retry it already wrote. Nothing is lost, nothing is written twice; the invariant says so."
            } else {
                "On a Kafka cashflow does not run (--brokers), stop a broker from its own terminal (on the 3-broker cluster: scripts/kafka.sh kill N): the partitions it led get new leaders from the in-sync replicas (topic panel), and nothing is lost."
            }}</p>
        </div>
    }
}

/// One row per node of the cluster cashflow runs: its address and state, and the presenter's
/// stop/start buttons, disabled with the reason where the quorum rule refuses.
#[component]
fn NodeRows(nodes: Part<Vec<LocalNode>>) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    move || {
        let all = nodes.get();
        all.iter()
            .map(|n| {
                let id = n.id;
                let why = may_stop_node(&all, id).err().map(|e| e.to_string());
                let (can_stop, can_start) = (why.is_none(), may_start_node(&all, id).is_ok());
                let state = match n.state {
                    NodeState::Running => format!("running (started in {:.1} s)", n.start_ms as f64 / 1000.0),
                    NodeState::Starting => "starting".into(),
                    NodeState::Stopped => "stopped".into(),
                    NodeState::Restarting => "died: starting it again".into(),
                };
                let send = move |c: Command| {
                    ctx.send(c);
                };
                view! {
                    <div class="node" class:down=n.state != NodeState::Running
                        data-testid=format!("node-{id}") data-state=format!("{:?}", n.state)>
                        <b>"Node " {id}</b>
                        <span class="addr">{n.addr.clone()}</span>
                        <span class="state">{state}</span>
                        <span class="presenter-only">
                            <button data-testid=format!("stop-node-{id}") title=why.unwrap_or_default()
                                disabled=move || !ctx.can_command() || !can_stop
                                on:click=move |_| send(Command::StopNode { node: id })>"Stop"</button>
                            <button data-testid=format!("start-node-{id}")
                                disabled=move || !ctx.can_command() || !can_start
                                on:click=move |_| send(Command::StartNode { node: id })>"Start"</button>
                        </span>
                    </div>
                }
            })
            .collect_view()
    }
}
