//! Continuous profiling: `--export URL` (repeatable) with `--export-every DURATION` (10 s by
//! default, or `exit`). Every interval, the maps keyed by stacks become one profile of what they
//! gained in it (`LoadedMap::dump_growth`: the maps are read, not cleared, so tracing goes on and
//! nothing counted between two reads is lost), sent to each destination. The last interval ends
//! when tracing does, after END.
//!
//! Destinations by scheme: `file://DIR`, one gzipped pprof per interval named by the time it
//! started (`DIR/samples-20261207T184501.123Z.pb.gz`), for people without a backend;
//! `otlp+http://HOST:PORT` (or `http[s]://HOST:PORT/PATH`), OTLP profiles over HTTP (`export`'s
//! `otlp`: one resource per process, with `host.name`, `service.name`, `process.pid`,
//! `process.executable.name`, `container.id`), sent from a thread of its own
//! (`delivery.rs`) so that a slow or absent backend never holds up tracing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::session::Session;
use crate::stack_export::{self, ExportOptions};

mod delivery;
mod resource;

/// `--export-every` when not given, as profilers ship.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(10);

/// Where profiles go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `file://DIR`.
    Dir(PathBuf),
    /// OTLP/HTTP: the URL profiles are POSTed to (`.../v1development/profiles`).
    OtlpHttp(String),
    /// Pyroscope's ingest API: `http://HOST:PORT/ingest`, a gzipped pprof per interval.
    Pyroscope(String),
}

/// Where OTLP/HTTP takes profiles, below the receiver's address (pinned with the proto release).
const OTLP_HTTP_PATH: &str = "/v1development/profiles";

impl Destination {
    /// A destination as `--export` names it.
    pub fn parse(url: &str) -> Result<Destination, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("--export {url}: write a URL, e.g. file:///var/tmp/profiles"));
        };
        match scheme {
            "file" if rest.starts_with('/') => Ok(Destination::Dir(PathBuf::from(rest))),
            "file" => {
                Err(format!("--export {url}: a file:// URL names an absolute directory, e.g. file:///var/tmp/profiles"))
            }
            "otlp+http" | "otlp+https" if !rest.is_empty() => {
                let scheme = scheme.trim_start_matches("otlp+");
                let address = rest.trim_end_matches('/');
                if address.contains('/') {
                    return Err(format!(
                        "--export {url}: otlp+http:// takes HOST:PORT; write http://HOST:PORT/PATH for another path"
                    ));
                }
                Ok(Destination::OtlpHttp(format!("{scheme}://{address}{OTLP_HTTP_PATH}")))
            }
            "pyroscope" | "pyroscope+https" if !rest.is_empty() && !rest.trim_end_matches('/').contains('/') => {
                let scheme = if scheme == "pyroscope" { "http" } else { "https" };
                Ok(Destination::Pyroscope(format!("{scheme}://{}/ingest", rest.trim_end_matches('/'))))
            }
            "http" | "https" if rest.contains('/') => Ok(Destination::OtlpHttp(url.to_owned())),
            "http" | "https" => Ok(Destination::OtlpHttp(format!("{url}{OTLP_HTTP_PATH}"))),
            other => Err(format!(
                "--export {url}: rbt cannot send profiles to {other}:// (it sends to otlp+http://, http://, pyroscope://, file://)"
            )),
        }
    }
}

/// `--export-every`: `10s`, `500ms`, `1m`, or `exit` (one profile, when tracing ends).
pub fn parse_every(text: &str) -> Result<Option<Duration>, String> {
    if text == "exit" {
        return Ok(None);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("--export-every {text}: write e.g. 10s, 500ms, 1m or exit"))?;
    let every = match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(format!("--export-every {text}: the units are ms, s and m")),
    };
    if every < Duration::from_millis(100) {
        return Err(format!("--export-every {text}: at least 100ms"));
    }
    Ok(Some(every))
}

/// The continuous export of one run.
pub struct IntervalExport {
    destinations: Vec<Destination>,
    /// The sending thread, for destinations over the network.
    delivery: Option<delivery::Delivery>,
    /// `--service NAME`, else each process's executable name.
    service: Option<String>,
    every: Option<Duration>,
    /// When the interval being gathered started, and when it is due to end (intervals are
    /// scheduled from the first, so they do not drift by the time each export takes).
    started: Instant,
    started_unix_ns: i64,
    due: Instant,
    /// Each stack map's totals per raw key at the last export, by map index.
    previous: HashMap<usize, HashMap<Vec<u8>, i64>>,
    /// Intervals exported, for file names and the report at exit.
    sent: u64,
    /// Intervals that could not be written, and the first reason.
    failed: u64,
    first_failure: Option<String>,
}

impl IntervalExport {
    pub fn new(destinations: Vec<Destination>, every: Option<Duration>, service: Option<String>) -> Self {
        let remote = destinations.iter().any(|d| !matches!(d, Destination::Dir(_)));
        IntervalExport {
            delivery: remote.then(delivery::Delivery::start),
            service,
            destinations,
            every,
            started: Instant::now(),
            started_unix_ns: unix_ns(),
            due: Instant::now(),
            previous: HashMap::new(),
            sent: 0,
            failed: 0,
            first_failure: None,
        }
    }

    /// Tracing starts now: the first interval begins.
    pub fn start(&mut self) {
        self.started = Instant::now();
        self.started_unix_ns = unix_ns();
        self.due = self.started + self.every.unwrap_or_default();
    }

    /// Exports the interval if it is over.
    pub fn tick(&mut self, session: &Session, options: &ExportOptions) {
        let Some(every) = self.every else { return };
        let now = Instant::now();
        if now >= self.due {
            self.export(session, options);
            self.due += every;
            if self.due <= now {
                // Far behind (a stopped process, a long pause): start afresh from now.
                self.due = now + every;
            }
        }
    }

    /// Exports what the stack maps gained since the last export; the next interval starts
    /// when this one's maps are read.
    pub fn export(&mut self, session: &Session, options: &ExportOptions) {
        let (ended, ended_unix_ns) = (Instant::now(), unix_ns());
        // In wall-clock time, as the profile's start is: one interval ends where the next starts.
        let duration = ended_unix_ns.saturating_sub(self.started_unix_ns).max(0);
        let mut dumps = Vec::new();
        for index in 0..session.program.maps.len() {
            let previous = self.previous.entry(index).or_default();
            match session.loaded_map(index).dump_growth(previous) {
                Ok(Some(dump)) => dumps.push(dump),
                Ok(None) => {}
                Err(e) => self.failure(format!("cannot read {}: {e}", session.program.maps[index].display_name())),
            }
        }
        // Maps that gained nothing still say what they measure: an empty profile is sent.
        let stack_maps: Vec<_> = dumps.into_iter().filter(stack_export::has_stacks).collect();
        let interval = ExportOptions { started_unix_ns: self.started_unix_ns, ..options.clone() };
        let profile = stack_export::profile(&stack_maps, &interval, duration).map(|mut p| {
            p.modules = session
                .stacks
                .modules()
                .into_iter()
                .map(|(path, build_id)| export::Module { path, build_id })
                .collect();
            p
        });
        if let Some(profile) = profile {
            for destination in self.destinations.clone() {
                if let Err(e) = self.send(&destination, &profile) {
                    self.failure(e);
                }
            }
            self.sent += 1;
        }
        self.started = ended;
        self.started_unix_ns = ended_unix_ns;
    }

    fn send(&self, destination: &Destination, profile: &export::Profile) -> Result<(), String> {
        match destination {
            Destination::Dir(dir) => {
                let name = format!("{}-{}.pb.gz", profile.sample_type.kind, file_time(profile.time_nanos));
                let path = dir.join(name);
                let partial = dir.join(format!(".{}.partial", self.sent));
                let file =
                    std::fs::File::create(&partial).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
                export::write_pprof(profile, std::io::BufWriter::new(file)).map_err(|e| e.to_string())?;
                // Whole files only: a reader watching DIR never sees one half written.
                std::fs::rename(&partial, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            Destination::OtlpHttp(url) => {
                let host = resource::host(self.service.as_deref());
                let service = self.service.clone();
                let body = export::encode_otlp(profile, &host, &|pid| resource::process(pid, service.is_none()));
                if let Some(delivery) = &self.delivery {
                    delivery.send(delivery::Job { url: url.clone(), content_type: "application/x-protobuf", body });
                }
                Ok(())
            }
            Destination::Pyroscope(ingest) => {
                let mut body = Vec::new();
                export::write_pprof(profile, &mut body).map_err(|e| e.to_string())?;
                let url = pyroscope_url(ingest, self.service.as_deref().unwrap_or("rbt"), profile);
                if let Some(delivery) = &self.delivery {
                    delivery.send(delivery::Job { url, content_type: "application/octet-stream", body });
                }
                Ok(())
            }
        }
    }

    fn failure(&mut self, why: String) {
        if self.failed == 0 {
            eprintln!("WARNING: export: {why}");
            self.first_failure = Some(why);
        }
        self.failed += 1;
    }

    /// At exit: what is queued goes out, and the intervals that could not be exported are
    /// said once more.
    pub fn report(&mut self) {
        if let Some(delivery) = self.delivery.take() {
            delivery.finish();
        }
        if let (true, Some(why)) = (self.failed > 0, &self.first_failure) {
            eprintln!("WARNING: {} of {} profile exports failed (the first: {why})", self.failed, self.sent);
        }
    }
}

/// Pyroscope's `/ingest?name=SERVICE.KIND{hostname=HOST}&from=S&until=S&format=pprof`: the
/// application is the service and what the profile measures, labelled with the machine.
fn pyroscope_url(ingest: &str, service: &str, profile: &export::Profile) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = format!("{service}.{}{{hostname={}}}", profile.sample_type.kind, host.trim());
    let from = profile.time_nanos / 1_000_000_000;
    let until = (profile.time_nanos + profile.duration_nanos) / 1_000_000_000;
    format!(
        "{ingest}?name={}&from={from}&until={}&format=pprof&spyName=rbt",
        percent_encode(&name),
        until.max(from + 1)
    )
}

/// `text` as a URL's query value: unreserved characters as they are, others `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `20261207T184501.123Z`: UTC, to the millisecond, sorting as time does.
fn file_time(unix_ns: i64) -> String {
    let ms = unix_ns.div_euclid(1_000_000);
    let (seconds, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, in_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{millis:03}Z", in_day / 3600, in_day % 3600 / 60, in_day % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_intervals_parse_or_say_why() {
        assert_eq!(Destination::parse("file:///var/tmp/p"), Ok(Destination::Dir("/var/tmp/p".into())));
        assert!(Destination::parse("file://relative").unwrap_err().contains("absolute"));
        assert!(Destination::parse("gopher://x").unwrap_err().contains("cannot send profiles to gopher://"));
        assert!(Destination::parse("/tmp").unwrap_err().contains("write a URL"));
        let otlp = |u: &str| Destination::OtlpHttp(u.to_owned());
        assert_eq!(
            Destination::parse("otlp+http://collector:4318"),
            Ok(otlp("http://collector:4318/v1development/profiles"))
        );
        assert_eq!(Destination::parse("otlp+https://c:4318/"), Ok(otlp("https://c:4318/v1development/profiles")));
        assert_eq!(Destination::parse("http://c:4318"), Ok(otlp("http://c:4318/v1development/profiles")));
        assert_eq!(Destination::parse("http://c/custom/path"), Ok(otlp("http://c/custom/path")));
        assert!(Destination::parse("otlp+http://c:4318/x").is_err());
        assert_eq!(Destination::parse("pyroscope://p:4040"), Ok(Destination::Pyroscope("http://p:4040/ingest".into())));
        assert_eq!(percent_encode("rbt.samples{hostname=a b}"), "rbt.samples%7Bhostname%3Da%20b%7D");
        assert_eq!(parse_every("10s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(parse_every("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse_every("2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_every("exit"), Ok(None));
        assert!(parse_every("10x").is_err() && parse_every("s").is_err() && parse_every("5ms").is_err());
    }

    #[test]
    fn file_times_are_utc_to_the_millisecond() {
        assert_eq!(file_time(0), "19700101T000000.000Z");
        // 2026-12-07 18:45:01.123 UTC
        assert_eq!(file_time(1_796_669_101_123_000_000), "20261207T184501.123Z");
        // 2024-02-29 (a leap day) 23:59:59.999
        assert_eq!(file_time(1_709_251_199_999_000_000), "20240229T235959.999Z");
    }
}
