//! Unit tests of whole parses: precedence, casts against parentheses, predicates, attach points,
//! spans and error recovery. The golden files in `tests/data/parse` cover the rest.

use crate::ast::{Expr, ExprKind, Program, StmtKind};
use crate::{parse, Span};

/// Parses `src`, insisting on no diagnostics.
fn parse_ok(src: &str) -> Program {
    let (program, diagnostics) = parse(src);
    assert!(diagnostics.is_empty(), "{src}: {diagnostics:#?}");
    program
}

/// The value assigned by the first statement of the first probe, which must be `$x = value`.
fn assigned(src: &str) -> Expr {
    let program = parse_ok(src);
    let stmt = &program.probes[0].body.stmts[0];
    match &stmt.kind {
        StmtKind::AssignVar { value, .. } => value.clone(),
        other => panic!("not an assignment: {other:?}"),
    }
}

/// A span-free picture of an expression: `(+ 1 (* 2 3))`.
fn shape(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Int(value) => value.to_string(),
        ExprKind::Var(name) => format!("${name}"),
        ExprKind::Builtin(name) => name.clone(),
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), shape(lhs), shape(rhs))
        }
        ExprKind::Unary { op, expr } => format!("({op:?} {})", shape(expr)),
        ExprKind::Ternary { cond, then_expr, else_expr } => {
            format!("(? {} {} {})", shape(cond), shape(then_expr), shape(else_expr))
        }
        ExprKind::Cast { ty, expr } => {
            format!("(cast {}{} {})", ty.name, "*".repeat(ty.pointer_depth as usize), shape(expr))
        }
        ExprKind::Tuple(items) => {
            let items: Vec<String> = items.iter().map(shape).collect();
            format!("(tuple {})", items.join(" "))
        }
        ExprKind::Field { expr, field, arrow } => {
            format!("({} {} {})", if *arrow { "->" } else { "." }, shape(expr), field.name)
        }
        ExprKind::IncDec { target, increment, prefix } => {
            let op = if *increment { "++" } else { "--" };
            if *prefix {
                format!("({op} {})", shape(target))
            } else {
                format!("({} {op})", shape(target))
            }
        }
        ExprKind::Map(map) => {
            let keys: Vec<String> = map.keys.iter().map(shape).collect();
            format!("@{}[{}]", map.name, keys.join(","))
        }
        ExprKind::Index { expr, index } => format!("(index {} {})", shape(expr), shape(index)),
        other => format!("{other:?}"),
    }
}

fn expr_shape(expression: &str) -> String {
    shape(&assigned(&format!("BEGIN {{ $x = {expression}; }}")))
}

#[test]
fn c_precedence_and_associativity() {
    assert_eq!(expr_shape("1 + 2 * 3"), "(+ 1 (* 2 3))");
    assert_eq!(expr_shape("1 - 2 - 3"), "(- (- 1 2) 3)");
    assert_eq!(expr_shape("1 << 2 + 3"), "(<< 1 (+ 2 3))");
    assert_eq!(expr_shape("1 < 2 == 3 < 4"), "(== (< 1 2) (< 3 4))");
    assert_eq!(expr_shape("1 | 2 ^ 3 & 4"), "(| 1 (^ 2 (& 3 4)))");
    assert_eq!(expr_shape("1 || 2 && 3 | 4"), "(|| 1 (&& 2 (| 3 4)))");
    assert_eq!(expr_shape("1 ? 2 : 3 ? 4 : 5"), "(? 1 2 (? 3 4 5))");
    assert_eq!(expr_shape("-1 * !2"), "(* (Neg 1) (LogicalNot 2))");
    assert_eq!(expr_shape("*$p->f"), "(Deref (-> $p f))");
    assert_eq!(expr_shape("$a+++$b"), "(+ ($a ++) $b)");
    assert_eq!(expr_shape("-$x++"), "(Neg ($x ++))");
}

#[test]
fn casts_against_parentheses() {
    assert_eq!(expr_shape("(int8)-1"), "(cast int8 (Neg 1))");
    assert_eq!(expr_shape("(uint64)$a + 1"), "(+ (cast uint64 $a) 1)");
    assert_eq!(expr_shape("(struct task_struct **)curtask"), "(cast task_struct** curtask)");
    assert_eq!(expr_shape("(pid) + 1"), "(+ pid 1)");
    assert_eq!(expr_shape("(1, (2))"), "(tuple 1 2)");
    assert_eq!(expr_shape("(int8)(1, 2)"), "(cast int8 (tuple 1 2))");
}

#[test]
fn maps_fields_and_indexes() {
    assert_eq!(expr_shape("@m[1, 2][3]"), "(index @m[1,2] 3)");
    assert_eq!(expr_shape("@[pid]"), "@[pid]");
    assert_eq!(expr_shape("args.filename"), "(. args filename)");
    assert_eq!(expr_shape("$t.0"), "(. $t 0)");
    assert_eq!(expr_shape("@m++"), "(@m[] ++)");
}

#[test]
fn parenthesised_spans_include_the_parentheses() {
    let value = assigned("BEGIN { $x = (1 + 2) * 3; }");
    assert_eq!(value.span, Span::new(13, 24));
    let ExprKind::Binary { lhs, .. } = &value.kind else { panic!("{value:?}") };
    assert_eq!(lhs.span, Span::new(13, 20));
}

#[test]
fn predicates_allow_division() {
    let program = parse_ok("BEGIN / 10 / 2 > 1 / { }");
    let predicate = program.probes[0].predicate.as_ref().map(shape);
    assert_eq!(predicate.as_deref(), Some("(> (/ 10 2) 1)"));
    let program = parse_ok("kprobe:f /pid == 1234/\n\n  { }");
    assert!(program.probes[0].predicate.is_some());
    let program = parse_ok("kretprobe:f /args->ret > 0/ /* why */ { }");
    assert!(program.probes[0].predicate.is_some());
    let program = parse_ok("BEGIN/comm == \"a/b\"/{}");
    assert_eq!(program.probes[0].specs[0].text, "BEGIN");
    assert!(program.probes[0].predicate.is_some());
}

#[test]
fn attach_points_are_split() {
    let program = parse_ok("#!/usr/bin/env bpftrace\nuprobe:/bin/bash:readline,\n  uprobe:\"/a b\":f { }");
    let specs = &program.probes[0].specs;
    assert_eq!(specs[0].text, "uprobe:/bin/bash:readline");
    assert_eq!(specs[0].parts, vec!["uprobe", "/bin/bash", "readline"]);
    assert_eq!(specs[0].span, Span::new(24, 49));
    assert_eq!(specs[1].parts, vec!["uprobe", "/a b", "f"]);
}

#[test]
fn else_if_is_an_else_block_holding_one_if() {
    let program = parse_ok("BEGIN { if (1) { } else if (2) { } else { } }");
    let StmtKind::If { else_block: Some(else_block), .. } = &program.probes[0].body.stmts[0].kind else {
        panic!("no else");
    };
    assert_eq!(else_block.stmts.len(), 1);
    assert_eq!(else_block.span, else_block.stmts[0].span);
    assert!(matches!(&else_block.stmts[0].kind, StmtKind::If { else_block: Some(_), .. }));
}

#[test]
fn semicolons_between_statements() {
    let program = parse_ok("BEGIN { if (1) { } $x = 1; while (0) { }; $y = 2 }");
    assert_eq!(program.probes[0].body.stmts.len(), 4);
    let (_, diagnostics) = parse("BEGIN { $x = 1;; }");
    assert_eq!(diagnostics.len(), 1);
}

#[test]
fn recovery_reports_several_errors_and_keeps_the_rest() {
    let src = "BEGIN { $x = ; $y = 1; @a[1 = 2; }\nEND { $z = 1 2 }\nkprobe:f { exit() }";
    let (program, diagnostics) = parse(src);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "syntax error, unexpected `;`, expecting an expression",
            "syntax error, unexpected `=`, expecting `]`, `,` or an operator",
            "syntax error, unexpected integer `2`, expecting `}`, `;` or an operator",
        ]
    );
    assert_eq!(program.probes.len(), 3);
    let kinds: Vec<bool> = program.probes[0].body.stmts.iter().map(|s| matches!(s.kind, StmtKind::Error)).collect();
    assert_eq!(kinds, vec![true, false, true]);
}

#[test]
fn recovery_at_the_top_level_and_in_predicates() {
    let (program, diagnostics) = parse("} BEGIN { } 42 kprobe:f /pid == / { } kprobe:g /pid { $x = 1; }");
    assert_eq!(diagnostics.len(), 4, "{diagnostics:#?}");
    assert_eq!(program.probes.len(), 3);
    assert!(matches!(program.probes[1].predicate.as_ref().map(|p| &p.kind), Some(ExprKind::Error)));
    assert_eq!(program.probes[2].body.stmts.len(), 1);
}

#[test]
fn unclosed_block_at_the_end_is_closed() {
    let (program, diagnostics) = parse("BEGIN { if (1) { $x = 1;");
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].labels[1].span, Span::new(15, 16));
    assert_eq!(program.probes.len(), 1);
}

#[test]
fn integer_out_of_range_is_an_error_node() {
    let (program, diagnostics) = parse("BEGIN { $x = 18446744073709551616; }");
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].message, "integer literal out of range");
    assert_eq!(diagnostics[0].primary_span(), Span::new(13, 33));
    let StmtKind::AssignVar { value, .. } = &program.probes[0].body.stmts[0].kind else {
        panic!("not an assignment");
    };
    assert_eq!(value.kind, ExprKind::Error);
}

#[test]
fn hostile_nesting_is_reported_not_overflowed() {
    for src in [
        format!("BEGIN {{ $x = {}1; }}", "- ".repeat(100_000)),
        format!("BEGIN {{ $x = {}1; }}", "(".repeat(10_000)),
        format!("BEGIN {{ $x = {}; }}", vec!["1"; 1500].join("+")),
    ] {
        let (_, diagnostics) = parse(&src);
        assert!(!diagnostics.is_empty());
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    let max = crate::MAX_EXPR_DEPTH;
    // Each `-` is a level and the literal one more.
    let at_limit = format!("BEGIN {{ $x = {}1; }}", "- ".repeat(max - 1));
    assert!(parse(&at_limit).1.is_empty());
    let over = format!("BEGIN {{ $x = {}1; }}", "- ".repeat(max));
    assert_eq!(parse(&over).1[0].message, format!("expression nested more than {max} levels deep"));
    // bpftrace 0.17 takes 300 levels of brackets and of operators.
    let parens = format!("BEGIN {{ $x = {}1{}; }}", "(".repeat(300), ")".repeat(300));
    assert!(parse(&parens).1.is_empty());
    assert!(parse(&format!("BEGIN {{ $x = {}; }}", vec!["1"; 300].join("+"))).1.is_empty());
}

#[test]
fn empty_and_comment_only_programs() {
    assert!(parse_ok("").probes.is_empty());
    assert!(parse_ok("  // nothing\n/* at all */\n").probes.is_empty());
}
