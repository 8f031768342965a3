//! The kernel functions kprobes can attach to: tracefs' `available_filter_functions`, whose
//! lines read `vfs_read` or, for module functions, `nft_do_chain [nf_tables]`.

use crate::wildcard::wildcard_match;

/// The kernel's kprobe perf PMU. It, or tracefs' `kprobe_events`, is there when the kernel has
/// kprobes.
pub const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// Why kprobes cannot attach when neither is there.
pub const NO_KPROBES: &str = "this kernel has no kprobes (it was built without CONFIG_KPROBES)";

/// The functions of an `available_filter_functions` text matching `pattern`, sorted, each once.
pub fn matching_functions(text: &str, pattern: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        // As bpftrace: `.part.N` pieces of split functions cannot be traced.
        .filter(|f| !f.contains(".part.") && wildcard_match(f, pattern))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_and_split_pieces_are_left_out() {
        let text = "vfs_write\nvfs_read\nvfs_read.part.0\nnft_do_chain [nf_tables]\nvfs_read\n";
        assert_eq!(matching_functions(text, "vfs_*"), ["vfs_read", "vfs_write"]);
        assert_eq!(matching_functions(text, "nft_*"), ["nft_do_chain"]);
    }
}
