//! Running many probes at once on one tokio runtime, and the advisor loop in its simplest
//! form ([`drive`]) for the health thread and for benchmarks.

use super::{ProbeContext, run};
#[cfg(test)]
use std::time::Instant;
#[cfg(test)]
use tandem_core::advisor::{Event, Scheduler};
use tandem_core::advisor::{Outcome, Probe, ProbeId};
use tokio::task::JoinSet;

/// The probes in flight, each a task; results come back with their probe's id.
pub struct Runner {
    ctx: ProbeContext,
    tasks: JoinSet<(ProbeId, Outcome)>,
}

impl Runner {
    pub fn new(ctx: ProbeContext) -> Runner {
        Runner {
            ctx,
            tasks: JoinSet::new(),
        }
    }

    /// The context for probes started from now on (a new scripts directory, say).
    pub fn set_context(&mut self, ctx: ProbeContext) {
        self.ctx = ctx;
    }

    /// Starts `probe` as a task (call from within the runtime).
    pub fn spawn(&mut self, probe: Probe) {
        let ctx = self.ctx.clone();
        self.tasks.spawn(async move {
            let outcome = run(&probe, &ctx).await;
            (probe.id, outcome)
        });
    }

    /// Probes in flight.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The next finished probe; `None` when none is in flight. A task that panicked is
    /// skipped (logged): the scheduler fails its probe as lost in time.
    pub async fn next(&mut self) -> Option<(ProbeId, Outcome)> {
        loop {
            match self.tasks.join_next().await? {
                Ok(r) => return Some(r),
                Err(e) => tracing::error!("advisor probe task failed: {e}"),
            }
        }
    }
}

/// Runs the advisor loop until `until`: due probes are spawned, results go back to the
/// scheduler, events to `on_event`. The health thread's loop adds the manager, SASP and
/// the scripts around the same steps.
#[cfg(test)]
pub async fn drive(
    scheduler: &mut Scheduler,
    runner: &mut Runner,
    until: Instant,
    mut on_event: impl FnMut(Event),
) {
    loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        while let Some(p) = scheduler.poll_probe(now) {
            runner.spawn(p);
        }
        while let Some(e) = scheduler.poll_event() {
            on_event(e);
        }
        let wake = scheduler.poll_timeout().map_or(until, |t| t.min(until));
        tokio::select! {
            Some((id, outcome)) = runner.next(), if !runner.is_empty() => {
                scheduler.handle_result(Instant::now(), id, outcome);
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}
