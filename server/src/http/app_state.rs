//! What the HTTP handlers and the WebSocket handler share (its own module, so `http` and `ws`
//! need not import each other).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::http::hub::Hub;
use crate::pipeline::producer::ProducerHandle;
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
    /// The topic as the broker sees it (`crate::kafka::topic_view`), and who asks for it.
    pub topic_view: crate::kafka::topic_view::TopicViews,
    pub topic_demand: crate::kafka::topic_view::Demand,
    /// The balance calculator's members (added, removed, paused from the page).
    pub calculator: Arc<crate::pipeline::calculator_group::CalculatorGroup>,
    /// The lessons with machinery of their own (their commands go to them).
    pub lessons: Arc<crate::lessons::Lessons>,
    /// "Reset the demo".
    pub reset: Arc<crate::reset::Reset>,
    /// What `/metrics` renders.
    pub metrics: crate::http::metrics::Metrics,
}
