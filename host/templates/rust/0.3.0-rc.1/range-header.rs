// A copy of the range reader of the `kappa-guest` crate
// (plugins/rust/kappa-guest/src/range.rs in the kappa repository, which is
// not published), written by `kappa plugin new`. Here it is the module
// `range`: `kappa_guest::prefix` below reads `range::prefix`, and
// `kappa_guest::view_range!` reads `crate::view_range!`.

