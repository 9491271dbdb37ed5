//! What a Rust processor plugin of kappa needs beside its bindings: a
//! reader of the batch in columns of `kappa:processor@0.2.0`, `@0.3.0-rc.1`
//! and `@0.3.0` ([`columns!`], [`columns_topics!`] for 0.3.0's topic column,
//! [`Columns::events`]), and a reader of the view of 0.3.0-rc.1 and 0.3.0 by
//! key range in pages ([`range()`], [`prefix()`]).
//!
//! Each part is one file with no dependency, so that `kappa plugin new`
//! copies it into a starter project as a module of its own.

mod columns;
mod range;

pub use columns::{Columns, EventRef, Events, Malformed};
pub use range::{Pages, ReadPage, after, prefix, prefix_end, range};
