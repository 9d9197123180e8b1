//! The thread of a configuration poller (APM Server's central configuration, OpAMP): each round
//! asks the server, applies the answer to the engine and says when to ask again, until the poller
//! is stopped. A request may take the server's time: a stop that arrives meanwhile still wins, so
//! nothing is applied to an engine that closed.

use crate::diag;
use crate::engine::Engine;
use std::sync::mpsc::{self, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts thread `name`, running `round` until the returned sender is dropped (or the engine is).
/// `round` gets the engine from the function it is passed, after its request: None once the
/// poller is stopped. It returns how long to wait before the next round. `what` names the poller
/// in the warning if its thread cannot start.
pub fn spawn(
    name: &str,
    what: &str,
    engine: Weak<Engine>,
    mut round: impl FnMut(&mut dyn FnMut() -> Option<Arc<Engine>>) -> Duration + Send + 'static,
) -> Option<Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    let poll = move || {
        let mut running = true;
        while running {
            let mut engine_if_running = || {
                let engine = matches!(stopped.try_recv(), Err(TryRecvError::Empty)).then(|| engine.upgrade()).flatten();
                running = engine.is_some();
                engine
            };
            let wait = round(&mut engine_if_running);
            running = running && matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
        }
    };
    match std::thread::Builder::new().name(name.into()).spawn(poll) {
        Ok(_) => Some(stop),
        Err(e) => {
            diag::warn(&format!("could not start the {what} thread ({e}); the local configuration stays"));
            None
        }
    }
}
