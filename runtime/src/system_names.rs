//! Names the system gives to ids a probe recorded, looked up when a value prints: `username`'s
//! uid in `/etc/passwd`, and `cgroup_path()`'s cgroup id in every cgroup hierarchy mounted, both
//! as bpftrace 0.17 looks them up; and `strerror()`'s error number in the C library.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

/// The C library's text for error number `errno` (`Operation not permitted`; `Unknown error N`
/// for a number it does not know), as bpftrace prints `strerror()`.
pub fn error_text(errno: u64) -> String {
    let Ok(code) = i32::try_from(errno) else { return format!("Unknown error {}", errno as i64) };
    // std's text is strerror_r's followed by " (os error N)".
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let suffix = format!(" (os error {code})");
    text.strip_suffix(&suffix).map(str::to_owned).unwrap_or(text)
}

/// The name of user `uid` in `/etc/passwd`; empty when no line has it.
pub fn user_name(uid: u64) -> String {
    match std::fs::read_to_string("/etc/passwd") {
        Ok(passwd) => user_name_in(&passwd, uid),
        Err(e) => {
            eprintln!("ERROR: {e}: /etc/passwd");
            String::new()
        }
    }
}

/// The first `name:x:UID:...` line of a passwd file whose third field is `uid`.
fn user_name_in(passwd: &str, uid: u64) -> String {
    let uid = uid.to_string();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&uid.as_str()))
        .map(|fields| fields[0].to_owned())
        .unwrap_or_default()
}

/// `cgroup_path(id, filter)` as it prints: `NAME:PATH` for every hierarchy whose name matches
/// `filter` and holds the cgroup, joined by commas, cgroup v2 (`unified`) first and the v1
/// hierarchies by name.
pub fn cgroup_path(id: u64, filter: &str) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let roots = cgroup_roots(&mounts);
    let mut found: Vec<(String, String)> = roots
        .into_iter()
        .filter(|(name, _)| catalog::wildcard_match(name, filter))
        .map(|(name, base)| {
            let path = path_in_hierarchy(id, &base);
            (name, path)
        })
        .collect();
    found.sort_by(|(a, _), (b, _)| (a != "unified", a).cmp(&(b != "unified", b)));
    let parts: Vec<String> =
        found.into_iter().filter(|(_, path)| !path.is_empty()).map(|(name, path)| format!("{name}:{path}")).collect();
    parts.join(",")
}

/// The cgroup hierarchies of a `/proc/mounts` text, named as bpftrace names them: `unified` for
/// cgroup v2, the mount point's last component (`cpu`, `memory`) for v1. Like bpftrace, it goes
/// by a line's first field (the mount's source), which is `cgroup` or `cgroup2` on every common
/// system:
///
/// ```text
/// cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
/// cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
/// ```
fn cgroup_roots(mounts: &str) -> Vec<(String, String)> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = fields.next()?;
            let base = fields.next()?;
            let name = match source {
                "cgroup2" => "unified".to_owned(),
                "cgroup" => Path::new(base).file_name()?.to_string_lossy().into_owned(),
                _ => return None,
            };
            Some((name, base.to_owned()))
        })
        .collect()
}

/// Paths found before, by (id, hierarchy), each checked again before it is used (a cgroup
/// removed and another made may reuse the inode).
static FOUND: Mutex<Option<HashMap<(u64, String), String>>> = Mutex::new(None);

/// The path of the cgroup whose directory's inode is `id` inside the hierarchy mounted at
/// `base` (`/` for the hierarchy's root); empty when it is not there.
fn path_in_hierarchy(id: u64, base: &str) -> String {
    let inode = |path: &Path| std::fs::metadata(path).ok().map(|m| m.ino());
    let key = (id, base.to_owned());
    let mut cache = FOUND.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(path) = cache.get(&key) {
        let full = if path == "/" { base.to_owned() } else { format!("{base}{path}") };
        if inode(Path::new(&full)) == Some(id) {
            return path.clone();
        }
    }
    let found =
        if inode(Path::new(base)) == Some(id) { Some("/".to_owned()) } else { search(Path::new(base), id, base) };
    match found {
        Some(path) => {
            cache.insert(key, path.clone());
            path
        }
        None => String::new(),
    }
}

/// Depth first, in directory order, as bpftrace's `recursive_directory_iterator` walks (not
/// into symbolic links). `None` when the cgroup is not below `dir`; like bpftrace, the walk
/// gives up at the first entry it cannot stat.
fn search(dir: &Path, id: u64, base: &str) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::metadata(&path).ok()?;
        if meta.ino() == id {
            return Some(path.to_string_lossy()[base.len()..].to_owned());
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            if let Some(found) = search(&path, id, base) {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_named_by_their_third_field() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbad line\nnobody:x:65534:65534::/:/sbin/nologin\n";
        assert_eq!(user_name_in(passwd, 0), "root");
        assert_eq!(user_name_in(passwd, 65534), "nobody");
        assert_eq!(user_name_in(passwd, 1000), "");
    }

    #[test]
    fn hierarchies_are_named_as_bpftrace_names_them() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\nproc /proc proc rw 0 0\n";
        assert_eq!(
            cgroup_roots(mounts),
            vec![
                ("cpu".to_owned(), "/sys/fs/cgroup/cpu".to_owned()),
                ("unified".to_owned(), "/sys/fs/cgroup/unified".to_owned())
            ]
        );
    }

    #[test]
    fn a_cgroup_is_found_below_its_hierarchy() {
        let root = std::env::temp_dir().join(format!("rbt-cgroup-test-{}", std::process::id()));
        let deep = root.join("a.slice").join("b.scope");
        std::fs::create_dir_all(&deep).expect("temporary directories");
        let id = std::fs::metadata(&deep).expect("stat").ino();
        let base = root.to_string_lossy().into_owned();
        assert_eq!(path_in_hierarchy(id, &base), "/a.slice/b.scope");
        // Found again through the cache.
        assert_eq!(path_in_hierarchy(id, &base), "/a.slice/b.scope");
        let root_id = std::fs::metadata(&root).expect("stat").ino();
        assert_eq!(path_in_hierarchy(root_id, &base), "/");
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert_eq!(path_in_hierarchy(id, &base), "");
    }
}

#[cfg(test)]
mod error_text_tests {
    use super::error_text;

    #[test]
    fn error_numbers_read_as_the_c_library_writes_them() {
        assert_eq!(error_text(1), "Operation not permitted");
        assert_eq!(error_text(2), "No such file or directory");
        assert_eq!(error_text(9999), "Unknown error 9999");
    }
}
