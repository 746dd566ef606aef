//! The process runtime. TODO(helper): implement.

use std::ffi::OsString;
use std::path::PathBuf;

/// Runs containers as host process groups, each owned by a `berth process-shim`.
pub struct ProcessRuntime {}

impl ProcessRuntime {
    /// `shim`: the program to run as `<shim> process-shim ...` (the `berth` binary);
    /// `root`: where sandboxes live when a spec names none.
    pub fn new(shim: PathBuf, root: PathBuf) -> ProcessRuntime {
        let _ = (shim, root);
        ProcessRuntime {}
    }
}

/// The shim's main: `berth process-shim <args>`. Returns the exit code for the shim process.
pub fn shim_main(args: Vec<OsString>) -> i32 {
    let _ = args;
    1
}
