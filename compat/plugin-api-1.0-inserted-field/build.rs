//! Writes `$OUT_DIR/abi.rs`: plugin-api 1.0's `abi.rs` (../plugin-api-1.0) with one field
//! inserted in `HostVTable` between `execute` and `log`, the change `ABI.md` forbids.

use std::path::Path;

fn main() {
    let frozen = Path::new("../plugin-api-1.0/src/abi.rs");
    println!("cargo:rerun-if-changed={}", frozen.display());
    let text = std::fs::read_to_string(frozen).expect("the frozen 1.0 abi.rs");
    // `include!` takes items only: leave out the file's inner doc comment.
    let items: String = text
        .lines()
        .filter(|line| !line.starts_with("//!"))
        .map(|line| format!("{line}\n"))
        .collect();
    let anchor = "    /// Writes a line to the host's log, tagged with the plugin's name.\n";
    assert!(items.contains(anchor), "HostVTable's `log` field moved");
    let inserted = "    /// Inserted in the middle: what a modified SDK must never do.\n    \
                    pub flush_logs: extern \"C\" fn(host: FfiHost),\n";
    let modified = items.replacen(anchor, &format!("{inserted}{anchor}"), 1);
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("abi.rs");
    std::fs::write(out, modified).expect("write abi.rs");
}
