//! Decoding of QEMU's `GUEST_PANICKED` event, in particular the Hyper-V
//! crash parameters a Windows guest reports through the `hv-crash`
//! enlightenment: `arg1` is the bugcheck (stop) code, `arg2..arg5` its four
//! parameters.
//!
//! Event shape (QEMU QAPI `GuestPanicInformation`):
//! `{"event":"GUEST_PANICKED","data":{"action":"pause",
//!   "info":{"type":"hyper-v","arg1":123,"arg2":..,"arg3":..,"arg4":..,"arg5":..}}}`

use serde::Serialize;
use serde_json::Value;

/// Known Windows bugcheck codes: (code, name, hint for a migrated VM).
#[rustfmt::skip]
pub const BUGCHECKS: &[(u64, &str, &str)] = &[
    (0x0A, "IRQL_NOT_LESS_OR_EQUAL", "a driver touched pageable memory at high IRQL (often a leftover hypervisor driver)"),
    (0x19, "BAD_POOL_HEADER", "pool corruption"),
    (0x1A, "MEMORY_MANAGEMENT", "memory management error"),
    (0x1E, "KMODE_EXCEPTION_NOT_HANDLED", "a kernel-mode driver raised an unhandled exception"),
    (0x24, "NTFS_FILE_SYSTEM", "NTFS driver failure: the system volume is damaged or was copied inconsistently"),
    (0x3B, "SYSTEM_SERVICE_EXCEPTION", "exception in a system service (often a driver left from the old hypervisor)"),
    (0x50, "PAGE_FAULT_IN_NONPAGED_AREA", "invalid memory reference (often a driver left from the old hypervisor)"),
    (0x5C, "HAL_INITIALIZATION_FAILED", "HAL does not match the virtual hardware"),
    (0x5D, "UNSUPPORTED_PROCESSOR", "the CPU model lacks features this Windows needs (try a newer -cpu model)"),
    (0x6B, "PROCESS1_INITIALIZATION_FAILED", "session manager initialisation failed (damaged system files or BCD)"),
    (0x74, "BAD_SYSTEM_CONFIG_INFO", "the SYSTEM registry hive is damaged"),
    (0x7A, "KERNEL_DATA_INPAGE_ERROR", "paging from disk failed (storage driver or disk problem)"),
    (0x7B, "INACCESSIBLE_BOOT_DEVICE", "Windows cannot reach its boot disk: the storage driver for this controller (viostor/vioscsi, or storahci/intelide) is not installed or not set to start at boot"),
    (0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED", "a system thread raised an unhandled exception (often a driver left from the old hypervisor)"),
    (0x7F, "UNEXPECTED_KERNEL_MODE_TRAP", "unexpected kernel-mode trap (CPU model or hardware mismatch)"),
    (0xA5, "ACPI_BIOS_ERROR", "the ACPI tables do not suit this Windows (try another machine type)"),
    (0xC2, "BAD_POOL_CALLER", "a driver made a bad pool request"),
    (0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL", "a driver touched pageable memory at high IRQL (often a leftover hypervisor driver)"),
    (0xED, "UNMOUNTABLE_BOOT_VOLUME", "the boot volume could not be mounted (filesystem damage or wrong storage driver)"),
    (0xEF, "CRITICAL_PROCESS_DIED", "a critical system process died"),
    (0xF4, "CRITICAL_OBJECT_TERMINATION", "a critical process or thread terminated (often disk I/O failing)"),
    (0x101, "CLOCK_WATCHDOG_TIMEOUT", "a virtual CPU stopped responding (too many vCPUs for the host, or CPU model)"),
    (0x109, "CRITICAL_STRUCTURE_CORRUPTION", "kernel code or data corruption detected (PatchGuard)"),
    (0x124, "WHEA_UNCORRECTABLE_ERROR", "hardware error reported (CPU model / MSR mismatch)"),
    (0x133, "DPC_WATCHDOG_VIOLATION", "a DPC ran too long (storage driver or timer problem)"),
    (0x135, "REGISTRY_FILTER_DRIVER_EXCEPTION", "a registry filter driver raised an exception"),
    (0x139, "KERNEL_SECURITY_CHECK_FAILURE", "kernel detected corruption of a critical data structure"),
    (0xC000021A, "STATUS_SYSTEM_PROCESS_TERMINATED", "winlogon or csrss died (damaged system files or registry)"),
];

/// NTSTATUS values commonly found in the parameters of 0x7B / 0xED.
const STATUSES: &[(u64, &str)] = &[
    (0xC000000E, "STATUS_NO_SUCH_DEVICE"),
    (0xC0000032, "STATUS_DISK_CORRUPT_ERROR"),
    (0xC0000034, "STATUS_OBJECT_NAME_NOT_FOUND"),
    (0xC0000102, "STATUS_FILE_CORRUPT_ERROR"),
    (0xC000014F, "STATUS_UNRECOGNIZED_VOLUME"),
    (0xC0000185, "STATUS_IO_DEVICE_ERROR"),
];

/// The name of a bugcheck code, if known.
pub fn bugcheck_name(code: u64) -> Option<&'static str> {
    BUGCHECKS.iter().find(|b| b.0 == code).map(|b| b.1)
}

/// A decoded Windows bugcheck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bugcheck {
    /// Stop code.
    pub code: u64,
    /// Stop code as Windows prints it (`0x0000007B`).
    pub code_hex: String,
    /// Symbolic name, if known.
    pub name: Option<String>,
    /// What usually causes it on a migrated VM.
    pub hint: Option<String>,
    /// The four bugcheck parameters (`arg2..arg5`).
    pub params: [u64; 4],
    /// Parameters that are known NTSTATUS values, decoded.
    pub statuses: Vec<String>,
}

/// A decoded `GUEST_PANICKED` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PanicInfo {
    /// `info.type` (`hyper-v`, `s390`, ...) or `pvpanic` when the event
    /// had no `info` (pvpanic device, Linux `panic` notifier).
    pub kind: String,
    /// The action QEMU took (`pause`, `poweroff`, `run`).
    pub action: Option<String>,
    /// The Windows bugcheck, for `hyper-v`.
    pub bugcheck: Option<Bugcheck>,
}

impl PanicInfo {
    /// One line: `Windows bugcheck 0x0000007B INACCESSIBLE_BOOT_DEVICE (...)`.
    pub fn describe(&self) -> String {
        match &self.bugcheck {
            Some(b) => {
                let mut s = format!(
                    "Windows bugcheck {} {}",
                    b.code_hex,
                    b.name.as_deref().unwrap_or("(unknown stop code)")
                );
                s.push_str(&format!(
                    " ({:#x}, {:#x}, {:#x}, {:#x})",
                    b.params[0], b.params[1], b.params[2], b.params[3]
                ));
                if !b.statuses.is_empty() {
                    s.push_str(&format!(" [{}]", b.statuses.join(", ")));
                }
                if let Some(h) = &b.hint {
                    s.push_str(": ");
                    s.push_str(h);
                }
                s
            }
            None => format!("guest panicked ({})", self.kind),
        }
    }
}

fn arg(info: &Value, name: &str) -> u64 {
    match info.get(name) {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_i64().map(|v| v as u64))
            .unwrap_or(0),
        _ => 0,
    }
}

/// Decode the `data` member of a `GUEST_PANICKED` event.
pub fn decode_panic(data: &Value) -> PanicInfo {
    let action = data
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(info) = data.get("info") else {
        return PanicInfo {
            kind: "pvpanic".into(),
            action,
            bugcheck: None,
        };
    };
    let kind = info
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let bugcheck = (kind == "hyper-v").then(|| {
        let code = arg(info, "arg1");
        let params = [
            arg(info, "arg2"),
            arg(info, "arg3"),
            arg(info, "arg4"),
            arg(info, "arg5"),
        ];
        let known = BUGCHECKS.iter().find(|b| b.0 == code);
        let statuses = params
            .iter()
            .filter_map(|p| {
                STATUSES
                    .iter()
                    .find(|s| s.0 == *p)
                    .map(|s| format!("{:#010X} {}", p, s.1))
            })
            .collect();
        Bugcheck {
            code,
            code_hex: format!("0x{code:08X}"),
            name: known.map(|b| b.1.to_string()),
            hint: known.map(|b| b.2.to_string()),
            params,
            statuses,
        }
    });
    PanicInfo {
        kind,
        action,
        bugcheck,
    }
}
