//! Human summary of a plan (printed before converting) and of a report
//! (printed at the end, with the next steps).

use super::{Options, Plan, Report};
use guest::geometry::Bus;
use guest::plan::Action;
use std::fmt::Write;

fn size(n: u64) -> String {
    format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64)
}

/// Geometry findings as one line each: the per-bus copies of a finding
/// (`sata: partition 1 BPB says …`) folded into one line naming the
/// buses; findings about buses this migration does not use left out
/// (they stay in `plan.json`).
pub fn condensed_findings(findings: &[String], buses: &[Bus]) -> Vec<String> {
    let all = [Bus::Ide, Bus::Sata, Bus::VirtioBlk, Bus::VirtioScsi];
    let mut out: Vec<(String, Vec<&str>)> = vec![];
    for f in findings {
        let (bus, rest) = match all
            .iter()
            .find(|b| f.starts_with(&format!("{}: ", b.name())))
        {
            Some(b) => (Some(*b), f[b.name().len() + 2..].to_string()),
            None => (None, f.clone()),
        };
        if bus.is_some_and(|b| !buses.contains(&b)) {
            continue;
        }
        match out.iter_mut().find(|(m, _)| *m == rest) {
            Some((_, bs)) => bs.extend(bus.map(|b| b.name())),
            None => out.push((rest, bus.map(|b| b.name()).into_iter().collect())),
        }
    }
    out.into_iter()
        .map(|(m, bs)| {
            if bs.is_empty() {
                m
            } else {
                format!("{m} [{}]", bs.join(", "))
            }
        })
        .collect()
}

/// One line for an action.
pub fn action_line(a: &guest::plan::PlannedAction) -> String {
    let what = match &a.action {
        Action::Manual { text } => return format!("TODO {}: {text}", a.fixer),
        Action::RewriteGeometry { disk, .. } | Action::PinGeometry { disk, .. } => {
            format!("disk {disk}")
        }
        Action::SetValue {
            hive, key, name, ..
        } => {
            format!("disk {} {}: set {key}\\{name}", hive.volume.disk, hive.path)
        }
        Action::DeleteValue { hive, key, name } => {
            format!(
                "disk {} {}: delete {key}\\{name}",
                hive.volume.disk, hive.path
            )
        }
        Action::CreateKey { hive, key } => {
            format!("disk {} {}: create {key}", hive.volume.disk, hive.path)
        }
        Action::DeleteKey { hive, key } => {
            format!("disk {} {}: delete {key}", hive.volume.disk, hive.path)
        }
        Action::PutFile {
            volume, path, size, ..
        } => format!("disk {} put {path} ({size} bytes)", volume.disk),
        Action::MkDir { volume, path } => format!("disk {} mkdir {path}", volume.disk),
        Action::CopyOnce { volume, from, to } => {
            format!("disk {} copy {from} to {to}", volume.disk)
        }
        Action::FirstBoot { step } => format!("first boot: {}", step.id),
        Action::LinuxBootstrap { step, detail } => format!("bootstrap boot: {step} ({detail})"),
    };
    format!("fix  {}: {what}: {}", a.fixer, a.reason)
}

/// The plan as text: printed before converting.
pub fn plan_text(p: &Plan, o: &Options) -> String {
    let mut s = String::new();
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
    for w in &p.inspection.windows {
        let _ = writeln!(
            s,
            "found {} ({}, {:?}) on disk {} partition {}",
            w.product_name,
            w.os_id,
            w.arch,
            w.system.disk,
            w.system
                .partition
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    for n in &vm.nics {
        let _ = writeln!(s, "  nic {:?} {}", n.model, n.mac);
    }
    let buses = [p.bootstrap_bus, p.final_bus];
    for d in &p.disks {
        let _ = writeln!(
            s,
            "disk {}{}: {} [{}{}], {} layer(s), {} -> {} (boot order {})",
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
            d.output.display(),
            d.boot_order
        );
        for f in condensed_findings(&d.geometry_findings, &buses) {
            let _ = writeln!(s, "  geometry: {f}");
        }
    }
    for a in &p.actions {
        let _ = writeln!(s, "{}", action_line(a));
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
    }
    s
}

/// The text printed after `migrate`: the result and the next steps (the
/// plan itself was printed before converting).
pub fn human(r: &Report, o: &Options) -> String {
    let mut s = String::new();
    if r.plan.is_none() {
        return "no plan was made\n".into();
    }
    if o.dry_run {
        return s;
    }
    let _ = writeln!(s, "== result");
    // Manual steps were listed (TODO) with the plan: not repeated here.
    let actions = r.plan.as_ref().map(|p| p.actions.as_slice()).unwrap_or(&[]);
    for (i, a) in r.applied.iter().enumerate() {
        if !matches!(
            actions.get(i).map(|x| &x.action),
            Some(Action::Manual { .. })
        ) {
            let _ = writeln!(s, "applied: {a}");
        }
    }
    if let Some(b) = &r.bootstrap {
        let _ = writeln!(
            s,
            "bootstrap boot: the guest fixed itself in {:.1}s ({:?} controller; serial log {})",
            b.seconds,
            b.controller,
            b.serial_log.display()
        );
        for st in &b.steps {
            let _ = writeln!(s, "  step {}: rc {}", st.name, st.rc);
        }
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
    if let Some(f) = &r.first_boot {
        let _ = writeln!(
            s,
            "first boot (bootstrap domain): {} — {}",
            if f.ok { "DONE" } else { "FAILED" },
            f.reason
        );
    }
    let _ = writeln!(
        s,
        "{} in {:.1}s; outputs in {}",
        if r.success { "success" } else { "FAILED" },
        r.seconds,
        o.out.display()
    );
    s.push_str(&next_steps(r, o));
    s
}

/// Files written and what to run next.
pub fn next_steps(r: &Report, o: &Options) -> String {
    let mut s = String::new();
    let Some(p) = &r.plan else { return s };
    if r.written.is_empty() {
        return s;
    }
    let _ = writeln!(s, "== files written");
    for f in &r.written {
        let _ = writeln!(s, "  {}", f.display());
    }
    let _ = writeln!(s, "  {}", o.out.join("report.json").display());
    let name = p.vm.safe_name();
    let file = |phase: &str, ext: &str| o.out.join(format!("{name}-{phase}.{ext}"));
    let storage_todo = p
        .actions
        .iter()
        .any(|a| matches!(&a.action, Action::Manual { text } if text.contains("0x7B") || text.contains("initramfs")));
    let _ = writeln!(s, "== next steps");
    if r.first_boot.as_ref().is_some_and(|f| f.ok) {
        let _ = writeln!(
            s,
            "start the final domain: the bootstrap boot ran unattended and its first-boot \
             runner finished (its final phase runs on the final domain's first boot)"
        );
        let _ = writeln!(
            s,
            "  virsh define {} && virsh start {name}\n  or without libvirt: {}",
            file("final", "xml").display(),
            file("final", "sh").display()
        );
        return s;
    }
    let (first, why) = if storage_todo {
        (
            "bootstrap",
            "its disks are on buses the guest has drivers for; install the VirtIO drivers there (see the TODO lines)",
        )
    } else {
        ("final", "nothing left to do in the guest first")
    };
    let _ = writeln!(s, "boot the {first} domain first: {why}");
    let _ = writeln!(
        s,
        "  virsh define {} && virsh start {name}",
        file(first, "xml").display()
    );
    let _ = writeln!(s, "  or without libvirt: {}", file(first, "sh").display());
    if first == "bootstrap" {
        let _ = writeln!(
            s,
            "then switch to the final domain (same name, virtio devices):\n  virsh shutdown {name}; virsh define {} && virsh start {name}\n  or: {}",
            file("final", "xml").display(),
            file("final", "sh").display()
        );
    }
    s
}
