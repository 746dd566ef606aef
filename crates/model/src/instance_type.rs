//! What common EC2 instance types have: vCPUs and memory, as ECS registers them.
//!
//! Tools that register a host with nothing but its EC2 instance identity document send no
//! `totalResources`; ECS then knows the host's size from its instance type. berth keeps a small
//! table of the common general-purpose, compute and memory types for that case. A type missing
//! here is registered with no CPU and no memory (and the server says so), never refused: the
//! table is a convenience, not a list of what may join.

/// CPU (1024 units per vCPU) and memory (MiB) of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// CPU units: vCPUs × 1024.
    pub cpu: i64,
    /// Memory in MiB.
    pub memory: i64,
}

/// (instance type, vCPUs, memory in MiB), sorted by name for the binary search.
const TYPES: &[(&str, i64, i64)] = &[
    ("c5.12xlarge", 48, 96 * 1024),
    ("c5.18xlarge", 72, 144 * 1024),
    ("c5.24xlarge", 96, 192 * 1024),
    ("c5.2xlarge", 8, 16 * 1024),
    ("c5.4xlarge", 16, 32 * 1024),
    ("c5.9xlarge", 36, 72 * 1024),
    ("c5.large", 2, 4 * 1024),
    ("c5.metal", 96, 192 * 1024),
    ("c5.xlarge", 4, 8 * 1024),
    // m1: the previous generation's sizes are not whole GiB (1.7, 3.75, 7.5, 15 GiB).
    ("m1.large", 2, 7680),
    ("m1.medium", 1, 3840),
    ("m1.small", 1, 1740),
    ("m1.xlarge", 4, 15360),
    ("m5.12xlarge", 48, 192 * 1024),
    ("m5.16xlarge", 64, 256 * 1024),
    ("m5.24xlarge", 96, 384 * 1024),
    ("m5.2xlarge", 8, 32 * 1024),
    ("m5.4xlarge", 16, 64 * 1024),
    ("m5.8xlarge", 32, 128 * 1024),
    ("m5.large", 2, 8 * 1024),
    ("m5.metal", 96, 384 * 1024),
    ("m5.xlarge", 4, 16 * 1024),
    ("r5.12xlarge", 48, 384 * 1024),
    ("r5.16xlarge", 64, 512 * 1024),
    ("r5.24xlarge", 96, 768 * 1024),
    ("r5.2xlarge", 8, 64 * 1024),
    ("r5.4xlarge", 16, 128 * 1024),
    ("r5.8xlarge", 32, 256 * 1024),
    ("r5.large", 2, 16 * 1024),
    ("r5.metal", 96, 768 * 1024),
    ("r5.xlarge", 4, 32 * 1024),
    ("t2.2xlarge", 8, 32 * 1024),
    ("t2.large", 2, 8 * 1024),
    ("t2.medium", 2, 4 * 1024),
    ("t2.micro", 1, 1024),
    ("t2.nano", 1, 512),
    ("t2.small", 1, 2 * 1024),
    ("t2.xlarge", 4, 16 * 1024),
    ("t3.2xlarge", 8, 32 * 1024),
    ("t3.large", 2, 8 * 1024),
    ("t3.medium", 2, 4 * 1024),
    ("t3.micro", 2, 1024),
    ("t3.nano", 2, 512),
    ("t3.small", 2, 2 * 1024),
    ("t3.xlarge", 4, 16 * 1024),
    ("t3a.2xlarge", 8, 32 * 1024),
    ("t3a.large", 2, 8 * 1024),
    ("t3a.medium", 2, 4 * 1024),
    ("t3a.micro", 2, 1024),
    ("t3a.nano", 2, 512),
    ("t3a.small", 2, 2 * 1024),
    ("t3a.xlarge", 4, 16 * 1024),
];

/// The capacity of `instance_type` (`t3.medium`, `m5.large`, ...), if berth knows the type.
pub fn capacity(instance_type: &str) -> Option<Capacity> {
    TYPES
        .binary_search_by(|(name, _, _)| (*name).cmp(instance_type))
        .ok()
        .map(|i| {
            let (_, vcpus, memory) = TYPES[i];
            Capacity {
                cpu: vcpus * 1024,
                memory,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_has_no_duplicates() {
        for pair in TYPES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn every_type_in_the_table_is_found() {
        for (name, vcpus, memory) in TYPES {
            assert_eq!(
                capacity(name),
                Some(Capacity {
                    cpu: vcpus * 1024,
                    memory: *memory
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn common_types_have_their_published_sizes() {
        let c = |cpu, memory| Some(Capacity { cpu, memory });
        assert_eq!(capacity("t2.micro"), c(1024, 1024));
        assert_eq!(capacity("t3.micro"), c(2048, 1024));
        assert_eq!(capacity("t3.medium"), c(2048, 4096));
        assert_eq!(capacity("m1.small"), c(1024, 1740));
        assert_eq!(capacity("m5.large"), c(2048, 8192));
        assert_eq!(capacity("m5.24xlarge"), c(96 * 1024, 384 * 1024));
        assert_eq!(capacity("c5.large"), c(2048, 4096));
        assert_eq!(capacity("c5.9xlarge"), c(36 * 1024, 72 * 1024));
        assert_eq!(capacity("r5.large"), c(2048, 16384));
        assert_eq!(capacity("r5.metal"), c(96 * 1024, 768 * 1024));
    }

    #[test]
    fn unknown_types_are_none() {
        for name in [
            "",
            "t3",
            "T3.MEDIUM",
            "t3.medium ",
            "p4d.24xlarge",
            "m5.huge",
        ] {
            assert_eq!(capacity(name), None, "{name:?}");
        }
    }
}
