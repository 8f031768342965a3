//! Golden tests: each `testdata/NAME.bt` is a BEGIN-only bpftrace script whose stdout from bpftrace
//! v0.17.0 is recorded in `NAME.txt` (text) and `NAME.json` (`-f json`); `testdata/capture.sh`
//! re-records them. Each test builds the data the runtime would read for that script and checks that
//! the printers reproduce both files byte for byte.

use std::io;

use super::buckets::{hist_index, lhist_index, HIST_BUCKETS};
use super::*;

type Session = dyn Fn(&mut Vec<u8>, OutputFormat) -> io::Result<()>;

fn check(name: &str, text: &[u8], json: &[u8], session: &Session) {
    for (format, expected) in [(OutputFormat::Text, text), (OutputFormat::Json, json)] {
        let mut out = Vec::new();
        session(&mut out, format).unwrap_or_else(|e| panic!("writing to a Vec failed: {e}"));
        assert!(
            out == expected,
            "{name} ({format:?}) differs from bpftrace\n--- expected\n{}\n--- got\n{}",
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(&out)
        );
    }
}

macro_rules! golden {
    ($test:ident, $name:literal, $session:expr) => {
        #[test]
        fn $test() {
            check(
                $name,
                include_bytes!(concat!("testdata/", $name, ".txt")),
                include_bytes!(concat!("testdata/", $name, ".json")),
                &$session,
            );
        }
    };
}

// ---- helpers building what the map reader would hand over ----

fn map(name: &str, data: MapData) -> MapDump {
    MapDump { name: name.to_string(), data }
}

fn key(parts: &[Value]) -> MapKey {
    MapKey(parts.to_vec())
}

fn int(v: i64) -> Value {
    Value::Int(v)
}

fn s(text: &str) -> Value {
    Value::str(text)
}

fn unkeyed(value: Value) -> MapData {
    MapData::Values(vec![(MapKey::none(), value)])
}

fn by_int<T: Clone>(entries: &[(i64, T)]) -> Vec<(MapKey, T)> {
    entries.iter().map(|(k, v)| (key(&[int(*k)]), v.clone())).collect()
}

fn by_str<T: Clone>(entries: &[(&str, T)]) -> Vec<(MapKey, T)> {
    entries.iter().map(|(k, v)| (key(&[s(k)]), v.clone())).collect()
}

fn hist(values: &[i64]) -> Vec<u64> {
    let mut counts = vec![0; HIST_BUCKETS];
    for &v in values {
        counts[hist_index(v)] += 1;
    }
    counts
}

fn lhist(values: &[i64], p: LhistParams) -> Vec<u64> {
    let mut counts = vec![0; 1002];
    for &v in values {
        counts[lhist_index(v, p.min, p.max, p.step)] += 1;
    }
    counts
}

fn stats(values: &[i64]) -> AvgState {
    AvgState { count: i64::try_from(values.len()).unwrap_or(i64::MAX), total: values.iter().sum() }
}

fn params(min: i64, max: i64, step: i64) -> LhistParams {
    LhistParams { min, max, step }
}

fn printf(out: &mut Vec<u8>, f: OutputFormat, fmt: &str, args: &[PrintfArg]) -> io::Result<()> {
    write_message(out, f, MessageKind::Printf, &format_printf(fmt, args))
}

// ---- the scripts ----

golden!(hist_basic, "hist_basic", |out, f| {
    write_attached_probes(out, f, 1)?;
    write_exit_dump(out, f, &[map("@h", MapData::Hist(vec![(MapKey::none(), hist(&[-5, 0, 1, 2, 5, 20]))]))])
});

golden!(hist_large, "hist_large", |out, f| {
    write_attached_probes(out, f, 1)?;
    let big = hist(&[1 << 40, 3_000_000_000, 1 << 31]);
    let g = hist(&[1023, 1024, 1_048_576, 1 << 30, 1 << 30, 1 << 30]);
    write_exit_dump(
        out,
        f,
        &[map("@g", MapData::Hist(vec![(MapKey::none(), g)])), map("@big", MapData::Hist(vec![(MapKey::none(), big)]))],
    )
});

golden!(hist_keyed, "hist_keyed", |out, f| {
    write_attached_probes(out, f, 1)?;
    let h = map(
        "@h",
        MapData::Hist(by_str(&[("b", hist(&[5, 100])), ("a", hist(&[3, 3, -1])), ("c", hist(&[7, 8, 8, 9, 1]))])),
    );
    write_map(out, f, &h, 2, 2)?;
    printf(out, f, "--\n", &[])?;
    write_map(out, f, &h, 1, 0)?;
    write_exit_dump(out, f, &[h])
});

golden!(lhist_maps, "lhist", |out, f| {
    write_attached_probes(out, f, 1)?;
    let lh = |name: &str, values: &[i64], p: LhistParams| {
        map(name, MapData::Lhist(p, vec![(MapKey::none(), lhist(values, p))]))
    };
    let p = params(0, 10, 1);
    let k = map("@k", MapData::Lhist(p, by_int(&[(1, lhist(&[5], p)), (2, lhist(&[5, 6, 20], p))])));
    write_map(out, f, &k, 1, 2)?;
    write_exit_dump(
        out,
        f,
        &[
            lh("@a", &[-1, 9, 10, 100, 4], params(0, 10, 3)),
            lh("@b", &[5000, 1 << 20], params(0, 10240, 1024)),
            lh("@c", &[0, 3], params(0, 5, 1)),
            lh("@d", &[7], params(5, 15, 5)),
            lh("@e", &[2048], params(1024, 4096, 1024)),
            lh("@f", &[1_048_576, 2_097_153], params(1_048_576, 3_145_728, 1_048_576)),
            lh("@m", &[600, 1100, 2100], params(0, 3000, 512)),
            k,
        ],
    )
});

golden!(aggregations, "aggregations", |out, f| {
    write_attached_probes(out, f, 1)?;
    let ka = vec![
        (key(&[int(1), s("x")]), stats(&[-7])),
        (key(&[int(2), s("y")]), stats(&[8])),
        (key(&[int(3), s("z")]), stats(&[2])),
    ];
    write_exit_dump(
        out,
        f,
        &[
            map("@c", unkeyed(Value::UInt(1))),
            map("@s", unkeyed(int(-5))),
            map("@mn", unkeyed(int(-3))),
            map("@mx", unkeyed(Value::UInt(7))),
            map("@a", MapData::Avg(vec![(MapKey::none(), stats(&[10, 3]))])),
            map("@st", MapData::Stats(vec![(MapKey::none(), stats(&[-10, 3]))])),
            map("@kc", MapData::Values(by_str(&[("b", Value::UInt(1)), ("a", Value::UInt(2))]))),
            map("@ks", MapData::Values(by_int(&[(-1, int(-100)), (5, int(3)), (2, int(50))]))),
            map("@ka", MapData::Avg(ka)),
            map("@kst", MapData::Stats(by_str(&[("q", stats(&[5])), ("r", stats(&[1])), ("s", stats(&[-4]))]))),
            map("@kmn", MapData::Values(by_int(&[(1, int(5)), (2, int(-5))]))),
            map("@kmx", MapData::Values(by_int(&[(1, Value::UInt(5)), (2, Value::UInt(9))]))),
            map("@us", unkeyed(Value::UInt(u64::MAX))),
        ],
    )
});

golden!(keys, "keys", |out, f| {
    write_attached_probes(out, f, 1)?;
    let t = vec![
        (key(&[s("b"), int(2)]), Value::Tuple(vec![int(1), s("x")])),
        (key(&[s("a"), int(3)]), Value::Tuple(vec![int(2), s("y")])),
        (key(&[s("a"), int(1)]), Value::Tuple(vec![int(3), s("z")])),
        (key(&[s(""), int(0)]), Value::Tuple(vec![int(-4), s("")])),
    ];
    let u = vec![(key(&[Value::UInt(u64::MAX)]), int(2)), (key(&[Value::UInt(i64::MAX as u64)]), int(1))];
    let u32s = vec![(key(&[Value::UInt(0xffff_ffff)]), s("x")), (key(&[Value::UInt(5)]), s("y"))];
    write_exit_dump(
        out,
        f,
        &[
            map("@s", MapData::Values(by_int(&[(-1, s("neg")), (1, s("one")), (0, s("zero")), (-5, s("m5"))]))),
            map("@t", MapData::Values(t)),
            map("@u", MapData::Values(u)),
            map("@ss", MapData::Values(by_str(&[("bb", s("v1")), ("a", s("v2")), ("ab", s("v3")), ("", s("v4"))]))),
            map("@i8", MapData::Values(by_int(&[(-1, s("z")), (3, s("w"))]))),
            map("@u32", MapData::Values(u32s)),
        ],
    )
});

golden!(values, "values", |out, f| {
    write_attached_probes(out, f, 1)?;
    let tup = Value::Tuple(vec![int(1), Value::Tuple(vec![int(2), s("q")]), int(-3)]);
    let ts = by_int(&[(2, Value::Tuple(vec![s("b"), int(20)])), (1, Value::Tuple(vec![s("a"), int(10)]))]);
    write_exit_dump(
        out,
        f,
        &[
            map("@a", unkeyed(Value::UInt(u64::MAX))),
            map("@b", unkeyed(int(-1))),
            map("@d", MapData::Values(by_int(&[(1, Value::UInt(u64::MAX)), (2, Value::UInt(5))]))),
            map("@e", MapData::Values(by_int(&[(1, int(-1)), (2, int(5))]))),
            map("@f", unkeyed(Value::UInt(0xffff_ffff))),
            map("@g", unkeyed(int(-7))),
            map("@h", unkeyed(int(9_007_199_254_740_993))),
            map("@str", unkeyed(s("hello"))),
            map("@tup", unkeyed(tup)),
            map("@ts", MapData::Values(ts)),
        ],
    )
});

golden!(print_top_div, "print_top_div", |out, f| {
    write_attached_probes(out, f, 1)?;
    let sep = |out: &mut Vec<u8>| printf(out, f, "--\n", &[]);
    let anon = map("@", MapData::Values(by_int(&[(1, int(10)), (2, int(20)), (3, int(35))])));
    write_map(out, f, &anon, 2, 10)?;
    write_map(out, f, &anon, 0, 0)?;
    sep(out)?;
    let st = map("@st", MapData::Stats(by_int(&[(1, stats(&[1])), (2, stats(&[10])), (3, stats(&[100]))])));
    write_map(out, f, &st, 0, 0)?;
    sep(out)?;
    let av = map("@av", MapData::Avg(by_int(&[(1, stats(&[1])), (2, stats(&[10])), (3, stats(&[100]))])));
    write_map(out, f, &av, 1, 10)?;
    sep(out)?;
    let c = map("@c", unkeyed(Value::UInt(1)));
    write_map(out, f, &c, 0, 0)?;
    sep(out)?;
    let x = map("@x", MapData::Stats(vec![(MapKey::none(), stats(&[3]))]));
    write_map(out, f, &x, 0, 0)?;
    sep(out)?;
    let tv = map(
        "@tv",
        MapData::Values(by_int(&[(1, Value::Tuple(vec![int(25), s("s")])), (2, Value::Tuple(vec![int(-25), s("t")]))])),
    );
    write_map(out, f, &tv, 1, 10)?;
    sep(out)?;
    let neg = map("@neg", MapData::Values(by_int(&[(1, int(-25)), (2, int(-7))])));
    write_map(out, f, &neg, 0, 10)?;
    sep(out)?;
    let m = map("@m", unkeyed(int(-25)));
    write_map(out, f, &m, 0, 10)?;
    // clear(@) empties the anonymous map before the exit dump.
    let cleared = map("@", MapData::Values(vec![]));
    write_exit_dump(out, f, &[cleared, st, av, c, x, tv, neg, m])
});

golden!(zero, "zero", |out, f| {
    write_attached_probes(out, f, 1)?;
    let zero_hist = vec![0; HIST_BUCKETS];
    let zero_stats = AvgState::default();
    write_exit_dump(
        out,
        f,
        &[
            map("@c", unkeyed(Value::UInt(0))),
            map("@kc", MapData::Values(by_str(&[("a", Value::UInt(0))]))),
            map("@h", MapData::Hist(vec![(MapKey::none(), zero_hist.clone())])),
            map("@kh", MapData::Hist(by_int(&[(1, zero_hist)]))),
            map("@st", MapData::Stats(vec![(MapKey::none(), zero_stats)])),
            map("@kst", MapData::Stats(by_int(&[(1, zero_stats)]))),
            map("@lh", MapData::Lhist(params(0, 10, 1), vec![(MapKey::none(), vec![0; 1002])])),
            map("@s", unkeyed(s(""))),
            map("@t", unkeyed(Value::Tuple(vec![int(0), s("")]))),
            map("@mn", unkeyed(int(0))),
            map("@mx", unkeyed(Value::UInt(0))),
            map("@a", MapData::Avg(vec![(MapKey::none(), zero_stats)])),
        ],
    )
});

golden!(clear, "clear", |out, f| {
    write_attached_probes(out, f, 1)?;
    let kc = map("@kc", MapData::Values(vec![]));
    let a = map("@a", MapData::Avg(vec![]));
    let kh = map("@kh", MapData::Hist(vec![]));
    write_map(out, f, &kc, 0, 0)?;
    printf(out, f, "x\n", &[])?;
    write_map(out, f, &a, 0, 0)?;
    printf(out, f, "y\n", &[])?;
    write_map(out, f, &kh, 0, 0)?;
    printf(out, f, "z\n", &[])?;
    write_exit_dump(
        out,
        f,
        &[
            kc,
            a,
            kh,
            map("@h", MapData::Hist(vec![])),
            map("@st", MapData::Stats(vec![])),
            map("@kst", MapData::Stats(vec![])),
            map("@lh", MapData::Lhist(params(0, 10, 1), vec![])),
            map("@s", MapData::Values(vec![])),
            map("@t", MapData::Values(vec![])),
            map("@b", MapData::Values(vec![])),
        ],
    )
});

golden!(print_values, "print_values", |out, f| {
    write_attached_probes(out, f, 1)?;
    for value in [
        int(-1),
        Value::UInt(u64::MAX),
        Value::Tuple(vec![int(1), s("a"), Value::Tuple(vec![int(2), int(-3)])]),
        s("str\"x"),
        int(9_007_199_254_740_993),
        s("a\"b\\c\nd\te\rf\x01g\x1fh\x7fi é"),
        Value::Tuple(vec![s("q\""), int(5)]),
    ] {
        write_value(out, f, &value)?;
    }
    write_exit_dump(out, f, &[])
});

golden!(escapes, "escapes", |out, f| {
    write_attached_probes(out, f, 1)?;
    printf(out, f, "p\"\\ \x02 é\n", &[])?;
    write_exit_dump(
        out,
        f,
        &[
            map("@m", MapData::Values(by_str(&[("k\"\n é", s("v\t"))]))),
            map("@n", MapData::Values(vec![(key(&[s("é"), int(1)]), int(1))])),
            map("@o", MapData::Values(vec![(key(&[s("x,y"), s("z")]), int(2))])),
        ],
    )
});

golden!(map_order, "map_order", |out, f| {
    write_attached_probes(out, f, 1)?;
    let maps: Vec<_> = [("@b", 5), ("@", 1), ("@a1", 4), ("@_a", 3), ("@A", 2)]
        .iter()
        .map(|(name, v)| map(name, unkeyed(int(*v))))
        .collect();
    write_exit_dump(out, f, &maps)
});

golden!(ties, "ties", |out, f| {
    write_attached_probes(out, f, 1)?;
    let five = stats(&[5]);
    let one = stats(&[1]);
    write_exit_dump(
        out,
        f,
        &[
            map("@s", MapData::Stats(by_int(&[(1, five), (256, five), (2, five), (-1, five), (0, five)]))),
            map("@h", MapData::Hist(by_int(&[(1, hist(&[5])), (256, hist(&[5])), (-1, hist(&[5])), (2, hist(&[5]))]))),
            map("@a", MapData::Avg(by_str(&[("b", one), ("a", one), ("ab", one), ("", one)]))),
        ],
    )
});

golden!(printf_calls, "printf", |out, f| {
    use PrintfArg::{Buffer, Int};
    write_attached_probes(out, f, 1)?;
    let st = |text: &str| PrintfArg::Str(text.as_bytes().to_vec());
    let m1 = Int(-1);
    let calls: Vec<(&str, Vec<PrintfArg>)> = vec![
        ("%hhd %hd %d %ld\n", vec![Int(300), Int(70000), m1.clone(), m1.clone()]),
        ("%hhu %hu %u %lu %llu %zu %ju %tu\n", vec![m1.clone(); 8]),
        (
            "%x %X %lx %o %lo %c%c %p %p\n",
            vec![m1.clone(), Int(255), m1.clone(), Int(8), m1.clone(), Int(65), Int(0x142), Int(0), Int(4096)],
        ),
        (
            "[%5d] [%-5d] [%05d] [%5.2d] [%.3s] [%10.3s] [%-10s] [%-5.1s]\n",
            vec![Int(42), Int(42), Int(42), Int(3), st("abcdef"), st("abcdef"), st("ab"), st("xyz")],
        ),
        ("%d%%\n", vec![Int(5)]),
        ("100%%\n", vec![]),
        ("%% %d\n", vec![Int(5)]),
        ("%%d\n", vec![Int(5)]),
        ("%d\n", vec![Int(0x1_0000_0005)]),
        ("a%cb%d\n", vec![Int(0), Int(5)]),
        ("%-5c|%5c|\n", vec![Int(0), Int(0)]),
        ("%-08d|%08.3d|%.0d|\n", vec![Int(5), Int(5), Int(0)]),
        ("%hhx %hx %hho %llX\n", vec![m1.clone(); 4]),
        ("%p %20p|%-20p|%.5p\n", vec![m1.clone(), Int(16), Int(16), Int(16)]),
        ("%5c|%-3c|\n", vec![Int(66), Int(67)]),
        ("%.10d|%3.5x\n", vec![Int(-42), Int(255)]),
        ("%010s|%-3d|%-d|%3d|\n", vec![st("ab"), m1.clone(), Int(1), Int(123_456)]),
        ("%r|%rx|%rh\n", vec![Buffer(b"a\x01b".to_vec()), Buffer(b"ab".to_vec()), Buffer(b"ab".to_vec())]),
        ("%5%|%s\n", vec![st("t")]),
        ("no args %", vec![]),
    ];
    for (fmt, args) in &calls {
        printf(out, f, fmt, args)?;
    }
    write_exit_dump(out, f, &[])
});

golden!(banner, "banner", |out, f| {
    write_attached_probes(out, f, 2)?;
    printf(out, f, "hi %s %d\n", &[PrintfArg::Str(b"x".to_vec()), PrintfArg::Int(5)])?;
    write_exit_dump(out, f, &[])
});
