//! Kernel ABI numbers the BPF backend emits: helper function ids, map types and flags.
//!
//! The numbers are fixed by `include/uapi/linux/bpf.h`: map types and flags are taken from the
//! bindings aya-obj generates from that header; helper ids (the `___BPF_FUNC_MAPPER` list) are
//! written here, next to their names, which are the kernel's, as the verifier log prints them
//! (`call bpf_map_lookup_elem#1`).

use aya_obj::generated as uapi;

/// Declares [`Helper`] with its id and kernel name from one table, so the two cannot drift apart.
macro_rules! helpers {
    ($($variant:ident = $id:literal, $name:literal;)*) => {
        /// A BPF helper function the code generator may call.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Helper {
            $($variant,)*
        }

        impl Helper {
            /// Every helper rbt knows, in id order.
            pub const ALL: &'static [Helper] = &[$(Helper::$variant,)*];

            /// The helper's number, the `imm` of its `call` instruction.
            pub const fn id(self) -> i32 {
                match self {
                    $(Helper::$variant => $id,)*
                }
            }

            /// The kernel's name for the helper, e.g. `bpf_map_lookup_elem`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Helper::$variant => $name,)*
                }
            }

            /// The helper with number `id`, if rbt knows it.
            pub fn from_id(id: i32) -> Option<Helper> {
                match id {
                    $($id => Some(Helper::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

helpers! {
    MapLookupElem = 1, "bpf_map_lookup_elem";
    MapUpdateElem = 2, "bpf_map_update_elem";
    MapDeleteElem = 3, "bpf_map_delete_elem";
    ProbeRead = 4, "bpf_probe_read";
    KtimeGetNs = 5, "bpf_ktime_get_ns";
    TracePrintk = 6, "bpf_trace_printk";
    GetPrandomU32 = 7, "bpf_get_prandom_u32";
    GetSmpProcessorId = 8, "bpf_get_smp_processor_id";
    TailCall = 12, "bpf_tail_call";
    GetCurrentPidTgid = 14, "bpf_get_current_pid_tgid";
    GetCurrentUidGid = 15, "bpf_get_current_uid_gid";
    GetCurrentComm = 16, "bpf_get_current_comm";
    PerfEventOutput = 25, "bpf_perf_event_output";
    GetStackid = 27, "bpf_get_stackid";
    GetCurrentTask = 35, "bpf_get_current_task";
    ProbeWriteUser = 36, "bpf_probe_write_user";
    GetNumaNodeId = 42, "bpf_get_numa_node_id";
    ProbeReadStr = 45, "bpf_probe_read_str";
    OverrideReturn = 58, "bpf_override_return";
    GetStack = 67, "bpf_get_stack";
    GetCurrentCgroupId = 80, "bpf_get_current_cgroup_id";
    SendSignal = 109, "bpf_send_signal";
    ProbeReadUser = 112, "bpf_probe_read_user";
    ProbeReadKernel = 113, "bpf_probe_read_kernel";
    ProbeReadUserStr = 114, "bpf_probe_read_user_str";
    ProbeReadKernelStr = 115, "bpf_probe_read_kernel_str";
    SendSignalThread = 117, "bpf_send_signal_thread";
    Jiffies64 = 118, "bpf_jiffies64";
    GetNsCurrentPidTgid = 120, "bpf_get_ns_current_pid_tgid";
    KtimeGetBootNs = 125, "bpf_ktime_get_boot_ns";
    RingbufOutput = 130, "bpf_ringbuf_output";
    RingbufReserve = 131, "bpf_ringbuf_reserve";
    RingbufSubmit = 132, "bpf_ringbuf_submit";
    RingbufDiscard = 133, "bpf_ringbuf_discard";
    GetTaskStack = 141, "bpf_get_task_stack";
    DPath = 147, "bpf_d_path";
    GetCurrentTaskBtf = 158, "bpf_get_current_task_btf";
    KtimeGetCoarseNs = 160, "bpf_ktime_get_coarse_ns";
    Snprintf = 165, "bpf_snprintf";
    GetFuncIp = 173, "bpf_get_func_ip";
    GetAttachCookie = 174, "bpf_get_attach_cookie";
    TaskPtRegs = 175, "bpf_task_pt_regs";
    Loop = 181, "bpf_loop";
    Strncmp = 182, "bpf_strncmp";
    GetFuncArg = 183, "bpf_get_func_arg";
    GetFuncRet = 184, "bpf_get_func_ret";
    GetFuncArgCnt = 185, "bpf_get_func_arg_cnt";
    KtimeGetTaiNs = 208, "bpf_ktime_get_tai_ns";
}

// Map types (`enum bpf_map_type`), the `map_type` of an [`super::elf::ObjectMap`].
pub const BPF_MAP_TYPE_HASH: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_HASH as u32;
pub const BPF_MAP_TYPE_ARRAY: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_ARRAY as u32;
pub const BPF_MAP_TYPE_PROG_ARRAY: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_PROG_ARRAY as u32;
pub const BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_PERF_EVENT_ARRAY as u32;
pub const BPF_MAP_TYPE_PERCPU_HASH: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_PERCPU_HASH as u32;
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY as u32;
pub const BPF_MAP_TYPE_STACK_TRACE: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_STACK_TRACE as u32;
pub const BPF_MAP_TYPE_LRU_HASH: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_LRU_HASH as u32;
pub const BPF_MAP_TYPE_LRU_PERCPU_HASH: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_LRU_PERCPU_HASH as u32;
pub const BPF_MAP_TYPE_RINGBUF: u32 = uapi::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32;

/// Map creation flag: allocate hash entries on demand instead of all up front.
pub const BPF_F_NO_PREALLOC: u32 = uapi::BPF_F_NO_PREALLOC;
/// An array map user space can `mmap` (Linux 5.5+).
pub const BPF_F_MMAPABLE: u32 = uapi::BPF_F_MMAPABLE;

// `flags` argument of `bpf_map_update_elem`, passed as an immediate in `r4`.
pub const BPF_ANY: i32 = uapi::BPF_ANY as i32;
pub const BPF_NOEXIST: i32 = uapi::BPF_NOEXIST as i32;
pub const BPF_EXIST: i32 = uapi::BPF_EXIST as i32;

// `flags` argument of `bpf_ringbuf_output`/`_submit`/`_discard`.
pub const BPF_RB_NO_WAKEUP: i32 = uapi::BPF_RB_NO_WAKEUP as i32;
pub const BPF_RB_FORCE_WAKEUP: i32 = uapi::BPF_RB_FORCE_WAKEUP as i32;

// `flags` argument of `bpf_get_stackid` and `bpf_get_stack`.
pub const BPF_F_SKIP_FIELD_MASK: u64 = uapi::BPF_F_SKIP_FIELD_MASK as u64;
pub const BPF_F_USER_STACK: i32 = uapi::BPF_F_USER_STACK as i32;
/// `bpf_get_stackid` flag: a stack whose hash matches a stored one is taken as that stack
/// without comparing every frame (the 32-bit hashes of distinct stacks rarely collide).
pub const BPF_F_FAST_STACK_CMP: i32 = uapi::BPF_F_FAST_STACK_CMP as i32;
pub const BPF_F_REUSE_STACKID: i32 = uapi::BPF_F_REUSE_STACKID as i32;

/// `flags` of `bpf_perf_event_output` meaning "this CPU's ring". It is `0xffff_ffff`, not `-1`:
/// load it with `Insn::mov32_imm(reg, -1)` or `ld_imm64`, because `mov64_imm(reg, -1)` sign-extends
/// to all 64 bits and the helper then fails with `-EINVAL`.
pub const BPF_F_CURRENT_CPU: u64 = uapi::BPF_F_CURRENT_CPU;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_match_the_kernel() {
        let expected = [
            (Helper::MapLookupElem, 1, "bpf_map_lookup_elem"),
            (Helper::ProbeRead, 4, "bpf_probe_read"),
            (Helper::GetCurrentPidTgid, 14, "bpf_get_current_pid_tgid"),
            (Helper::PerfEventOutput, 25, "bpf_perf_event_output"),
            (Helper::GetStackid, 27, "bpf_get_stackid"),
            (Helper::GetCurrentTask, 35, "bpf_get_current_task"),
            (Helper::ProbeReadStr, 45, "bpf_probe_read_str"),
            (Helper::GetCurrentCgroupId, 80, "bpf_get_current_cgroup_id"),
            (Helper::SendSignal, 109, "bpf_send_signal"),
            (Helper::ProbeReadKernelStr, 115, "bpf_probe_read_kernel_str"),
            (Helper::Jiffies64, 118, "bpf_jiffies64"),
            (Helper::KtimeGetBootNs, 125, "bpf_ktime_get_boot_ns"),
            (Helper::RingbufDiscard, 133, "bpf_ringbuf_discard"),
            (Helper::GetCurrentTaskBtf, 158, "bpf_get_current_task_btf"),
            (Helper::GetAttachCookie, 174, "bpf_get_attach_cookie"),
            (Helper::KtimeGetTaiNs, 208, "bpf_ktime_get_tai_ns"),
        ];
        for (helper, id, name) in expected {
            assert_eq!((helper.id(), helper.name()), (id, name));
        }
    }

    #[test]
    fn from_id_inverts_id_and_the_table_is_sorted() {
        for helper in Helper::ALL {
            assert_eq!(Helper::from_id(helper.id()), Some(*helper));
        }
        assert!(Helper::ALL.windows(2).all(|pair| pair[0].id() < pair[1].id()));
        assert_eq!(Helper::from_id(0), None);
        assert_eq!(Helper::from_id(10_000), None);
    }
}
