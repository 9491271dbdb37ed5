//! The `logging` interface: a plugin's log messages, sent to the host's
//! log under the target `kappa::plugin` with the version's label, at most
//! `LOG_BUDGET_PER_CALL` a call and each cut to `MAX_GUEST_MESSAGE_BYTES`.

use super::super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use super::super::call::cut;
use super::HostState;

impl HostState {
    fn log(&mut self, level: tracing::Level, message: String) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        let message = cut(&message);
        let plugin = self.label.as_str();
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "kappa::plugin", plugin, "{message}"),
        }
    }
}

/// Binds [`HostState::log`] to a contract version's `logging::Host`.
macro_rules! logging_host {
    ($v:ident) => {
        impl $v::kappa::processor::logging::Host for HostState {
            fn log(&mut self, level: $v::Level, message: String) {
                let level = match level {
                    $v::Level::Trace => tracing::Level::TRACE,
                    $v::Level::Debug => tracing::Level::DEBUG,
                    $v::Level::Info => tracing::Level::INFO,
                    $v::Level::Warn => tracing::Level::WARN,
                    $v::Level::Error => tracing::Level::ERROR,
                };
                HostState::log(self, level, message);
            }
        }
    };
}

logging_host!(v0_1);
logging_host!(v0_2);
logging_host!(v0_3_rc1);
logging_host!(v0_3);
