//! Declarations in C syntax: a member's or parameter's type chain (pointer to const to array
//! of ...) written inside out around its name, as `btf_dump` writes it.

use super::super::{
    ARRAY, CONST, ENUM, ENUM64, FLOAT, FUNC_PROTO, FWD, INT, PTR, RESTRICT, STRUCT, TYPEDEF, TYPE_TAG, UNION, VOLATILE,
};
use super::{CDump, MAX_CHAIN};
use std::fmt::Write as _;

impl CDump<'_> {
    /// Declares `fname` of type `id` in C syntax: the chain of types down to a named (or
    /// inline-defined) one, written inside out (`const char *name`, `char comm[16]`,
    /// `ssize_t (*read)(struct file *, char *, size_t, loff_t *)`).
    pub(super) fn emit_type_decl(&mut self, mut id: u32, fname: &str, lvl: usize) {
        let mut chain = Vec::new();
        loop {
            chain.push(id);
            if id == 0 || chain.len() >= MAX_CHAIN {
                break;
            }
            let Some(r) = self.raw(id) else { break };
            match r.kind {
                PTR | VOLATILE | CONST | RESTRICT | FUNC_PROTO | TYPE_TAG => id = r.size_or_type,
                ARRAY => id = self.array(r).0,
                _ => break,
            }
        }
        self.emit_type_chain(&mut chain, fname, lvl);
    }

    /// Writes the qualifiers on top of the chain (`const volatile `), before the type they
    /// qualify.
    fn emit_mods(&mut self, chain: &mut Vec<u32>) {
        while let Some(&id) = chain.last() {
            let word = match self.kind(id) {
                VOLATILE => "volatile ",
                CONST => "const ",
                RESTRICT => "restrict ",
                _ => return,
            };
            self.out.push_str(word);
            chain.pop();
        }
    }

    /// Drops the qualifiers on top of the chain: compilers put some on arrays and on
    /// `noreturn` function pointers where they mean nothing.
    fn drop_mods(&self, chain: &mut Vec<u32>) {
        while let Some(&id) = chain.last() {
            if !matches!(self.kind(id), VOLATILE | CONST | RESTRICT | TYPE_TAG) {
                return;
            }
            chain.pop();
        }
    }

    fn emit_name(&mut self, name: &str, last_was_ptr: bool) {
        if !name.is_empty() && !last_was_ptr {
            self.out.push(' ');
        }
        self.out.push_str(name);
    }

    /// Writes a declaration chain, innermost type (the top of `chain`) first.
    fn emit_type_chain(&mut self, chain: &mut Vec<u32>, fname: &str, lvl: usize) {
        // `int ***` rather than `int * * *`; true at the start for a chain that is just the
        // pointer of a function pointer, written `(*NAME)`.
        let mut last_was_ptr = true;
        while let Some(id) = chain.pop() {
            let Some(r) = self.raw(id).filter(|_| id != 0) else {
                self.emit_mods(chain);
                self.out.push_str("void");
                last_was_ptr = false;
                continue;
            };
            match r.kind {
                INT | FLOAT => {
                    self.emit_mods(chain);
                    self.out.push_str(self.name(r.name_off));
                }
                STRUCT | UNION => {
                    self.emit_mods(chain);
                    if r.name_off == 0 {
                        self.emit_struct_def(id, r, lvl);
                    } else {
                        self.emit_struct_fwd(id, r);
                    }
                }
                ENUM | ENUM64 => {
                    self.emit_mods(chain);
                    if r.name_off == 0 {
                        self.emit_enum_def(id, r, lvl);
                    } else {
                        let name = self.type_name(id);
                        let _ = write!(self.out, "enum {name}");
                    }
                }
                FWD => {
                    self.emit_mods(chain);
                    self.emit_fwd_def(id, r);
                }
                TYPEDEF => {
                    self.emit_mods(chain);
                    let name = self.ident_name(id);
                    self.out.push_str(&name);
                }
                PTR => self.out.push_str(if last_was_ptr { "*" } else { " *" }),
                VOLATILE => self.out.push_str(" volatile"),
                CONST => self.out.push_str(" const"),
                RESTRICT => self.out.push_str(" restrict"),
                TYPE_TAG => {
                    self.emit_mods(chain);
                    let _ = write!(self.out, " __attribute__((btf_type_tag(\"{}\")))", self.name(r.name_off));
                }
                ARRAY => {
                    let len = self.array(r).1;
                    self.drop_mods(chain);
                    let Some(&next) = chain.last() else {
                        self.emit_name(fname, last_was_ptr);
                        let _ = write!(self.out, "[{len}]");
                        return;
                    };
                    // `int a[2][3]` needs no parentheses; `int (*a)[3]` does.
                    let multidim = self.kind(next) == ARRAY;
                    if !fname.is_empty() && !last_was_ptr {
                        self.out.push(' ');
                    }
                    if !multidim {
                        self.out.push('(');
                    }
                    self.emit_type_chain(chain, fname, lvl);
                    if !multidim {
                        self.out.push(')');
                    }
                    let _ = write!(self.out, "[{len}]");
                    return;
                }
                FUNC_PROTO => {
                    self.drop_mods(chain);
                    if chain.is_empty() {
                        self.emit_name(fname, last_was_ptr);
                    } else {
                        self.out.push_str(" (");
                        self.emit_type_chain(chain, fname, lvl);
                        self.out.push(')');
                    }
                    self.out.push('(');
                    let vlen = r.vlen as usize;
                    // `int (*f)(void)` comes as one void parameter: written `()`.
                    if vlen == 1 && self.param(r, 0).1 == 0 {
                        self.out.push(')');
                        return;
                    }
                    for i in 0..vlen {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        let (name_off, ty) = self.param(r, i);
                        // A last parameter of type void is the `...` of a variadic function.
                        if i == vlen - 1 && ty == 0 {
                            self.out.push_str("...");
                            break;
                        }
                        self.emit_type_decl(ty, self.name(name_off), lvl);
                    }
                    self.out.push(')');
                    return;
                }
                _ => return,
            }
            last_was_ptr = r.kind == PTR;
        }
        self.emit_name(fname, last_was_ptr);
    }
}
