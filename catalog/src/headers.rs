//! Where a system's C headers are, for `#include <...>` in scripts: the kernel's include tree
//! when it is installed (as bpftrace 0.17 finds it: the trees the user names, else
//! `/lib/modules/RELEASE/source` and `build`, either standing in for the other; Debian's
//! `/usr/src/linux-headers-RELEASE` besides), in the order of the kernel's own Makefile, then
//! the C library's directories.

use std::path::Path;

use grammar::SystemIncludes;

use crate::source::Source;

/// The kernel's name for this machine's architecture and the C library's multiarch triple.
fn arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        "x86" => ("x86", "i386-linux-gnu"),
        "riscv64" => ("riscv", "riscv64-linux-gnu"),
        "s390x" => ("s390", "s390x-linux-gnu"),
        "powerpc64" => ("powerpc", "powerpc64le-linux-gnu"),
        _ => ("x86", "x86_64-linux-gnu"),
    }
}

fn is_dir(source: &impl Source, path: &str) -> bool {
    source.list(Path::new(path)).is_ok()
}

/// The include directories of `source`'s system; `kernel` names the kernel's source and build
/// trees when the user gave them.
pub(crate) fn system_includes(source: &impl Source, kernel: Option<(String, String)>) -> SystemIncludes {
    let release = source
        .read(Path::new("/proc/sys/kernel/osrelease"))
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let (kernel_arch, triple) = arch();
    let kernel = kernel.or_else(|| {
        let modules = format!("/lib/modules/{release}");
        let found = |path: String| (!release.is_empty() && is_dir(source, &path)).then_some(path);
        let ksrc = found(format!("{modules}/source"));
        let kobj = found(format!("{modules}/build")).or_else(|| found(format!("/usr/src/linux-headers-{release}")));
        match (ksrc, kobj) {
            (Some(s), Some(o)) => Some((s, o)),
            (Some(s), None) => Some((s.clone(), s)),
            (None, Some(o)) => Some((o.clone(), o)),
            (None, None) => None,
        }
    });
    let kernel_tree = kernel.is_some();
    let a = kernel_arch;
    let mut dirs: Vec<String> = kernel
        .map(|(ksrc, kobj)| {
            vec![
                format!("{ksrc}/arch/{a}/include"),
                format!("{kobj}/arch/{a}/include/generated"),
                format!("{ksrc}/include"),
                format!("{kobj}/include"),
                format!("{ksrc}/arch/{a}/include/uapi"),
                format!("{kobj}/arch/{a}/include/generated/uapi"),
                format!("{ksrc}/include/uapi"),
                format!("{kobj}/include/generated/uapi"),
            ]
        })
        .unwrap_or_default();
    dirs.extend(["/usr/local/include".to_owned(), format!("/usr/include/{triple}"), "/usr/include".to_owned()]);
    SystemIncludes { dirs, kernel_tree }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemSource;

    #[test]
    fn a_kernel_tree_comes_before_the_c_library() {
        let source = MemSource::default()
            .with_file("/proc/sys/kernel/osrelease", "6.1.0-9-amd64\n")
            .with_file("/lib/modules/6.1.0-9-amd64/build/include/linux/sched.h", "");
        let found = system_includes(&source, None);
        assert!(found.kernel_tree);
        assert_eq!(found.dirs[2], "/lib/modules/6.1.0-9-amd64/build/include");
        assert_eq!(found.dirs.last().map(String::as_str), Some("/usr/include"));
    }

    #[test]
    fn without_one_only_the_c_library_is_searched() {
        let source = MemSource::default().with_file("/proc/sys/kernel/osrelease", "6.18.0\n");
        let found = system_includes(&source, None);
        assert!(!found.kernel_tree);
        assert_eq!(found.dirs.len(), 3);
        let given = system_includes(&source, Some(("/src".into(), "/obj".into())));
        assert_eq!(given.dirs[..3], ["/src/arch/x86/include", "/obj/arch/x86/include/generated", "/src/include"]);
    }
}
