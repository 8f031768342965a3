//! Random *valid* rbt programs for the verifier fuzz test (`tests/verifier_fuzz.rs`): every program
//! should pass rbt's checker, so a kernel verifier rejection of one is a compiler bug.
//!
//! A program is built from a seed. Maps get their key and value shapes up front (a map's type is
//! global), each probe keeps its scratch variables' shapes, and expressions are drawn by the shape
//! they must have: integers, strings, or tuples. Loops are always bounded (`$iN < K` with the
//! increment first, so `continue` cannot spin). Knobs drawn per program push on the backend:
//! expression depth (register pressure and spills), tuple width and string length (the 512-byte
//! stack), map count, and printf argument count. The last probe, `interval:ms:50`, defines any
//! map that was only read and then exits.

/// SplitMix64: small, fast, and the same sequence on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// What an expression must produce.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Int,
    Str,
    Tuple(Vec<Shape>),
}

#[derive(Clone, Debug)]
enum MapKind {
    Plain(Shape),
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Stats,
    Hist,
    Lhist(i64, i64, i64),
}

impl MapKind {
    /// Whether reading the map gives an integer (every aggregation does).
    fn reads_int(&self) -> bool {
        !matches!(self, MapKind::Plain(Shape::Str | Shape::Tuple(_)))
    }
}

struct MapSig {
    name: String,
    keys: Vec<Shape>,
    kind: MapKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Int,
    /// A pointer that `str()` reads.
    Ptr,
    Chars,
    DataLoc,
}

/// Tracepoints that exist on any Linux kernel with syscall tracepoints, and their fields.
const TRACEPOINTS: &[(&str, &[(&str, Field)])] = &[
    ("syscalls:sys_enter_getppid", &[]),
    (
        "syscalls:sys_enter_openat",
        &[("dfd", Field::Int), ("filename", Field::Ptr), ("flags", Field::Int), ("mode", Field::Int)],
    ),
    ("syscalls:sys_enter_read", &[("fd", Field::Int), ("buf", Field::Ptr), ("count", Field::Int)]),
    ("syscalls:sys_exit_read", &[("ret", Field::Int)]),
    (
        "sched:sched_switch",
        &[
            ("prev_comm", Field::Chars),
            ("prev_pid", Field::Int),
            ("prev_prio", Field::Int),
            ("prev_state", Field::Int),
            ("next_comm", Field::Chars),
            ("next_pid", Field::Int),
            ("next_prio", Field::Int),
        ],
    ),
    (
        "sched:sched_wakeup",
        &[("comm", Field::Chars), ("pid", Field::Int), ("prio", Field::Int), ("target_cpu", Field::Int)],
    ),
    ("sched:sched_process_exec", &[("filename", Field::DataLoc), ("pid", Field::Int), ("old_pid", Field::Int)]),
    (
        "sched:sched_process_fork",
        &[
            ("parent_comm", Field::DataLoc),
            ("parent_pid", Field::Int),
            ("child_comm", Field::DataLoc),
            ("child_pid", Field::Int),
        ],
    ),
];

/// Integer builtins; `curtask` is a pointer, which only `+`, `-` and comparisons take, so it is cast.
const INT_BUILTINS: &[&str] =
    &["pid", "tid", "uid", "gid", "nsecs", "elapsed", "cpu", "rand", "cgroup", "(uint64)curtask"];

/// Kernel struct members through BTF, stable across kernels: nested structs, pointer chains,
/// casts, bitfields, array elements, sizeof/offsetof.
const KERNEL_INTS: &[&str] = &[
    "curtask->pid",
    "curtask->tgid",
    "curtask->real_parent->pid",
    "curtask->real_parent->real_parent->tgid",
    "curtask->se.load.weight",
    "curtask->thread_info.cpu",
    "curtask->sched_reset_on_fork",
    "curtask->pending.signal.sig[0]",
    "curtask->cred->uid.val",
    "((struct task_struct *)curtask)->prio",
    "(*curtask->mm).map_count",
    "sizeof(struct sched_entity)",
    "offsetof(struct task_struct, pid)",
];
const KERNEL_STRINGS: &[&str] =
    &["curtask->comm", "curtask->real_parent->comm", "curtask->nsproxy->uts_ns->name.nodename"];
const BINARY_OPS: &[&str] = &["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", "<=", ">", ">="];
const COMPOUND_OPS: &[&str] = &["+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="];
const CASTS: &[&str] = &["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"];
// bpftrace 0.17 (and rbt) reject `%s` with an integer or a tuple.
const INT_CONVERSIONS: &[&str] = &["%d", "%u", "%x", "%lu", "%ld", "%llu", "%5d", "%-8x", "%08d", "%X", "%o", "%c"];
const STR_CONVERSIONS: &[&str] = &["%s", "%-10s", "%20s", "%.3s"];

/// How hard a program pushes on the backend; drawn once per program.
struct Knobs {
    expr_depth: usize,
    stmt_depth: usize,
    tuple_width: usize,
    string_len: usize,
    body_stmts: usize,
}

struct Scope {
    fields: &'static [(&'static str, Field)],
    /// Whether the probe fires rarely (BEGIN, END, interval): only there may it print, clear or
    /// zero whole maps, since one of those per syscall or context switch (each costing rbt
    /// syscalls per key, and its output waking the reader and so making more events) can queue
    /// hours of work ahead of exit().
    rare: bool,
    vars: Vec<(String, Shape)>,
    /// Loop counters: read freely, never assigned by random statements.
    counters: Vec<String>,
    /// Variables assigned from a map not yet assigned: reading one is reading that map.
    tainted: Vec<String>,
    loop_depth: usize,
    /// Product of the enclosing unroll counts and loop bounds, to keep programs a sane size.
    weight: usize,
}

pub struct Generator {
    rng: Rng,
    knobs: Knobs,
    maps: Vec<MapSig>,
    assigned: Vec<bool>,
    next_var: usize,
    /// Set while writing the defining assignments, which must not read maps (`@a = @a[1]`
    /// defines nothing).
    no_map_reads: bool,
    /// The map being assigned: its value must not read it (`@a = sum(@a)` defines nothing).
    assigning: Option<usize>,
    /// Map reads inside keys of map reads; bounded, as each key restarts the expression depth.
    key_nesting: usize,
    /// Set when a map not yet assigned is read: an assignment reading one does not count as
    /// defining its map (`@a = @b; @b = @a` defines neither).
    read_unassigned: bool,
}

/// The program for `seed`.
pub fn program(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let knobs = Knobs {
        expr_depth: rng.range(1, 7),
        stmt_depth: rng.range(1, 3),
        tuple_width: rng.range(2, 7),
        string_len: rng.pick(&[4, 12, 30, 60]),
        body_stmts: rng.range(1, 9),
    };
    let mut g = Generator {
        rng,
        knobs,
        maps: Vec::new(),
        assigned: Vec::new(),
        next_var: 0,
        no_map_reads: false,
        assigning: None,
        key_nesting: 0,
        read_unassigned: false,
    };
    g.program()
}

impl Generator {
    fn program(&mut self) -> String {
        let nmaps = if self.rng.chance(5) { self.rng.range(20, 70) } else { self.rng.range(1, 10) };
        for i in 0..nmaps {
            let sig = self.map_sig(i);
            self.maps.push(sig);
            self.assigned.push(false);
        }
        let mut out = String::new();
        for _ in 0..self.rng.range(1, 4) {
            out.push_str(&self.probe());
        }
        // The last probe defines maps that were only read, then ends the run.
        let mut defs = String::new();
        self.no_map_reads = true;
        let mut sc = Scope {
            fields: &[],
            rare: true,
            vars: Vec::new(),
            counters: Vec::new(),
            tainted: Vec::new(),
            loop_depth: 0,
            weight: 1,
        };
        for m in 0..self.maps.len() {
            if !self.assigned[m] {
                defs.push_str(&format!("  {};\n", self.map_assign(&mut sc, m)));
            }
        }
        out.push_str(&format!("interval:ms:50 {{\n{defs}  exit();\n}}\n"));
        out
    }

    fn shape(&mut self, depth: usize) -> Shape {
        match self.rng.below(10) {
            0..=4 => Shape::Int,
            5..=7 => Shape::Str,
            _ if depth == 0 => Shape::Int,
            _ => Shape::Tuple((0..self.rng.range(2, self.knobs.tuple_width)).map(|_| self.shape(depth - 1)).collect()),
        }
    }

    fn map_sig(&mut self, i: usize) -> MapSig {
        let name = if i == 0 && self.rng.chance(20) { String::new() } else { format!("m{i}") };
        let nkeys = self.rng.pick(&[0, 0, 1, 1, 1, 2, 3]);
        let keys = (0..nkeys).map(|_| self.shape(1)).collect();
        let kind = match self.rng.below(12) {
            0..=3 => MapKind::Plain(self.shape(2)),
            4 => MapKind::Count,
            5 => MapKind::Sum,
            6 => MapKind::Min,
            7 => MapKind::Max,
            8 => MapKind::Avg,
            9 => MapKind::Stats,
            10 => MapKind::Hist,
            _ => {
                let min = self.rng.pick(&[-100, 0, 10]);
                let step = self.rng.pick(&[1, 5, 100]);
                MapKind::Lhist(min, min + step * self.rng.range(1, 40) as i64, step)
            }
        };
        MapSig { name, keys, kind }
    }

    fn probe(&mut self) -> String {
        let (spec, fields, rare): (String, &'static [(&'static str, Field)], bool) = match self.rng.below(10) {
            0 => ("BEGIN".into(), &[], true),
            1 => ("END".into(), &[], true),
            2 => ("profile:hz:99".into(), &[], false),
            3 => (format!("interval:ms:{}", self.rng.range(5, 20)), &[], true),
            _ => {
                let (name, fields) = self.rng.pick(TRACEPOINTS);
                (format!("tracepoint:{name}"), fields, false)
            }
        };
        let mut sc = Scope {
            fields,
            rare,
            vars: Vec::new(),
            counters: Vec::new(),
            tainted: Vec::new(),
            loop_depth: 0,
            weight: 1,
        };
        let predicate = if self.rng.chance(30) { format!(" /{}/", self.int_expr(&mut sc, 2)) } else { String::new() };
        let n = self.knobs.body_stmts;
        let body = self.stmts(&mut sc, n, self.knobs.stmt_depth);
        format!("{spec}{predicate} {{\n{body}}}\n")
    }

    fn stmts_between(&mut self, sc: &mut Scope, lo: usize, hi: usize, depth: usize) -> String {
        let n = self.rng.range(lo, hi);
        self.stmts(sc, n, depth)
    }

    fn stmts(&mut self, sc: &mut Scope, n: usize, depth: usize) -> String {
        (0..n).map(|_| format!("  {};\n", self.stmt(sc, depth))).collect()
    }

    fn stmt(&mut self, sc: &mut Scope, depth: usize) -> String {
        let nested = depth > 0 && sc.weight < 20;
        match self.rng.below(if nested { 100 } else { 80 }) {
            0..=14 => self.var_assign(sc),
            15..=19 => match self.int_var(sc, false) {
                Some(v) => format!("{v} {} {}", self.rng.pick(COMPOUND_OPS), self.int_expr(sc, 2)),
                None => self.var_assign(sc),
            },
            20..=37 => {
                let m = self.rng.below(self.maps.len());
                self.map_assign(sc, m)
            }
            38..=41 => {
                let m = self.rng.below(self.maps.len());
                if matches!(self.maps[m].kind, MapKind::Plain(Shape::Int)) {
                    let outer_read = std::mem::take(&mut self.read_unassigned);
                    let key = self.map_key(sc, m);
                    let text = match self.rng.below(3) {
                        0 => format!("{key}++"),
                        1 => format!("--{key}"),
                        _ => format!("{key} {} {}", self.rng.pick(COMPOUND_OPS), self.int_expr(sc, 2)),
                    };
                    if !self.read_unassigned {
                        self.assigned[m] = true;
                    }
                    self.read_unassigned |= outer_read;
                    text
                } else {
                    self.map_assign(sc, m)
                }
            }
            42..=53 => self.printf(sc),
            57 if sc.rare => {
                // The formatting functions, each of its own kind of value.
                let ip = self.int_expr(sc, 1);
                let n = self.rng.range(0, 40);
                format!(
                    "printf(\"%s %s %r %s\\n\", ntop({ip}), strftime(\"%H:%M:%S.%f\", nsecs), buf(curtask->cpus_mask.bits, {n}), macaddr(((struct ethhdr *)curtask->cpus_ptr)->h_dest))"
                )
            }
            54..=57 => {
                let shape = self.shape(2);
                let value = self.expr(sc, &shape, self.knobs.expr_depth);
                // `print(@m)` prints the whole map; outside rare probes print a tuple instead.
                let whole_map = value.starts_with('@') && !value.contains('[');
                if whole_map && !sc.rare {
                    format!("print(({value}, 0))")
                } else {
                    format!("print({value})")
                }
            }
            58..=61 => {
                let m = self.rng.below(self.maps.len());
                let name = format!("@{}", self.maps[m].name);
                match self.rng.below(6) {
                    // Whole-map work per syscall or context switch floods rbt (see `Scope::rare`).
                    _ if !sc.rare && !matches!(self.maps[m].kind, MapKind::Hist | MapKind::Lhist(..)) => {
                        format!("delete({})", self.map_key(sc, m))
                    }
                    _ if !sc.rare => "time(\"%H:%M:%S\\n\")".into(),
                    0 => format!("print({name})"),
                    1 => format!("print({name}, {})", self.rng.range(0, 5)),
                    2 => format!("print({name}, {}, {})", self.rng.range(0, 5), self.rng.range(1, 10)),
                    3 => format!("clear({name})"),
                    4 => format!("zero({name})"),
                    _ if !matches!(self.maps[m].kind, MapKind::Hist | MapKind::Lhist(..)) => {
                        format!("delete({})", self.map_key(sc, m))
                    }
                    _ => format!("clear({name})"),
                }
            }
            62 => "time(\"%H:%M:%S\\n\")".into(),
            63 if self.rng.chance(10) => "exit()".into(),
            64 if self.rng.chance(10) => "return".into(),
            65..=69 if sc.loop_depth > 0 => {
                let cond = self.int_expr(sc, 1);
                format!("if ({cond}) {{ {}; }}", if self.rng.chance(50) { "break" } else { "continue" })
            }
            70..=79 => {
                let shape = self.shape(1);
                self.int_or_incdec(sc, &shape)
            }
            80..=87 => {
                let cond = self.int_expr(sc, self.knobs.expr_depth);
                let then = self.stmts_between(sc, 1, 4, depth - 1);
                if self.rng.chance(60) {
                    let otherwise = self.stmts_between(sc, 1, 3, depth - 1);
                    format!("if ({cond}) {{\n{then}}} else {{\n{otherwise}}}")
                } else {
                    format!("if ({cond}) {{\n{then}}}")
                }
            }
            88..=93 => {
                let bound = self.rng.range(1, 6);
                let counter = format!("$i{}", self.next_var);
                self.next_var += 1;
                let limit = if self.rng.chance(30) {
                    format!("{bound} && {}", self.int_expr(sc, 1))
                } else {
                    bound.to_string()
                };
                sc.counters.push(counter.clone());
                sc.vars.push((counter.clone(), Shape::Int));
                sc.loop_depth += 1;
                sc.weight *= bound;
                let body = self.stmts_between(sc, 1, 4, depth - 1);
                sc.weight /= bound;
                sc.loop_depth -= 1;
                format!("{counter} = 0;\n  while ({counter} < {limit}) {{\n  {counter}++;\n{body}}}")
            }
            94..=99 => {
                let count = if self.rng.chance(10) { self.rng.range(20, 100) } else { self.rng.range(1, 5) };
                sc.weight *= count;
                let body = self.stmts_between(sc, 1, 3, if count > 10 { 0 } else { depth - 1 });
                sc.weight /= count;
                format!("unroll({count}) {{\n{body}}}")
            }
            // A guarded choice that did not apply.
            _ => self.var_assign(sc),
        }
    }

    /// An expression statement: usually `$x++` and friends, sometimes a bare value.
    fn int_or_incdec(&mut self, sc: &mut Scope, shape: &Shape) -> String {
        match self.int_var(sc, false) {
            Some(v) if self.rng.chance(70) => {
                if self.rng.chance(50) {
                    format!("{v}++")
                } else {
                    format!("--{v}")
                }
            }
            _ => self.expr(sc, shape, self.knobs.expr_depth),
        }
    }

    fn var_assign(&mut self, sc: &mut Scope) -> String {
        let assignable: Vec<usize> = (0..sc.vars.len()).filter(|&i| !sc.counters.contains(&sc.vars[i].0)).collect();
        let outer_read = std::mem::take(&mut self.read_unassigned);
        let (name, value) = if !assignable.is_empty() && self.rng.chance(50) {
            let (name, shape) = sc.vars[self.rng.pick(&assignable)].clone();
            (name, self.expr(sc, &shape, self.knobs.expr_depth))
        } else {
            let shape = self.shape(2);
            let value = self.expr(sc, &shape, self.knobs.expr_depth);
            let name = format!("$v{}", self.next_var);
            self.next_var += 1;
            sc.vars.push((name.clone(), shape));
            (name, value)
        };
        if self.read_unassigned {
            sc.tainted.push(name.clone());
        }
        self.read_unassigned |= outer_read;
        format!("{name} = {value}")
    }

    fn map_assign(&mut self, sc: &mut Scope, m: usize) -> String {
        let outer = self.assigning.replace(m);
        let outer_read = std::mem::take(&mut self.read_unassigned);
        let text = self.map_assign_value(sc, m);
        self.assigning = outer;
        if !self.read_unassigned {
            self.assigned[m] = true;
        }
        self.read_unassigned |= outer_read;
        text
    }

    fn map_assign_value(&mut self, sc: &mut Scope, m: usize) -> String {
        let key = self.map_key(sc, m);
        let depth = self.knobs.expr_depth;
        let value = match self.maps[m].kind.clone() {
            MapKind::Plain(shape) => self.expr(sc, &shape, depth),
            MapKind::Count => "count()".into(),
            MapKind::Sum => format!("sum({})", self.int_expr(sc, depth)),
            MapKind::Min => format!("min({})", self.int_expr(sc, depth)),
            MapKind::Max => format!("max({})", self.int_expr(sc, depth)),
            MapKind::Avg => format!("avg({})", self.int_expr(sc, depth)),
            MapKind::Stats => format!("stats({})", self.int_expr(sc, depth)),
            MapKind::Hist => format!("hist({})", self.int_expr(sc, depth)),
            MapKind::Lhist(min, max, step) => format!("lhist({}, {min}, {max}, {step})", self.int_expr(sc, depth)),
        };
        format!("{key} = {value}")
    }

    /// `@name` or `@name[k1, k2]` with keys of the map's shapes.
    fn map_key(&mut self, sc: &mut Scope, m: usize) -> String {
        let keys = self.maps[m].keys.clone();
        let name = self.maps[m].name.clone();
        if keys.is_empty() {
            return format!("@{name}");
        }
        let parts: Vec<String> = keys.iter().map(|k| self.expr(sc, k, 2)).collect();
        format!("@{name}[{}]", parts.join(", "))
    }

    fn printf(&mut self, sc: &mut Scope) -> String {
        let n = if self.rng.chance(20) { 7 } else { self.rng.range(0, 4) };
        let mut format = String::from("p");
        let mut args = String::new();
        for _ in 0..n {
            let shape = match self.shape(1) {
                Shape::Tuple(_) => Shape::Str,
                other => other,
            };
            let conv = match shape {
                Shape::Int => self.rng.pick(INT_CONVERSIONS),
                _ => self.rng.pick(STR_CONVERSIONS),
            };
            format.push_str(&format!(" {conv}"));
            args.push_str(&format!(", {}", self.expr(sc, &shape, self.knobs.expr_depth)));
        }
        format!("printf(\"{format} 100%%\\n\"{args})")
    }

    fn expr(&mut self, sc: &mut Scope, shape: &Shape, depth: usize) -> String {
        match shape {
            Shape::Int => self.int_expr(sc, depth),
            Shape::Str => self.str_expr(sc, depth),
            Shape::Tuple(fields) => self.tuple_expr(sc, fields, depth),
        }
    }

    /// An integer variable, optionally including loop counters.
    fn int_var(&mut self, sc: &Scope, counters: bool) -> Option<String> {
        let vars: Vec<&String> = sc
            .vars
            .iter()
            .filter(|(name, shape)| *shape == Shape::Int && (counters || !sc.counters.contains(name)))
            .map(|(name, _)| name)
            .collect();
        let var = (!vars.is_empty()).then(|| vars[self.rng.below(vars.len())].clone())?;
        self.read_unassigned |= sc.tainted.contains(&var);
        Some(var)
    }

    fn var_of(&mut self, sc: &Scope, shape: &Shape) -> Option<String> {
        let vars: Vec<&String> = sc.vars.iter().filter(|(_, s)| s == shape).map(|(n, _)| n).collect();
        let var = (!vars.is_empty()).then(|| vars[self.rng.below(vars.len())].clone())?;
        self.read_unassigned |= sc.tainted.contains(&var);
        Some(var)
    }

    fn fields_of(sc: &Scope, kinds: &[Field]) -> Vec<&'static str> {
        sc.fields.iter().filter(|(_, k)| kinds.contains(k)).map(|(n, _)| *n).collect()
    }

    fn map_read(&mut self, sc: &mut Scope, wanted: &Shape) -> Option<String> {
        if self.no_map_reads || self.key_nesting >= 2 {
            return None;
        }
        let candidates: Vec<usize> = (0..self.maps.len())
            .filter(|&m| Some(m) != self.assigning)
            .filter(|&m| match &self.maps[m].kind {
                MapKind::Plain(s) => s == wanted,
                // As in bpftrace 0.17, avg/stats/hist/lhist maps cannot be read as values.
                MapKind::Avg | MapKind::Stats | MapKind::Hist | MapKind::Lhist(..) => false,
                _ => *wanted == Shape::Int,
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let m = self.rng.pick(&candidates);
        self.read_unassigned |= !self.assigned[m];
        debug_assert!(self.maps[m].kind.reads_int() == (*wanted == Shape::Int));
        self.key_nesting += 1;
        let read = self.map_key(sc, m);
        self.key_nesting -= 1;
        Some(read)
    }

    fn int_expr(&mut self, sc: &mut Scope, depth: usize) -> String {
        if depth == 0 || self.rng.chance(25) {
            return self.int_leaf(sc);
        }
        let d = depth - 1;
        match self.rng.below(20) {
            0 => format!("-({})", self.int_expr(sc, d)),
            1 => format!("!({})", self.int_expr(sc, d)),
            2 => format!("~({})", self.int_expr(sc, d)),
            3..=9 => format!("({} {} {})", self.int_expr(sc, d), self.rng.pick(BINARY_OPS), self.int_expr(sc, d)),
            10 => format!(
                "({} {} {})",
                self.int_expr(sc, d),
                if self.rng.chance(50) { "&&" } else { "||" },
                self.int_expr(sc, d)
            ),
            11 | 12 => format!("({} ? {} : {})", self.int_expr(sc, d), self.int_expr(sc, d), self.int_expr(sc, d)),
            13 => format!("({})({})", self.rng.pick(CASTS), self.int_expr(sc, d)),
            14 => format!(
                "({} {} {})",
                self.str_expr(sc, d),
                if self.rng.chance(50) { "==" } else { "!=" },
                self.str_expr(sc, d)
            ),
            15 => format!("strncmp({}, {}, {})", self.str_expr(sc, d), self.str_expr(sc, d), self.rng.range(0, 20)),
            16 => match self.int_var(sc, false) {
                Some(v) => {
                    if self.rng.chance(50) {
                        format!("{v}++")
                    } else {
                        format!("--{v}")
                    }
                }
                None => self.int_leaf(sc),
            },
            _ => self.int_leaf(sc),
        }
    }

    fn int_leaf(&mut self, sc: &mut Scope) -> String {
        match self.rng.below(13) {
            12 if self.rng.chance(20) => format!("bswap(({})({}))", self.rng.pick(CASTS), self.int_leaf(sc)),
            12 => self.rng.pick(KERNEL_INTS).into(),
            0 | 1 => self.rng.range(0, 100).to_string(),
            2 => format!("-{}", self.rng.range(1, 1000)),
            3 => self
                .rng
                .pick(&["0xffffffff", "0x7fffffffffffffff", "4294967296", "18446744073709551615", "0x80000000"])
                .into(),
            4 | 5 => self.rng.pick(INT_BUILTINS).into(),
            6 | 7 => match Self::fields_of(sc, &[Field::Int, Field::Ptr]) {
                // A pointer field is cast to an integer, as bpftrace refuses most operators on it.
                f if !f.is_empty() => match self.rng.pick(&f) {
                    field if Self::fields_of(sc, &[Field::Ptr]).contains(&field) => format!("(uint64)args->{field}"),
                    field => format!("args->{field}"),
                },
                _ => "pid".into(),
            },
            8 | 9 => self.int_var(sc, true).unwrap_or_else(|| "tid".into()),
            _ => self.map_read(sc, &Shape::Int).unwrap_or_else(|| "cpu".into()),
        }
    }

    fn str_expr(&mut self, sc: &mut Scope, depth: usize) -> String {
        match self.rng.below(15) {
            14 => self.rng.pick(KERNEL_STRINGS).into(),
            0..=2 => self.string_literal(),
            3 => "comm".into(),
            4 => "probe".into(),
            5 | 6 => match Self::fields_of(sc, &[Field::Chars, Field::DataLoc]) {
                f if !f.is_empty() => {
                    let field = self.rng.pick(&f);
                    if self.rng.chance(30) {
                        format!("str(args->{field})")
                    } else {
                        format!("args->{field}")
                    }
                }
                _ => "comm".into(),
            },
            7 => match Self::fields_of(sc, &[Field::Ptr]) {
                f if !f.is_empty() => {
                    let field = self.rng.pick(&f);
                    match self.rng.below(3) {
                        0 => format!("str(args->{field})"),
                        1 => format!("str(args->{field}, {})", self.rng.range(1, 80)),
                        _ => format!("str(args->{field}, {})", self.int_expr(sc, 1)),
                    }
                }
                _ => self.string_literal(),
            },
            8 | 9 => self.var_of(sc, &Shape::Str).unwrap_or_else(|| "comm".into()),
            10 => self.map_read(sc, &Shape::Str).unwrap_or_else(|| self.string_literal()),
            11 if depth > 0 => {
                let c = self.int_expr(sc, depth - 1);
                format!("({c} ? {} : {})", self.str_expr(sc, depth - 1), self.str_expr(sc, depth - 1))
            }
            _ => self.string_literal(),
        }
    }

    fn string_literal(&mut self) -> String {
        let len = self.rng.range(0, self.knobs.string_len);
        let text: String = (0..len).map(|_| self.rng.pick(&['a', 'b', 'z', ' ', '_', '7', 'Q'])).collect();
        if self.rng.chance(10) {
            format!("\"{text}\\n\\t\"")
        } else {
            format!("\"{text}\"")
        }
    }

    fn tuple_expr(&mut self, sc: &mut Scope, fields: &[Shape], depth: usize) -> String {
        let shape = Shape::Tuple(fields.to_vec());
        match self.rng.below(10) {
            0 | 1 => {
                if let Some(v) = self.var_of(sc, &shape) {
                    return v;
                }
            }
            2 => {
                if let Some(m) = self.map_read(sc, &shape) {
                    return m;
                }
            }
            3 if depth > 0 => {
                let c = self.int_expr(sc, depth - 1);
                let a = self.tuple_expr(sc, fields, depth - 1);
                let b = self.tuple_expr(sc, fields, depth - 1);
                return format!("({c} ? {a} : {b})");
            }
            _ => {}
        }
        let items: Vec<String> = fields.iter().map(|f| self.expr(sc, f, depth.saturating_sub(1))).collect();
        format!("({})", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_deterministic_and_varied() {
        assert_eq!(program(7), program(7));
        assert_ne!(program(7), program(8));
        assert!(program(1).contains("interval:ms:50"));
    }
}
