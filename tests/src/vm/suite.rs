//! bpftrace 0.17's runtime suite read and judged in Rust, for the VM (whose guest has no Python):
//! the test files parsed as the engine's `parser.py` parses them, a test's command built as its
//! `runner.py` builds it, its `EXPECT` (a Python regular expression) translated for the `regex`
//! crate, and the engine's verdict given from what `rbt-suite-guest` reported from the guest
//! (`src/bin/suite_guest.rs` runs the test there as the engine would).

use std::collections::BTreeMap;
use std::path::Path;

/// The `REQUIRES_FEATURE` names the engine knows.
const FEATURES: [&str; 14] = [
    "loop",
    "btf",
    "kfunc",
    "probe_read_kernel",
    "dpath",
    "uprobe_refcount",
    "signal",
    "iter:task",
    "iter:task_file",
    "libpath_resolv",
    "dwarf",
    "aot",
    "kprobe_multi",
    "skboutput",
];

/// One test of the suite, as `parser.py`'s `TestStruct` holds it (values with their whitespace
/// collapsed, as the parser's `' '.join(line.split()[1:])` leaves them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SuiteTest {
    /// The file's name (`probe`, `call`...).
    pub suite: String,
    pub name: String,
    /// `SUITE.NAME`, or `SUITE.NAME (2)` for the second test of that name (as `run.py` names it).
    pub id: String,
    pub run: String,
    pub prog: String,
    pub expect: String,
    pub timeout: u32,
    pub before: String,
    pub after: String,
    pub kernel_min: String,
    pub kernel_max: String,
    pub requires: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Feature names, `!NAME` for the ones that must be absent.
    pub features: Vec<String>,
    pub will_fail: bool,
}

impl SuiteTest {
    /// The shell command the engine runs for this test (`prepare_bpf_call`), with `bpftrace` the
    /// path of the tool under test.
    pub fn command(&self, bpftrace: &str) -> String {
        if self.run.is_empty() {
            format!("{bpftrace} -e '{}'", self.prog)
        } else {
            self.run.replace("{{BPFTRACE}}", bpftrace)
        }
    }
}

/// Every test of the suite's directory `runtime` (its files; `engine/`, `scripts/` and
/// `outputs/` are not test files), by file name and then in file order; x86_64 tests only.
pub fn read_suite(runtime: &Path) -> Result<Vec<SuiteTest>, String> {
    let mut files: Vec<_> = std::fs::read_dir(runtime)
        .map_err(|e| format!("cannot read {}: {e}", runtime.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    let mut tests = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let suite = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        tests.extend(parse_file(&suite, &text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(tests)
}

/// The tests of one file, as `TestParser.read` finds them: `#` lines skipped, tests separated by
/// empty lines.
pub fn parse_file(suite: &str, text: &str) -> Result<Vec<SuiteTest>, String> {
    let mut tests: Vec<SuiteTest> = Vec::new();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut block: Vec<&str> = Vec::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (index, line) in lines.iter().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if *line != "\n" {
            block.push(line);
        }
        if (*line == "\n" || index + 1 == lines.len()) && !block.is_empty() {
            let test = parse_test(suite, &block)?;
            block.clear();
            let Some(mut test) = test else { continue };
            let count = seen.entry(test.name.clone()).or_default();
            *count += 1;
            test.id = match *count {
                1 => format!("{suite}.{}", test.name),
                n => format!("{suite}.{} ({n})", test.name),
            };
            tests.push(test);
        }
    }
    Ok(tests)
}

/// One test's lines (`__read_test_struct`), with its checks of required fields; `None` for a
/// test of another machine (`ARCH`).
fn parse_test(suite: &str, lines: &[&str]) -> Result<Option<SuiteTest>, String> {
    let mut test = SuiteTest { suite: suite.to_owned(), ..SuiteTest::default() };
    let mut timeout = None;
    let mut arch = Vec::new();
    for line in lines {
        let mut words = line.split_whitespace();
        let Some(field) = words.next() else { continue };
        let value = words.collect::<Vec<_>>().join(" ");
        match field {
            "NAME" => test.name = value,
            "RUN" => test.run = value,
            "PROG" => test.prog = value,
            "EXPECT" => test.expect = value,
            "TIMEOUT" => timeout = Some(value.parse().map_err(|_| format!("TIMEOUT {value:?} is not a number"))?),
            "BEFORE" => test.before = value,
            "AFTER" => test.after = value,
            "MIN_KERNEL" => test.kernel_min = value,
            "MAX_KERNEL" => test.kernel_max = value,
            "REQUIRES" => test.requires.push(value),
            "ENV" => {
                for pair in value.split_whitespace() {
                    let (key, value) = pair.split_once('=').ok_or_else(|| format!("ENV {pair:?} is not KEY=VALUE"))?;
                    test.env.push((key.to_owned(), value.to_owned()));
                }
            }
            "ARCH" => arch = value.split('|').map(|a| a.trim().to_owned()).collect(),
            "REQUIRES_FEATURE" => {
                for feature in value.split(' ').map(str::trim) {
                    if !FEATURES.contains(&feature.trim_start_matches('!')) {
                        return Err(format!("{feature} is invalid for REQUIRES_FEATURE"));
                    }
                    test.features.push(feature.to_owned());
                }
            }
            "WILL_FAIL" => test.will_fail = true,
            _ => return Err(format!("field {field} is unknown")),
        }
    }
    let name = &test.name;
    if name.is_empty() {
        return Err("a test has no NAME".into());
    }
    if test.run.is_empty() == test.prog.is_empty() {
        return Err(format!("{name}: needs one of RUN and PROG"));
    }
    if test.expect.is_empty() {
        return Err(format!("{name}: has no EXPECT"));
    }
    test.timeout = timeout.ok_or_else(|| format!("{name}: has no TIMEOUT"))?;
    // The engine drops tests for other machines.
    Ok((arch.is_empty() || arch.iter().any(|a| a == std::env::consts::ARCH)).then_some(test))
}

/// A Python regular expression as the `regex` crate can run it, searched as `re.search` does.
pub struct PythonRegex {
    /// For `re.search(expect, output, re.M)`.
    multi_line: regex::Regex,
    /// For `re.search(expect, output)`.
    single_line: regex::Regex,
}

impl PythonRegex {
    pub fn new(expression: &str) -> Result<PythonRegex, String> {
        let translated = translate(expression);
        let build = |prefix: &str| {
            regex::Regex::new(&format!("{prefix}{translated}"))
                .map_err(|e| format!("EXPECT {expression:?} (as {translated:?}): {e}"))
        };
        Ok(PythonRegex { multi_line: build("(?m)")?, single_line: build("")? })
    }

    /// `re.search(expression, text, re.M)`.
    pub fn search_multi_line(&self, text: &str) -> bool {
        self.multi_line.is_match(text)
    }

    /// `re.search(expression, text)`: without `re.M`, Python's `$` also matches before a last
    /// newline, which a search of the text without that newline covers.
    pub fn search(&self, text: &str) -> bool {
        self.single_line.is_match(text) || text.strip_suffix('\n').is_some_and(|t| self.single_line.is_match(t))
    }
}

/// Python's syntax where the `regex` crate's differs: a `{` that starts no `{m}`, `{m,}`, `{,n}`
/// or `{m,n}` repetition (and the `}` that closes it) is a literal; inside a class, `[` is a
/// literal and so are `&&`, `--` and `~~` (set operations in the crate); `\Z` is `\z`.
fn translate(expression: &str) -> String {
    let chars: Vec<char> = expression.chars().collect();
    let mut out = String::with_capacity(expression.len() + 8);
    let (mut at, mut in_class) = (0, false);
    while at < chars.len() {
        let c = chars[at];
        match c {
            '\\' if at + 1 < chars.len() => {
                match chars[at + 1] {
                    'Z' => out.push_str("\\z"),
                    next => {
                        out.push('\\');
                        out.push(next);
                    }
                }
                at += 2;
                continue;
            }
            '[' if in_class => out.push_str("\\["),
            '[' => {
                in_class = true;
                out.push('[');
                // A `]` or `^]` right after the opening bracket is a literal in both.
                if chars.get(at + 1) == Some(&'^') {
                    out.push('^');
                    at += 1;
                }
                if chars.get(at + 1) == Some(&']') {
                    out.push_str("\\]");
                    at += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '-' | '~' if in_class && chars.get(at + 1) == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            '{' if !in_class => match repetition_length(&chars[at..]) {
                Some(length) => {
                    out.extend(&chars[at..at + length]);
                    at += length;
                    continue;
                }
                None => out.push_str("\\{"),
            },
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
        at += 1;
    }
    out
}

/// The length of the repetition `{m}`, `{m,}`, `{,n}` or `{m,n}` that `chars` starts with.
fn repetition_length(chars: &[char]) -> Option<usize> {
    let end = chars.iter().position(|&c| c == '}')?;
    let inside: String = chars[1..end].iter().collect();
    let (low, high) = inside.split_once(',').unwrap_or((&inside, &inside));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    (!inside.is_empty() && inside != "," && digits(low) && digits(high)).then_some(end + 1)
}

/// What `rbt-suite-guest` reported for one test.
#[derive(Clone, Debug, PartialEq)]
pub enum GuestReport {
    Skip(String),
    Ran { exit: i32, timed_out: bool, attached: Option<f64> },
}

impl GuestReport {
    /// The last `rbt-suite-guest:` line of its stderr.
    pub fn parse(stderr: &str) -> Result<GuestReport, String> {
        let line = stderr
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("rbt-suite-guest: "))
            .ok_or_else(|| format!("rbt-suite-guest gave no verdict; its stderr:\n{stderr}"))?;
        if let Some(reason) = line.strip_prefix("skip ") {
            return Ok(GuestReport::Skip(reason.to_owned()));
        }
        let fields: BTreeMap<&str, &str> = line
            .strip_prefix("ran ")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .collect();
        match (fields.get("exit").and_then(|e| e.parse().ok()), fields.get("timed_out"), fields.get("attached")) {
            (Some(exit), Some(timed_out), Some(attached)) => {
                Ok(GuestReport::Ran { exit, timed_out: *timed_out == "yes", attached: attached.parse().ok() })
            }
            _ => Err(format!("rbt-suite-guest said {line:?}")),
        }
    }
}

/// The engine's verdict on a test.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// `FAILED` or `TIMEOUT`, with the engine's reason.
    Fail(String),
    Skip(String),
}

/// The verdict `runner.py` gives a test that printed `output` (stdout and stderr merged) and
/// ended as `report` says: at a time limit, the expectation is searched without `re.M` and the
/// exit status is not looked at; otherwise an unclean exit fails the test unless it is
/// `WILL_FAIL`, and the expectation is searched with `re.M`.
pub fn judge(test: &SuiteTest, report: &GuestReport, output: &[u8]) -> Result<Verdict, String> {
    let (exit, timed_out, attached) = match report {
        GuestReport::Skip(reason) => return Ok(Verdict::Skip(reason.clone())),
        GuestReport::Ran { exit, timed_out, attached } => (*exit, *timed_out, attached.is_some()),
    };
    // The engine reads the output as text with universal newlines.
    let text = String::from_utf8_lossy(output).replace("\r\n", "\n").replace('\r', "\n");
    let expect = PythonRegex::new(&test.expect)?;
    Ok(if timed_out {
        if expect.search(&text) {
            Verdict::Pass
        } else {
            let limit = if attached {
                format!("at the test's time limit (TIMEOUT {})", test.timeout)
            } else {
                "with no __BPFTRACE_NOTIFY_PROBES_ATTACHED line by the attach time limit".to_owned()
            };
            Verdict::Fail(format!("TIMEOUT {limit}; expected {:?}", test.expect))
        }
    } else if exit != 0 && !test.will_fail {
        Verdict::Fail(format!("unclean exit code {exit}"))
    } else if expect.search_multi_line(&text) {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("expected {:?}", test.expect))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# a comment\nNAME one\nPROG BEGIN { printf(\"a  b\\n\"); exit(); }\nEXPECT a  b\nTIMEOUT 5\n\
        REQUIRES_FEATURE kfunc !kprobe_multi\nENV A=1 B=2\n\nNAME two\nRUN {{BPFTRACE}} -e 'x'\nEXPECT ^y$\nTIMEOUT 1\n\
        AFTER ./testprogs/syscall read\nWILL_FAIL\n\nNAME one\nRUN {{BPFTRACE}} z\nEXPECT z\nTIMEOUT 2";

    #[test]
    fn tests_are_read_as_the_engine_reads_them() {
        let tests = parse_file("probe", FILE).unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[0].id, "probe.one");
        assert_eq!(tests[0].prog, "BEGIN { printf(\"a b\\n\"); exit(); }", "whitespace is collapsed");
        assert_eq!(tests[0].expect, "a b");
        assert_eq!(tests[0].features, ["kfunc", "!kprobe_multi"]);
        assert_eq!(tests[0].env, [("A".to_owned(), "1".to_owned()), ("B".to_owned(), "2".to_owned())]);
        assert_eq!(tests[0].command("/b/bpftrace"), "/b/bpftrace -e 'BEGIN { printf(\"a b\\n\"); exit(); }'");
        assert_eq!(
            (tests[1].after.as_str(), tests[1].will_fail, tests[1].timeout),
            ("./testprogs/syscall read", true, 1)
        );
        assert_eq!(tests[1].command("/b/bpftrace"), "/b/bpftrace -e 'x'");
        assert_eq!(tests[2].id, "probe.one (2)", "the last line ends the last test");
        assert!(parse_file("x", "NAME a\nPROG b\nTIMEOUT 1\n").is_err(), "no EXPECT");
        assert!(parse_file("x", "NAME a\nPROG b\nRUN c\nEXPECT d\nTIMEOUT 1\n").is_err());
        assert!(parse_file("x", "NAME a\nPROG b\nEXPECT d\nTIMEOUT 1\nREQUIRES_FEATURE wings\n").is_err());
        let other_arch = parse_file("x", "NAME a\nPROG b\nEXPECT d\nTIMEOUT 1\nARCH aarch64|ppc64\n").unwrap();
        assert!(other_arch.is_empty());
    }

    #[test]
    fn python_expressions_mean_the_same() {
        let cases = [
            (r#"^{"type": "value", "data": { "m": 2 }}$"#, "x\n{\"type\": \"value\", \"data\": { \"m\": 2 }}\n", true),
            (r"a{2}b", "aab", true),
            (r"a{2,}b", "ab", false),
            (r"[[x]+", "[[", true),
            (r"[a-c--]+", "--", true),
            (r"@bytes: *\n[\[(].*", "@bytes: \n[0, 1)", true),
            (r"SUCCESS -?[0-9][0-9]*", "SUCCESS -4", true),
            (r"end\Z", "the end", true),
        ];
        for (expression, text, expected) in cases {
            let regex = PythonRegex::new(expression).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(regex.search_multi_line(text), expected, "{expression} on {text:?}");
        }
        // Without re.M, ^ and $ are the ends of the text ($ also before a last newline).
        let regex = PythonRegex::new("^b$").unwrap();
        assert!(!regex.search("a\nb\nc") && regex.search("b\n") && regex.search_multi_line("a\nb\nc"));
    }

    #[test]
    fn every_expectation_of_the_suite_translates() {
        let runtime = crate::workspace().join("tests/bpftrace-suite/upstream/runtime");
        let tests = read_suite(&runtime).unwrap();
        assert!(tests.len() > 300, "{} tests", tests.len());
        // The `regex` crate has no look-around; one test's expectation uses it (and is no kprobe
        // test).
        let untranslatable: Vec<&str> =
            tests.iter().filter(|t| PythonRegex::new(&t.expect).is_err()).map(|t| t.id.as_str()).collect();
        assert_eq!(untranslatable, ["basic.libraries under /usr/include are in the search path"]);
    }

    #[test]
    fn guest_reports_become_the_engines_verdicts() {
        let test = parse_file("s", "NAME t\nPROG p\nEXPECT ^ok$\nTIMEOUT 5\n").unwrap().remove(0);
        let ran = |exit, timed_out| GuestReport::Ran { exit, timed_out, attached: Some(1.0) };
        assert_eq!(judge(&test, &ran(0, false), b"x\nok\n"), Ok(Verdict::Pass));
        assert_eq!(judge(&test, &ran(1, false), b"ok\n"), Ok(Verdict::Fail("unclean exit code 1".into())));
        assert!(matches!(judge(&test, &ran(-15, true), b"x\nok\n"), Ok(Verdict::Fail(_))), "no re.M at a timeout");
        assert_eq!(judge(&test, &ran(-15, true), b"ok\r\n"), Ok(Verdict::Pass));
        let report = GuestReport::parse("noise\nrbt-suite-guest: ran exit=-15 timed_out=yes attached=2.50\n").unwrap();
        assert_eq!(report, GuestReport::Ran { exit: -15, timed_out: true, attached: Some(2.5) });
        let report = GuestReport::parse("rbt-suite-guest: ran exit=0 timed_out=no attached=no").unwrap();
        assert_eq!(report, GuestReport::Ran { exit: 0, timed_out: false, attached: None });
        let skip = GuestReport::parse("rbt-suite-guest: skip min Kernel: 7.0\n").unwrap();
        assert_eq!(judge(&test, &skip, b""), Ok(Verdict::Skip("min Kernel: 7.0".into())));
        assert!(GuestReport::parse("nothing").is_err());
    }
}
