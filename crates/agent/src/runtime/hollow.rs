//! The hollow runtime. TODO(helper): implement.

/// Runs nothing: a container runs from `start` until `stop`.
pub struct HollowRuntime {}

impl HollowRuntime {
    pub fn new() -> HollowRuntime {
        HollowRuntime {}
    }
}
