//! Placeholder page; the live dashboard is built on top of this.
use leptos::prelude::*;

fn main() {
    leptos::mount::mount_to_body(
        || view! { <h1>"cashflow"</h1><p>"Balances: "<a href="/api/balances">"/api/balances"</a></p> },
    );
}
