//! Starts the pieces in order and stops them in reverse (see the crate docs).

use std::net::SocketAddr;
use std::sync::Arc;

use rdkafka::admin::AdminClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::Settings;
use crate::http;
use crate::http::hub::Hub;
use crate::kafka::managed::ManagedBroker;
use crate::kafka::topics::{TopicSpec, watch_broker};
use crate::kafka::{Context, base_config};
use crate::pipeline::calculator_group::CalculatorGroup;
use crate::pipeline::producer::ProducerHandle;
use crate::pipeline::{logging_consumer, producer};
use crate::state::Shared;

pub struct App {
    pub http_addr: SocketAddr,
    /// Who may command the demo (see [`crate::http::presenter`]).
    pub controls: crate::http::presenter::Controls,
    /// The bootstrap servers every client uses (the managed broker's address when managed).
    pub brokers: String,
    pub shared: Arc<Shared>,
    pub producer: ProducerHandle,
    ready: watch::Receiver<bool>,
    token: CancellationToken,
    /// The consumers' own token (a child of `token`): they stop after the producer.
    consumers: CancellationToken,
    /// The snapshot writer's (a child too): it stops after the consumers.
    snapshots: (CancellationToken, JoinHandle<()>),
    tracker: TaskTracker,
    producer_task: JoinHandle<()>,
    producer_token: CancellationToken,
    logging: JoinHandle<()>,
    /// The balance calculator's members.
    pub calculator: Arc<CalculatorGroup>,
    /// The writer of what the presenter set (see [`crate::kept`]): stopped first at
    /// shutdown, before generation and the members go.
    kept: (CancellationToken, Option<JoinHandle<()>>),
    /// The local Apache Kafka broker cashflow runs when no `--brokers` is given.
    managed: Option<Arc<ManagedBroker>>,
}

mod build;
mod shutdown;
mod tasks;
use tasks::{Deps, Tasks, spawn_logged};

impl App {
    pub async fn start(mut settings: Settings) -> anyhow::Result<App> {
        let kept = build::kept(&mut settings);
        // First: a server reachable from other machines never starts with open controls by
        // accident, and a token it cannot keep is an error before anything starts.
        let controls = crate::http::presenter::controls(
            settings.listen,
            settings.presenter_token.as_deref(),
            settings.open_controls,
            settings.data_dir.as_deref(),
        )?;
        let (brokers, managed) = build::kafka(&settings).await?;
        info!(%brokers, topic = %settings.topic, "connecting to Kafka");
        let (shared, writers) = build::shared(&settings, &brokers);
        let feed = writers.feed;
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (ready_tx, ready) = watch::channel(false);
        let (restored, restored_rx) = watch::channel(None);
        let tasks = Tasks {
            tracker: tracker.clone(),
            deps: Deps {
                settings: settings.clone(),
                brokers: brokers.clone(),
                shared: shared.clone(),
                ready: ready.clone(),
            },
        };

        let admin: AdminClient<Context> = base_config(&brokers, &settings.kafka)
            .create_with_context(Context::new(&shared, crate::kafka::ADMIN_ROLE))?;
        let spec = TopicSpec::source(&settings);
        let created = Arc::new(crate::kafka::created_topics::CreatedTopics::load(
            settings.data_dir.as_deref(),
        ));
        let (admin, rs, cr) = (Arc::new(admin), restored.clone(), created.clone());
        tasks.supervise("broker watch", &token, move |d, t| {
            let w = watch_broker(
                admin.clone(),
                d.shared,
                spec.clone(),
                ready_tx.clone(),
                rs.clone(),
                t,
                cr.clone(),
            );
            async move {
                w.await;
                Ok(())
            }
        });

        let snapshots_token = token.child_token();
        let writer = tasks.supervise("snapshot writer", &snapshots_token, |d, t| {
            let writer =
                crate::store::changelog::SnapshotWriter::new(&d.settings, &d.brokers, d.shared);
            async move {
                writer?.run(t).await;
                Ok(())
            }
        });

        let (task, handle, commands) = producer::create(&settings, &brokers, shared.clone())?;
        // The producer has its own token: at shutdown it stops (and flushes) first.
        let producer_token = token.child_token();
        let producer_task = tracker.spawn(task.run(commands, restored_rx, producer_token.clone()));

        let consumers = token.child_token();
        // Each writing half goes to its one task, kept across the task's restarts.
        let lines = Arc::new(feed.lines);
        let logging = tasks.supervise("logging consumer", &consumers, move |d, t| {
            logging_consumer::run(d.settings, d.brokers, d.shared, lines.clone(), d.ready, t)
        });

        let letters = Arc::new(feed.dead_letters);
        tasks.supervise("dead-letter view", &token, move |d, t| {
            let letters = letters.clone();
            crate::pipeline::dead_letter_view::run(
                d.settings, d.brokers, d.shared, letters, d.ready, t,
            )
        });

        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let http_addr = listener.local_addr()?;
        let (view_tx, topic_view) = crate::kafka::topic_view::channel();
        let lessons_writers = writers.lessons;
        let lessons = build::lessons(
            &tasks.deps,
            managed.clone(),
            (
                lessons_writers.replay,
                lessons_writers.naive,
                lessons_writers.outage,
            ),
            &tracker,
            &consumers,
        );
        let hub = Hub::new(
            shared.clone(),
            lessons.clone(),
            topic_view.clone(),
            &settings.group_prefix,
        );
        let topic_demand = {
            let h = hub.clone();
            crate::kafka::topic_view::Demand::new(move || h.viewers())
        };
        let demand = topic_demand.clone();
        tasks.supervise("topic view", &token, move |d, t| {
            let (view, demand) = (view_tx.clone(), demand.clone());
            crate::kafka::topic_view::run(d.settings, d.brokers, d.shared, d.ready, view, demand, t)
        });
        let calculator = Arc::new(CalculatorGroup::new(
            (settings.clone(), brokers.clone(), shared.clone()),
            writers.group,
            ready.clone(),
            restored.clone(),
            tracker.clone(),
            consumers.clone(),
        ));
        let checks = lessons_writers.checks;
        if let Some(k) = &kept {
            checks.set(crate::kept::lessons(k));
        }
        // (After the kept checks: the monitor's lesson tracker resumes from them.)
        let views = topic_view.clone();
        let monitor = Arc::new(crate::monitor::MonitorWriters {
            history: feed.history,
            promise: writers.promise,
            checks,
        });
        tasks.supervise("monitor", &token, move |d, t| {
            let run = crate::monitor::Monitor::new(d.shared, views.clone(), monitor.clone()).run(t);
            async move {
                run.await;
                Ok(())
            }
        });
        let h = hub.clone();
        tasks.supervise("hub", &token, move |_, t| {
            let run = h.clone().run(t);
            async move {
                run.await;
                Ok(())
            }
        });
        let metrics =
            crate::http::metrics::Metrics::new(shared.clone(), hub.clone(), topic_view.clone());
        let state = http::AppState {
            shared: shared.clone(),
            producer: handle.clone(),
            hub,
            metrics,
            token: token.clone(),
            allow_origins: Arc::new(settings.allow_origins.clone()),
            presenter_token: controls.token(),
            topic_view,
            topic_demand,
            calculator: calculator.clone(),
            lessons: lessons.clone(),
            reset: Arc::new(crate::reset::Reset::new(crate::reset::Parts {
                settings: settings.clone(),
                brokers: brokers.clone(),
                shared: shared.clone(),
                producer: handle.clone(),
                calculator: calculator.clone(),
                lessons,
                restored: restored.clone(),
                tracker: tracker.clone(),
                created,
            })),
        };
        let router = http::router(state, &settings.web_dir);
        let (http_token, sh) = (token.clone(), shared.clone());
        spawn_logged(&tracker, "http server", async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(http_token.cancelled_owned())
                .await?;
            sh.health().record_stop("http server stopped");
            Ok(())
        });

        let mut app = App {
            http_addr,
            controls,
            brokers,
            shared,
            producer: handle,
            ready,
            token,
            consumers,
            snapshots: (snapshots_token, writer),
            tracker,
            producer_task,
            producer_token,
            logging,
            calculator,
            kept: (CancellationToken::new(), None),
            managed,
        };
        if let Err(e) = app.calculator.add().await {
            anyhow::bail!("cannot start the balance calculator: {e}");
        }
        if let Some(k) = &kept {
            build::resume(&app, k).await;
        }
        if let Some(dir) = settings
            .data_dir
            .clone()
            .filter(|_| settings.explicit.is_some())
        {
            let (t, sh) = (app.kept.0.clone(), app.shared.clone());
            app.kept.1 = Some(tokio::spawn(crate::kept::keep(sh, dir, t)));
        }
        Ok(app)
    }

    /// Stops the balance calculator (every member commits its offsets) and starts a new one
    /// in the same group, which restores and resumes from the committed offsets.
    pub async fn restart_balance_consumer(&self) {
        self.calculator.restart().await;
    }

    /// The local Apache Kafka broker, when cashflow runs it (no `--brokers`).
    pub fn managed_broker(&self) -> Option<Arc<ManagedBroker>> {
        self.managed.clone()
    }

    /// Resolves once the topic exists and the clients may use it.
    pub async fn wait_ready(&self) -> bool {
        let mut r = self.ready.clone();
        r.wait_for(|v| *v).await.is_ok()
    }
}
