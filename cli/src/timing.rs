//! Start-up timings for tuning: with `POLYAXON_TIMINGS=1`, [`mark`] prints how long after the
//! process started each step was reached (stderr; the executor's go to its log file).

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> &'static Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    START.get_or_init(|| crate::env::get_os(crate::env::POLYAXON_TIMINGS).map(|_| Instant::now()))
}

/// Starts the clock (call first thing in `main`).
pub fn init() {
    let _ = start();
}

/// Prints `label` with the time since start, when timings are on.
pub fn mark(label: &str) {
    if let Some(t) = start() {
        crate::printer::Printer::PLAIN.err(&format!(
            "[timing] {:>7.2} ms  {label} (pid {})",
            t.elapsed().as_secs_f64() * 1e3,
            std::process::id()
        ));
    }
}
