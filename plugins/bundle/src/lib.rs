//! The example processor plugins of `plugins/rust`, compiled from source to
//! WebAssembly components (wasm32-wasip2) and embedded.
//!
//! The build script runs a nested `cargo build` of the guest workspace, so the
//! host and the tests always run the components of the sources next to them,
//! never a stale binary. Each [`Plugin`] gives both the bytes, for loading in
//! memory, and the path of the `.wasm` file, for whatever takes a file (the
//! `kappa` command line, say).

/// One example plugin compiled from source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plugin {
    /// The crate name, such as `payments-v1`.
    pub name: &'static str,
    /// Absolute path of the built `.wasm` component.
    pub path: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

// PAYMENTS_V1, PAYMENTS_V2, STARTER, FAULTY, ECHO_V1, ECHO_V2, PAYMENTS_V3
// (contract 0.3.0) and ALL, written by build.rs; also KEY_TOTALS, the processor of the key cardinality
// benchmark, which is not an example and so not in ALL, with KEY_TOTALS_V3,
// the same on contract 0.3.0-rc.1, and KEY_TOTALS_TIMED, on 0.3.0 with range
// reads and timers; and, not in ALL either, the plugins of
// contracts 0.3.0-rc.1 and 0.3.0 and the test plugins: PAYMENTS_V2_SHARDS,
// RECENT_WINDOW, GLOBAL_COUNT, RANGE_PROBE and TIMER_PROBE.
include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_is_a_component_read_from_its_path() {
        let names: Vec<_> = ALL.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "payments-v1",
                "payments-v2",
                "starter",
                "faulty",
                "echo-v1",
                "echo-v2",
                "payments-v3"
            ]
        );
        assert!(
            !ALL.contains(&KEY_TOTALS),
            "a benchmark plugin, not an example"
        );
        let others = [
            KEY_TOTALS,
            KEY_TOTALS_V3,
            KEY_TOTALS_TIMED,
            PAYMENTS_V2_SHARDS,
            RECENT_WINDOW,
            GLOBAL_COUNT,
            RANGE_PROBE,
            TIMER_PROBE,
        ];
        for plugin in ALL.iter().chain(&others) {
            // A component's preamble: magic, then version 0x0d and layer 1
            // (a core module has layer 0).
            assert_eq!(
                plugin.bytes.get(..8),
                Some(&b"\0asm\x0d\x00\x01\x00"[..]),
                "{}",
                plugin.name
            );
            let on_disk = std::fs::read(plugin.path).expect("the built component is on disk");
            assert_eq!(on_disk, plugin.bytes, "{}", plugin.name);
        }
    }
}
