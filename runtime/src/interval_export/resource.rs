//! The OTLP resource attributes of the machine and of each process a profile's samples come
//! from, read from `/proc` when the profile is sent (a process that has exited by then keeps
//! only its pid).

use export::{AttributeValue, Attributes};

/// `host.name` (the kernel's hostname), and `service.name` when `--service` names one.
pub fn host(service: Option<&str>) -> Attributes {
    let mut out = Vec::new();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        out.push(("host.name".to_owned(), AttributeValue::Str(name.trim().to_owned())));
    }
    if let Some(service) = service {
        out.push(("service.name".to_owned(), AttributeValue::Str(service.to_owned())));
    }
    out
}

/// `process.pid`, `process.executable.name` (and, with `service_from_executable`, the same as
/// `service.name`), `process.executable.path`, and `container.id` when the process's cgroup
/// path names a container.
pub fn process(pid: u32, service_from_executable: bool) -> Attributes {
    let mut out = vec![("process.pid".to_owned(), AttributeValue::Int(i64::from(pid)))];
    let proc = format!("/proc/{pid}");
    if let Ok(comm) = std::fs::read_to_string(format!("{proc}/comm")) {
        let comm = comm.trim_end_matches('\n').to_owned();
        if service_from_executable {
            out.push(("service.name".to_owned(), AttributeValue::Str(comm.clone())));
        }
        out.push(("process.executable.name".to_owned(), AttributeValue::Str(comm)));
    }
    if let Ok(exe) = std::fs::read_link(format!("{proc}/exe")) {
        out.push(("process.executable.path".to_owned(), AttributeValue::Str(exe.display().to_string())));
    }
    if let Some(id) = std::fs::read_to_string(format!("{proc}/cgroup")).ok().as_deref().and_then(container_id) {
        out.push(("container.id".to_owned(), AttributeValue::Str(id)));
    }
    out
}

/// The container id a cgroup file names: the last 64-hex-digit word of a path
/// (`/system.slice/docker-<id>.scope`, `/kubepods/.../cri-containerd-<id>.scope`,
/// `/docker/<id>`), as the OpenTelemetry SDKs' container detectors find it.
fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .flat_map(|path| path.split(['/', '-', '.', ':']))
        .rfind(|word| word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_come_from_the_cgroup_path() {
        let id = "4c6e0f8e1b8a4b5f9d3c2a1e0f9e8d7c6b5a49383726150f0e1d2c3b4a596877";
        assert_eq!(container_id(&format!("0::/system.slice/docker-{id}.scope\n")), Some(id.to_owned()));
        assert_eq!(
            container_id(&format!("0::/kubepods/besteffort/pod1/cri-containerd-{id}.scope")),
            Some(id.to_owned())
        );
        assert_eq!(container_id(&format!("12:pids:/docker/{id}\n0::/")), Some(id.to_owned()));
        assert_eq!(container_id("0::/user.slice/user-1000.slice/session-2.scope\n"), None);
    }

    #[test]
    fn this_process_has_its_pid_and_name() {
        let attrs = process(std::process::id(), true);
        assert!(attrs.contains(&("process.pid".to_owned(), AttributeValue::Int(i64::from(std::process::id())))));
        assert!(attrs.iter().any(|(k, _)| k == "process.executable.name"));
        assert!(attrs.iter().any(|(k, _)| k == "service.name"));
    }
}
