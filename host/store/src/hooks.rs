//! Test hooks into a view's background writes: hold a write with its rows in
//! the transaction but not committed (to read, commit or sync meanwhile),
//! make it fail there, or drop it there as a crash would. Compiled for the
//! crate's tests only.

use parking_lot::{Condvar, Mutex};

/// The hooks of one view.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Background writes wait before committing while set.
    hold: bool,
    /// Background writes waiting now.
    held: usize,
    /// The next background write fails before committing.
    fail: bool,
    /// Held writes end without committing, as in a crash.
    crash: bool,
}

impl Hooks {
    /// Makes background writes wait before they commit, until [`Hooks::release`].
    pub(crate) fn hold(&self) {
        self.state.lock().hold = true;
    }

    /// Lets held background writes commit.
    pub(crate) fn release(&self) {
        self.state.lock().hold = false;
        self.changed.notify_all();
    }

    /// Makes the next background write fail before it commits.
    pub(crate) fn fail_next(&self) {
        self.state.lock().fail = true;
    }

    /// Waits until a background write is held.
    pub(crate) fn wait_until_held(&self) {
        let mut state = self.state.lock();
        while state.held == 0 {
            self.changed.wait(&mut state);
        }
    }

    /// A crash: held writes end without committing.
    pub(super) fn crash(&self) {
        let mut state = self.state.lock();
        if state.hold {
            state.crash = true;
        }
        self.changed.notify_all();
    }

    /// Called by a background write, its rows in the transaction: waits while
    /// held, then fails if told to (or crashed), so that the transaction is
    /// dropped uncommitted.
    pub(super) fn before_commit(&self) -> Result<(), std::io::Error> {
        let mut state = self.state.lock();
        state.held += 1;
        self.changed.notify_all();
        while state.hold && !state.crash {
            self.changed.wait(&mut state);
        }
        state.held -= 1;
        if state.crash {
            return Err(std::io::Error::other("crashed before the commit"));
        }
        if std::mem::take(&mut state.fail) {
            return Err(std::io::Error::other("injected write failure"));
        }
        Ok(())
    }
}
