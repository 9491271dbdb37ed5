// A copy of the column reader of the `kappa-guest` crate
// (plugins/rust/kappa-guest/src/columns.rs in the kappa repository, which is
// not published), written by `kappa plugin new`. Here it is the module
// `columns`: `kappa_guest::columns!` below reads `crate::columns!`,
// `kappa_guest::Malformed` reads `columns::Malformed`.
