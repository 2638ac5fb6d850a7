//! Human summary of a plan and a report.

use super::{Options, Report};
use std::fmt::Write;

fn size(n: u64) -> String {
    format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64)
}

/// The text printed after `migrate`.
pub fn human(r: &Report, o: &Options) -> String {
    let mut s = String::new();
    let Some(p) = &r.plan else {
        return "no plan was made\n".into();
    };
    let vm = &p.vm;
    let _ = writeln!(s, "== plan for VM {:?} ({:?} source)", vm.name, vm.source);
    let _ = writeln!(
        s,
        "guest OS {}, {:?} firmware{}{}, {} MiB, {} vCPU, {} NIC(s)",
        vm.guest_os.id(),
        vm.firmware.kind,
        if vm.firmware.secure_boot {
            " + secure boot"
        } else {
            ""
        },
        if vm.vtpm { " + vTPM" } else { "" },
        vm.memory_mib,
        vm.cpu.vcpus,
        vm.nics.len()
    );
    for n in &vm.nics {
        let _ = writeln!(s, "  nic {:?} {}", n.model, n.mac);
    }
    for d in &p.disks {
        let _ = writeln!(
            s,
            "disk {}{}: {} [{}{}], {} layer(s), {} -> {}",
            d.index,
            if d.boot { " (boot)" } else { "" },
            d.source,
            d.format,
            d.subformat
                .as_ref()
                .map(|x| format!(" {x}"))
                .unwrap_or_default(),
            d.chain.len(),
            size(d.virtual_size),
            d.output.display()
        );
        for f in &d.geometry_findings {
            let _ = writeln!(s, "  geometry: {f}");
        }
    }
    for f in &p.fixes {
        let _ = writeln!(
            s,
            "{} disk {}: {}",
            if f.supported { "fix " } else { "TODO" },
            f.disk,
            f.description
        );
    }
    for w in &p.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if o.dry_run {
        let _ = writeln!(
            s,
            "dry run: nothing converted (plan in {})",
            o.out.join("plan.json").display()
        );
        return s;
    }
    let _ = writeln!(s, "== result");
    for a in &r.applied {
        let _ = writeln!(s, "applied: {a}");
    }
    for (i, c) in r.conversions.iter().enumerate() {
        let _ = writeln!(
            s,
            "disk {i}: converted {} ({} data clusters, {} zero)",
            size(c.virtual_size),
            c.data_clusters,
            c.zero_clusters
        );
    }
    for v in &r.validation {
        let _ = writeln!(
            s,
            "validate {}: {} — {}",
            v.phase,
            if v.ok { "BOOTED" } else { "FAILED" },
            v.outcome
        );
    }
    let _ = writeln!(
        s,
        "{} in {:.1}s; outputs in {}",
        if r.success { "success" } else { "FAILED" },
        r.seconds,
        o.out.display()
    );
    s
}
