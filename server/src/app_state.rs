//! What the HTTP handlers and the WebSocket handler share (its own module, so `http` and `ws`
//! need not import each other).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::producer::ProducerHandle;
use crate::state::Shared;

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub producer: ProducerHandle,
    pub hub: Hub,
    /// Cancelled at shutdown: open WebSockets close.
    pub token: CancellationToken,
    /// Page origins allowed besides the server's own.
    pub allow_origins: Arc<Vec<String>>,
    pub presenter_token: Option<Arc<str>>,
    /// The topic as the broker sees it (`crate::topic_view`), and who asks for it.
    pub topic_view: crate::topic_view::TopicViews,
    pub topic_demand: crate::topic_view::Demand,
    /// The balance calculator's members (added, removed, paused from the page).
    pub calculator: Arc<crate::calculator_group::CalculatorGroup>,
    /// The replay lesson's calculator.
    pub replays: Arc<crate::replay::Replays>,
    /// The delivery-semantics lesson's naive calculator.
    pub naive: Arc<crate::naive_calculator::NaiveCalculator>,
    /// The outage lesson (stops the managed broker for a while).
    pub outages: Arc<crate::outage::Outages>,
    /// "Reset the demo".
    pub reset: Arc<crate::reset::Reset>,
    /// What `/metrics` renders.
    pub metrics: crate::metrics::Metrics,
}
