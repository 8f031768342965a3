//! Tests that objects from [`super::elf::write_object`] parse and relocate with aya-obj, the
//! parser aya itself loads objects with.

use std::collections::{HashMap, HashSet};

use aya_obj::{Map, Object, ProgramSection};

use super::elf::{write_object, ElfError, MapReloc, ObjectMap, ObjectProgram};
use super::helpers::*;
use super::insn::{Insn, Reg};
use super::opcode::{AluOp, JmpOp, Size, BPF_PSEUDO_MAP_FD};

/// `counts[pid] = lookup(...)` shaped code: key on the stack, lookups in two maps.
fn tracepoint_program() -> ObjectProgram {
    let mut insns = vec![
        Insn::mov64_imm(Reg::R1, 7),
        Insn::stx_mem(Size::DW, Reg::FP, Reg::R1, -8),
        Insn::mov64_reg(Reg::R2, Reg::FP),
        Insn::alu64_imm(AluOp::Add, Reg::R2, -8),
    ];
    let counts_load = insns.len();
    insns.extend(Insn::ld_map_fd(Reg::R1));
    insns.push(Insn::call_helper(Helper::MapLookupElem));
    insns.push(Insn::st_mem(Size::W, Reg::FP, -12, 0));
    insns.push(Insn::mov64_reg(Reg::R2, Reg::FP));
    insns.push(Insn::alu64_imm(AluOp::Add, Reg::R2, -12));
    let scratch_load = insns.len();
    insns.extend(Insn::ld_map_fd(Reg::R1));
    insns.push(Insn::call_helper(Helper::MapLookupElem));
    insns.push(Insn::jmp_imm(JmpOp::Eq, Reg::R0, 0, 0));
    insns.push(Insn::mov64_imm(Reg::R0, 0));
    insns.push(Insn::exit());
    ObjectProgram {
        name: "on_getppid".to_owned(),
        section: "tracepoint/syscalls/sys_enter_getppid".to_owned(),
        insns,
        map_relocs: vec![
            MapReloc { insn_index: counts_load, map_name: "AT_counts".to_owned() },
            MapReloc { insn_index: scratch_load, map_name: "scratch".to_owned() },
        ],
    }
}

/// Sends 8 bytes of stack to the ring buffer.
fn perf_event_program() -> ObjectProgram {
    let mut insns = vec![Insn::st_mem(Size::DW, Reg::FP, -8, 42)];
    insns.extend(Insn::ld_map_fd(Reg::R1));
    insns.extend([
        Insn::mov64_reg(Reg::R2, Reg::FP),
        Insn::alu64_imm(AluOp::Add, Reg::R2, -8),
        Insn::mov64_imm(Reg::R3, 8),
        Insn::mov64_imm(Reg::R4, 0),
        Insn::call_helper(Helper::RingbufOutput),
        Insn::mov64_imm(Reg::R0, 0),
        Insn::exit(),
    ]);
    ObjectProgram {
        name: "on_cpu_clock".to_owned(),
        section: "perf_event".to_owned(),
        insns,
        map_relocs: vec![MapReloc { insn_index: 1, map_name: "ringbuf".to_owned() }],
    }
}

fn test_maps() -> Vec<ObjectMap> {
    vec![
        ObjectMap {
            name: "AT_counts".to_owned(),
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 8,
            value_size: 8,
            max_entries: 4096,
            flags: BPF_F_NO_PREALLOC,
        },
        ObjectMap {
            name: "scratch".to_owned(),
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size: 64,
            max_entries: 1,
            flags: 0,
        },
        ObjectMap {
            name: "ringbuf".to_owned(),
            map_type: BPF_MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: 1 << 20,
            flags: 0,
        },
    ]
}

fn test_object() -> Vec<u8> {
    let programs = [tracepoint_program(), perf_event_program()];
    let written = write_object(&programs, &test_maps(), "GPL");
    written.unwrap_or_else(|error| panic!("write_object failed: {error}"))
}

fn parse(bytes: &[u8]) -> Object {
    Object::parse(bytes).unwrap_or_else(|error| panic!("aya-obj rejected the object: {error:?}"))
}

#[test]
fn aya_obj_finds_the_programs_and_their_instructions() {
    let object = parse(&test_object());
    assert_eq!(object.license.to_str().ok(), Some("GPL"));
    assert_eq!(object.programs.len(), 2);

    let tracepoint = &object.programs["on_getppid"];
    assert!(matches!(tracepoint.section, ProgramSection::TracePoint));
    let function = &object.functions[&tracepoint.function_key()];
    assert_eq!(function.instructions.len(), tracepoint_program().insns.len());
    assert_eq!(function.name, "on_getppid");

    let perf_event = &object.programs["on_cpu_clock"];
    assert!(matches!(perf_event.section, ProgramSection::PerfEvent));
    let function = &object.functions[&perf_event.function_key()];
    assert_eq!(function.instructions.len(), perf_event_program().insns.len());
    let last = function.instructions[function.instructions.len() - 1];
    assert_eq!(last.code, Insn::exit().code);
}

#[test]
fn aya_obj_reads_every_map_definition() {
    let object = parse(&test_object());
    assert_eq!(object.maps.len(), 3);
    for expected in test_maps() {
        let map = &object.maps[&expected.name];
        let Map::Legacy(legacy) = map else {
            panic!("{} should be a legacy map", expected.name);
        };
        assert_eq!(legacy.def.map_type, expected.map_type);
        assert_eq!(legacy.def.key_size, expected.key_size);
        assert_eq!(legacy.def.value_size, expected.value_size);
        assert_eq!(legacy.def.max_entries, expected.max_entries);
        assert_eq!(legacy.def.map_flags, expected.flags);
        assert_eq!(legacy.def.id, 0);
        assert!(map.symbol_index().is_some());
    }
}

#[test]
fn relocation_patches_the_right_ld_imm64() {
    let mut object = parse(&test_object());
    let fds: HashMap<&str, i32> = [("AT_counts", 100), ("scratch", 101), ("ringbuf", 102)].into_iter().collect();
    let maps: Vec<(String, Map)> = object.maps.iter().map(|(name, map)| (name.clone(), map.clone())).collect();
    let text_sections: HashSet<usize> = object.functions.keys().map(|key| key.0).collect();
    let relocated =
        object.relocate_maps(maps.iter().map(|(name, map)| (name.as_str(), fds[name.as_str()], map)), &text_sections);
    relocated.unwrap_or_else(|error| panic!("relocation failed: {error:?}"));

    let tracepoint = &object.programs["on_getppid"];
    let insns = &object.functions[&tracepoint.function_key()].instructions;
    for reloc in tracepoint_program().map_relocs {
        let insn = insns[reloc.insn_index];
        assert_eq!(insn.src_reg(), BPF_PSEUDO_MAP_FD);
        assert_eq!(insn.imm, fds[reloc.map_name.as_str()]);
    }
    // Instructions without relocations are untouched.
    assert_eq!(insns[0].imm, 7);

    let perf_event = &object.programs["on_cpu_clock"];
    let insns = &object.functions[&perf_event.function_key()].instructions;
    assert_eq!(insns[1].imm, 102);
}

#[test]
fn programs_may_share_a_section_name_and_objects_may_have_no_maps() {
    let exit = vec![Insn::mov64_imm(Reg::R0, 0), Insn::exit()];
    let program = |name: &str| ObjectProgram {
        name: name.to_owned(),
        section: "kprobe/do_nanosleep".to_owned(),
        insns: exit.clone(),
        map_relocs: Vec::new(),
    };
    let bytes = write_object(&[program("first"), program("second")], &[], "Dual MIT/GPL");
    let object = parse(&bytes.unwrap_or_else(|error| panic!("{error}")));
    assert_eq!(object.programs.len(), 2);
    assert!(object.maps.is_empty());
    assert!(matches!(object.programs["second"].section, ProgramSection::KProbe));
    assert_eq!(object.license.to_str().ok(), Some("Dual MIT/GPL"));
}

#[test]
fn rejects_what_aya_or_the_kernel_would_reject() {
    let maps = test_maps();
    let mut program = tracepoint_program();
    let error = |programs: &[ObjectProgram], maps: &[ObjectMap]| write_object(programs, maps, "GPL").err();

    program.name = "@counts".to_owned();
    let invalid = ElfError::InvalidName { name: "@counts".to_owned() };
    assert_eq!(error(&[program.clone()], &maps), Some(invalid));

    program.name = "AT_counts".to_owned();
    let duplicate = ElfError::DuplicateName { name: "AT_counts".to_owned() };
    assert_eq!(error(&[program.clone()], &maps), Some(duplicate));

    program.name = "ok".to_owned();
    program.map_relocs[0].insn_index = 0;
    let bad = ElfError::BadRelocation { program: "ok".to_owned(), insn_index: 0 };
    assert_eq!(error(&[program.clone()], &maps), Some(bad));

    let unknown = ElfError::UnknownMap { program: "ok".to_owned(), map: "AT_counts".to_owned() };
    assert_eq!(error(&[tracepoint_with_name("ok")], &[]), Some(unknown));

    let mut reserved = tracepoint_with_name("ok");
    reserved.section = "maps".to_owned();
    assert!(matches!(error(&[reserved], &maps), Some(ElfError::InvalidSection { .. })));

    let mut empty = tracepoint_with_name("ok");
    empty.insns.clear();
    empty.map_relocs.clear();
    assert!(matches!(error(&[empty], &maps), Some(ElfError::EmptyProgram { .. })));

    let license = write_object(&[], &maps, "G\0PL").err();
    assert_eq!(license, Some(ElfError::InvalidLicense));
}

fn tracepoint_with_name(name: &str) -> ObjectProgram {
    ObjectProgram { name: name.to_owned(), ..tracepoint_program() }
}
