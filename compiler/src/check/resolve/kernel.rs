//! Checks of kernel function probes beside their resolving in `resolve.rs`: a kprobe's offset
//! against the function's size, and which module parts of `fentry:MODULE:FUNC` name the kernel
//! image.

use super::Resolver;
use grammar::ast::ProbeSpec;
use grammar::Diagnostic;

impl Resolver<'_> {
    /// Refuses `kprobe:FUNC+OFFSET` past the end of a function, as bpftrace 0.17 does before
    /// attaching (in its words): the kernel would place it in whatever function follows, or
    /// answer that it is not at an instruction boundary. The size is the catalog's (from
    /// `/proc/kallsyms`); a function of unknown size is left to the kernel.
    pub(super) fn offsets_in_bounds(&mut self, functions: &[String], offset: u64, spec: &ProbeSpec) -> bool {
        for func in functions {
            let Some(size) = self.catalog.kernel_function_size(func) else { continue };
            if offset >= size {
                self.error(Diagnostic::error(
                    "bad-attach-point",
                    format!("Offset outside the function bounds ('{func}' size is {size})"),
                    spec.span,
                ));
                return false;
            }
        }
        true
    }
}

/// Whether the module part of `fentry:MODULE:FUNC` names the kernel image: `vmlinux`, or a
/// wildcard matching it (`vmlinu*`, `*`), as bpftrace 0.17 matches it against the modules with
/// BTF, the kernel's own among them.
pub(super) fn names_the_kernel(module: &str) -> bool {
    wildcard_match(module, "vmlinux")
}

/// `*`-only wildcard matching, as bpftrace's probe matcher does it.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else { return false };
            (0..=rest.len()).filter(|&i| rest.is_char_boundary(i)).any(|i| wildcard_match(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_parts_that_name_the_kernel() {
        for module in ["vmlinux", "vmlinu*", "*", "vm*x", "*linux", "v*l*x"] {
            assert!(names_the_kernel(module), "{module}");
        }
        for module in ["ext4", "vmlinu", "vmlinux*x", "*ext4*", "nf_*"] {
            assert!(!names_the_kernel(module), "{module}");
        }
    }
}
