//! Rendering once per animation frame, and the render time of each frame, published as
//! `window.__cashflow_stats` for the page's benchmark (`web/e2e/perf.mjs`).

use leptos::prelude::*;

use super::Ctx;

/// Render time per frame: all-time and over the last [`FrameStats::RECENT`] frames.
#[derive(Clone, Debug, Default)]
pub(super) struct FrameStats {
    frames: u64,
    total_ms: f64,
    max_ms: f64,
    recent: std::collections::VecDeque<f64>,
}

impl FrameStats {
    const RECENT: usize = 120;

    fn record(&mut self, ms: f64) -> Vec<(&'static str, f64)> {
        self.frames += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
        if self.recent.len() == Self::RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        let recent_max = self.recent.iter().copied().fold(0.0, f64::max);
        let recent_avg = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        vec![
            ("frames", self.frames as f64),
            ("avg_ms", self.total_ms / self.frames as f64),
            ("max_ms", self.max_ms),
            ("recent_avg_ms", recent_avg),
            ("recent_max_ms", recent_max),
        ]
    }
}

fn now_ms() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or(0.0)
}

/// Re-render at the next animation frame, once however many messages arrive before it.
pub(super) fn schedule_render(ctx: Ctx) {
    if ctx.dirty.get_value() {
        return;
    }
    ctx.dirty.set_value(true);
    request_animation_frame(move || {
        ctx.dirty.set_value(false);
        let t0 = now_ms();
        ctx.frame.update(|v| *v += 1);
        if ctx.history_dirty.get_value() {
            ctx.history_dirty.set_value(false);
            ctx.history.update(|v| *v += 1);
        }
        // Effects run as microtasks queued by the update; this one is queued after them.
        leptos::task::spawn_local(async move {
            let ms = now_ms() - t0;
            let fields = ctx
                .frames
                .try_update_value(|f| f.record(ms))
                .unwrap_or_default();
            let stats = js_sys::Object::new();
            for (k, v) in fields {
                let _ = js_sys::Reflect::set(&stats, &k.into(), &v.into());
            }
            let _ = js_sys::Reflect::set(&window(), &"__cashflow_stats".into(), &stats);
        });
    });
}
