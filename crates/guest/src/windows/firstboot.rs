//! The Windows first boot, planned: a `cmd` runner that installs the staged
//! VirtIO drivers, retires the old hypervisor's tools, brings static
//! addresses back on the new adapters, checks the virtio boot and cleans
//! up after itself, reporting every step on COM1 — plus the offline
//! registry changes that go with it. Nothing here writes anything.
//!
//! [`plan_firstboot`] returns typed actions ([`PlannedAction`]):
//!
//! 1. the runner, `%SystemRoot%\hyper2kvm\firstboot.cmd` ([`script`]),
//!    generated from a step list kept as data ([`steps::Step`]) and the
//!    MAC → network-settings table ([`network`]); each step also appears
//!    as an [`Action::FirstBoot`] so the plan lists it;
//! 2. its launch, with no binary shipped: `HKLM\SYSTEM\Setup`
//!    `SetupType=2` + `CmdLine` (Winlogon runs the command as SYSTEM
//!    before logon and waits for it) when the image is not in setup or
//!    OOBE and nobody else uses them; otherwise a service
//!    (`hyper2kvm-firstboot`, own-process, automatic, LocalSystem) whose
//!    `cmd.exe` starts the runner detached (the service manager kills a
//!    non-service process after 30 s) — in every control set. The runner
//!    disarms its launch when its final phase is over ([`Launch`]);
//! 3. VMware, VirtualBox, Parallels and Xen components retired offline
//!    ([`offline::retire_tools`]): filters out of every class and device
//!    filter list first, then their services at Start=4, their network
//!    providers out of the provider order, their Winsock providers (VMware
//!    vsock) out of the protocol catalogs ([`offline::retire_winsock`]);
//!    their uninstallers run at the first boot;
//! 4. the stale binding of every statically configured source adapter
//!    cleared (DHCP, no addresses; the connection name freed) after its
//!    settings were staged in `SOFTWARE\hyper2kvm\FirstBoot\Network`;
//! 5. SAN policy OnlineAll, Group Policy device-installation restrictions
//!    relaxed, the XP/2003 new-hardware wizard suppressed — each restored
//!    by the final phase;
//! 6. every value changed first recorded in the undo list
//!    (`SOFTWARE\hyper2kvm\Backup`, [`offline::BACKUP_KEY`]).
//!
//! Planning against a hive that already holds the result plans no
//! registry change and the same runner bytes: the originals come from the
//! undo list, the network table from its staged copy.

pub mod network;
pub mod offline;
pub mod script;
pub mod steps;

use super::reg;
use super::storage::stage::{STAGE_DIR, TEMPORARY_KEY};
use super::storage::{self, under_root, FinalBus, Out, Reg, StoragePlan};
use crate::inspect::WindowsInstall;
use crate::plan::{Action, FileSource, FirstBootStep, PlannedAction, RegData};
use network::{NetEntry, NETWORK_KEY};
use offline::{Root, Undo};
use regf::Hive;
use sha2::{Digest, Sha256};
use steps::{Phase, PnpUtil, Step};

/// Fixer name on every planned action.
pub const FIXER: &str = "windows-firstboot";
/// The runner's path under the system root, `/`-separated.
pub const RUNNER_FILE: &str = "hyper2kvm/firstboot.cmd";
/// Service name of the fallback launch.
pub const SERVICE: &str = "hyper2kvm-firstboot";
/// `Setup\CmdLine` of the primary launch (cmd expands `%SystemRoot%`).
pub const CMDLINE: &str = r#"cmd.exe /c "%SystemRoot%\hyper2kvm\firstboot.cmd""#;
/// `ImagePath` of the fallback service: `start` detaches the runner from
/// the process the service manager kills after 30 s.
pub const SERVICE_IMAGE: &str = r#"%SystemRoot%\System32\cmd.exe /c start "" cmd.exe /c "%SystemRoot%\hyper2kvm\firstboot.cmd""#;
/// Values of `Policies\Microsoft\Windows\DeviceInstall\Restrictions` that
/// deny device installation when non-zero.
pub const DENY: &[&str] = &[
    "DenyUnspecified",
    "DenyDeviceIDs",
    "DenyDeviceClasses",
    "DenyRemovableDevices",
    "DenyAll",
];
/// SOFTWARE key of the device-installation restrictions.
pub const RESTRICTIONS_KEY: &str = r"Policies\Microsoft\Windows\DeviceInstall\Restrictions";

/// A driver package staged under `%SystemRoot%\Drivers\VirtIO\<name>\`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedDriver {
    /// Directory name (`viostor`, `NetKVM`, …).
    pub name: String,
    /// INF file name in it (`netkvm.inf`).
    pub inf: String,
    /// Its install failing fails the migration (the boot storage driver).
    pub required: bool,
}

/// What the first boot needs besides the install and its hives.
#[derive(Debug, Clone, Default)]
pub struct FirstBootOptions {
    /// The staged driver packages to install.
    pub drivers: Vec<StagedDriver>,
    /// The boot storage service of the final bus (`viostor`, `vioscsi`);
    /// `None` checks for either.
    pub storage_service: Option<String>,
    /// Temporary keys the storage fix registered (from `HKLM`), removed
    /// once the real package is installed; merged with the list already
    /// recorded in the SOFTWARE hive.
    pub temporary_keys: Vec<String>,
    /// Temporary values, `<key from HKLM>|<value>`.
    pub temporary_values: Vec<String>,
    /// The source VM's MAC addresses in its NIC order (from the VM
    /// metadata), used for adapters whose MAC the hive does not record
    /// when the counts agree.
    pub nic_macs: Vec<String>,
}

impl FirstBootOptions {
    /// The options matching a storage plan: the packages it stages, the
    /// temporaries it records, the storage service of `bus`.
    pub fn from_storage_plan(
        install: &WindowsInstall,
        plan: &StoragePlan,
        bus: FinalBus,
    ) -> FirstBootOptions {
        let service = match bus {
            FinalBus::VirtioBlk => "viostor",
            FinalBus::VirtioScsi => "vioscsi",
        };
        let stage = format!("{}/", under_root(install, STAGE_DIR)).to_ascii_lowercase();
        let mut o = FirstBootOptions {
            storage_service: Some(service.into()),
            ..Default::default()
        };
        for pa in &plan.actions {
            match &pa.action {
                Action::PutFile { path, .. } => {
                    let Some(rest) = path
                        .get(..stage.len())
                        .filter(|p| p.eq_ignore_ascii_case(&stage))
                        .map(|_| &path[stage.len()..])
                    else {
                        continue;
                    };
                    let Some((name, file)) = rest.split_once('/') else {
                        continue;
                    };
                    if file.contains('/') || !file.to_ascii_lowercase().ends_with(".inf") {
                        continue;
                    }
                    if !o.drivers.iter().any(|d| d.name == name) {
                        o.drivers.push(StagedDriver {
                            name: name.into(),
                            inf: file.into(),
                            required: name.eq_ignore_ascii_case(service),
                        });
                    }
                }
                Action::SetValue {
                    hive,
                    key,
                    name,
                    data: RegData::MultiSz(list),
                } if *hive == install.software_hive && key.eq_ignore_ascii_case(TEMPORARY_KEY) => {
                    if name.eq_ignore_ascii_case("Keys") {
                        o.temporary_keys = list.clone();
                    } else if name.eq_ignore_ascii_case("Values") {
                        o.temporary_values = list.clone();
                    }
                }
                _ => {}
            }
        }
        o
    }
}

/// How the runner is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Launch {
    /// `HKLM\SYSTEM\Setup` `SetupType=2` + `CmdLine`.
    SetupCmdLine,
    /// The `hyper2kvm-firstboot` service.
    Service,
}

/// What [`plan_firstboot`] returns.
#[derive(Debug, Clone)]
pub struct FirstBootPlan {
    /// The actions, in the order they must be applied.
    pub actions: Vec<PlannedAction>,
    /// Things the admin should know that need no action.
    pub warnings: Vec<String>,
    /// The runner's steps (the data the script was generated from).
    pub steps: Vec<Step>,
    /// The MAC → network-settings table.
    pub network: Vec<NetEntry>,
    /// How the runner starts.
    pub launch: Launch,
    /// The runner's text (also in the `PutFile` action).
    pub script: String,
}

/// Errors of first-boot planning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The install must not be modified offline.
    #[error(transparent)]
    Refused(#[from] storage::Error),
    /// Too old for the runner's tools.
    #[error("{product} is Windows NT {major}.{minor}: the first-boot runner needs Windows XP (NT 5.1) or later (reg.exe, sc.exe, netsh)")]
    Unsupported {
        /// `ProductName`.
        product: String,
        /// NT major version.
        major: u32,
        /// NT minor version.
        minor: u32,
    },
    /// A staged driver's name cannot be used in the script.
    #[error("staged driver {name:?} with INF {inf:?}: names must be letters, digits, '_', '-' or '.' (INF ending in .inf)")]
    BadDriver {
        /// Directory name.
        name: String,
        /// INF name.
        inf: String,
    },
}

fn safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Plan the first boot of `install`.
///
/// `system` and `software` are the install's hives as they are now (logs
/// replayed; when the storage fix is planned too, before its actions — the
/// two touch different values); `opts` says what the storage fix staged
/// ([`FirstBootOptions::from_storage_plan`]). Errors: a refusing blocker,
/// a Windows older than XP, a staged driver name unusable in cmd.
pub fn plan_firstboot(
    install: &WindowsInstall,
    system: &Hive,
    software: &Hive,
    opts: &FirstBootOptions,
) -> Result<FirstBootPlan, Error> {
    storage::check_blockers(install)?;
    if (install.major, install.minor) < (5, 1) {
        return Err(Error::Unsupported {
            product: install.product_name.clone(),
            major: install.major,
            minor: install.minor,
        });
    }
    for d in &opts.drivers {
        if !safe_file_name(&d.name)
            || !safe_file_name(&d.inf)
            || !d.inf.to_ascii_lowercase().ends_with(".inf")
        {
            return Err(Error::BadDriver {
                name: d.name.clone(),
                inf: d.inf.clone(),
            });
        }
    }
    let sys = Reg {
        hive_ref: install.system_hive.clone(),
        hive: system,
    };
    let soft = Reg {
        hive_ref: install.software_hive.clone(),
        hive: software,
    };
    let mut out = Out::default();
    let mut undo = Undo::new(&sys, &soft);
    offline::retire_tools(install, system, &mut undo, &mut out);
    offline::retire_winsock(install, system, &mut undo, &mut out);
    let (launch, disarm) = plan_launch(install, system, &mut undo, &mut out);
    relax_policies(install, &mut undo, &mut out);
    let mut warnings = Vec::new();
    let net = plan_network(install, &soft, opts, &mut undo, &mut out, &mut warnings);
    let steps = build_steps(
        install,
        software,
        opts,
        &net,
        &undo.restore,
        &mut out,
        &mut warnings,
    );
    undo.finish(&mut out);
    warnings.append(&mut undo.warnings);
    let mut services: Vec<String> = match &opts.storage_service {
        Some(s) => vec![s.clone()],
        None => vec!["viostor".into(), "vioscsi".into()],
    };
    services.retain(|s| safe_file_name(s));
    let text = script::render(
        &steps,
        &script::ScriptParts {
            virtio_services: services,
            disarm,
            notes: vec![format!(
                "Launch: {}.",
                match launch {
                    Launch::SetupCmdLine => "HKLM\\SYSTEM\\Setup SetupType=2 + CmdLine",
                    Launch::Service => "the hyper2kvm-firstboot service",
                }
            )],
        },
    );
    put_runner(install, &text, &steps, &mut out);
    let mut plan = out.plan;
    for pa in plan.actions.iter_mut() {
        pa.fixer = FIXER.to_string();
    }
    warnings.extend(plan.warnings);
    Ok(FirstBootPlan {
        actions: plan.actions,
        warnings,
        steps,
        network: net,
        launch,
        script: text,
    })
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn put_runner(install: &WindowsInstall, text: &str, steps: &[Step], out: &mut Out) {
    let bytes = text.as_bytes().to_vec();
    out.action(
        Action::PutFile {
            volume: install.system.clone(),
            path: under_root(install, RUNNER_FILE),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            source: FileSource::Inline { bytes },
        },
        "the first-boot runner (cmd only; its steps follow)",
    );
    for st in steps {
        out.action(
            Action::FirstBoot {
                step: FirstBootStep {
                    id: st.id.clone(),
                    phase: st.phase.name().into(),
                    required: st.required,
                    commands: st.commands.clone(),
                },
            },
            &st.what,
        );
    }
}

/// Choose and plan the launch; returns it and the runner's disarm lines.
fn plan_launch(
    install: &WindowsInstall,
    system: &Hive,
    undo: &mut Undo,
    out: &mut Out,
) -> (Launch, Vec<String>) {
    let setup = reg::key(system, "Setup");
    let dw = |n: &str| setup.as_ref().and_then(|k| reg::dword(k, n)).unwrap_or(0);
    let cmdline = setup
        .as_ref()
        .and_then(|k| reg::string(k, "CmdLine"))
        .unwrap_or_default();
    let ours = dw("SetupType") == 2 && cmdline == CMDLINE;
    let service_there = install
        .control_sets
        .in_use
        .iter()
        .any(|cs| storage::has_key(system, &format!(r"{cs}\Services\{SERVICE}")));
    let free = dw("SetupType") == 0
        && cmdline.trim().is_empty()
        && dw("SystemSetupInProgress") == 0
        && dw("OOBEInProgress") == 0;
    if ours || (free && !service_there) {
        let why = "Winlogon runs Setup\\CmdLine as SYSTEM before logon when SetupType=2 and waits for it; the runner resets both when done";
        undo.set(
            out,
            Root::System,
            "Setup",
            "CmdLine",
            RegData::Sz(CMDLINE.into()),
            why,
        );
        undo.set(
            out,
            Root::System,
            "Setup",
            "SetupType",
            RegData::Dword(2),
            why,
        );
        return (
            Launch::SetupCmdLine,
            vec![
                r#"reg add "HKLM\SYSTEM\Setup" /v SetupType /t REG_DWORD /d 0 /f"#.into(),
                r#"reg add "HKLM\SYSTEM\Setup" /v CmdLine /t REG_SZ /d "" /f"#.into(),
            ],
        );
    }
    out.warn(format!(
        "HKLM\\SYSTEM\\Setup is in use (SetupType={}, CmdLine={cmdline:?}, SystemSetupInProgress={}, OOBEInProgress={}): the first-boot runner starts from the {SERVICE} service instead",
        dw("SetupType"),
        dw("SystemSetupInProgress"),
        dw("OOBEInProgress")
    ));
    let why = "starts the first-boot runner at boot as LocalSystem (cmd start detaches it from the service manager's 30 s limit); the runner deletes the service when done";
    let mut disarm = vec![format!("sc delete {SERVICE}")];
    for cs in &install.control_sets.in_use {
        let key = format!(r"{cs}\Services\{SERVICE}");
        let sys_reg = out_reg(install, system);
        for (name, data) in [
            ("Type", RegData::Dword(0x10)),
            ("Start", RegData::Dword(2)),
            ("ErrorControl", RegData::Dword(0)),
            ("ImagePath", RegData::ExpandSz(SERVICE_IMAGE.into())),
            ("ObjectName", RegData::Sz("LocalSystem".into())),
            ("DisplayName", RegData::Sz("hyper2kvm first boot".into())),
        ] {
            out.set(&sys_reg, &key, name, data, why);
        }
        disarm.push(format!(r#"call :regdel "HKLM\SYSTEM\{key}""#));
    }
    (Launch::Service, disarm)
}

fn out_reg<'h>(install: &WindowsInstall, system: &'h Hive) -> Reg<'h> {
    Reg {
        hive_ref: install.system_hive.clone(),
        hive: system,
    }
}

/// SAN policy, device-installation restrictions, new-hardware wizard.
fn relax_policies(install: &WindowsInstall, undo: &mut Undo, out: &mut Out) {
    let server = install
        .installation_type
        .as_deref()
        .is_some_and(|t| t.starts_with("Server"));
    if install.major >= 6 {
        for cs in &install.control_sets.in_use {
            let key = format!(r"{cs}\Services\partmgr\Parameters");
            let orig = undo.original(Root::System, &key, "SanPolicy");
            // Absent means OnlineAll on client editions, OfflineShared on
            // servers.
            if orig.is_none() && !server {
                continue;
            }
            undo.relax(
                out,
                Root::System,
                &key,
                "SanPolicy",
                1,
                "SAN policy OnlineAll for the first boot, so disks on the new controllers come online; the final phase restores it",
            );
        }
    }
    for name in DENY {
        let orig = undo.original(Root::Software, RESTRICTIONS_KEY, name);
        let on = orig
            .as_ref()
            .is_some_and(|(k, b)| *k == 4 && b.len() >= 4 && b[..4] != [0, 0, 0, 0]);
        if on {
            undo.relax(
                out,
                Root::Software,
                RESTRICTIONS_KEY,
                name,
                0,
                "Group Policy device-installation restriction relaxed for the first boot (the VirtIO devices must get drivers); the final phase restores it",
            );
        }
    }
    match (install.major, install.minor) {
        (5, 1) => undo.relax(
            out,
            Root::Software,
            r"Policies\Microsoft\Windows\DeviceInstall\Settings",
            "SuppressNewHWUI",
            1,
            "no Found New Hardware wizard waiting for a click at the first boot; the final phase restores it",
        ),
        (5, 2) => {
            for cs in &install.control_sets.in_use {
                undo.relax(
                    out,
                    Root::System,
                    &format!(r"{cs}\Services\PlugPlay\Parameters"),
                    "SuppressUI",
                    1,
                    "no Found New Hardware wizard waiting for a click at the first boot; the final phase restores it",
                );
            }
        }
        _ => {}
    }
}

/// Stage the network table and clear the stale bindings.
fn plan_network(
    install: &WindowsInstall,
    soft: &Reg,
    opts: &FirstBootOptions,
    undo: &mut Undo,
    out: &mut Out,
    warnings: &mut Vec<String>,
) -> Vec<NetEntry> {
    let mut table = staged_table(soft.hive);
    for e in network::table(&install.nics, &opts.nic_macs, warnings) {
        if !table.iter().any(|t| t.guid.eq_ignore_ascii_case(&e.guid)) {
            table.push(e);
        }
    }
    let why = "the source adapter's static settings, staged for the first boot on the new adapter";
    for (i, e) in table.iter().enumerate() {
        let key = format!(r"{NETWORK_KEY}\{i:02}");
        let (mac, order) = match &e.matcher {
            network::Match::Mac(m) => (m.clone(), 0),
            network::Match::Order(n) => (String::new(), *n as u32),
        };
        let strs = |v: Vec<String>| RegData::MultiSz(v);
        for (name, data) in [
            ("Guid", RegData::Sz(e.guid.clone())),
            ("Mac", RegData::Sz(mac)),
            ("Order", RegData::Dword(order)),
            ("Name", RegData::Sz(e.name.clone().unwrap_or_default())),
            (
                "Addresses",
                strs(
                    e.addresses
                        .iter()
                        .map(|(a, m)| format!("{a}/{m}"))
                        .collect(),
                ),
            ),
            (
                "Gateways",
                strs(e.gateways.iter().map(|g| g.to_string()).collect()),
            ),
            ("Dns", strs(e.dns.iter().map(|g| g.to_string()).collect())),
        ] {
            out.set(soft, &key, name, data, why);
        }
        clear_binding(install, e, undo, out);
    }
    table
}

/// The table staged by an earlier plan.
fn staged_table(software: &Hive) -> Vec<NetEntry> {
    let mut out = Vec::new();
    let Some(root) = reg::key(software, NETWORK_KEY) else {
        return out;
    };
    let mut rows = reg::subkeys(&root);
    rows.sort_by_key(reg::name);
    for k in rows {
        let Some(guid) = reg::string(&k, "Guid") else {
            continue;
        };
        let mac = reg::string(&k, "Mac").unwrap_or_default();
        let matcher = match network::getmac_form(&mac) {
            Some(m) => network::Match::Mac(m),
            None => network::Match::Order(reg::dword(&k, "Order").unwrap_or(1).max(1) as usize),
        };
        let v4 = |n: &str| -> Vec<std::net::Ipv4Addr> {
            reg::list(&k, n)
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect()
        };
        let addresses = reg::list(&k, "Addresses")
            .iter()
            .filter_map(|a| {
                let (i, m) = a.split_once('/')?;
                Some((i.parse().ok()?, m.parse().ok()?))
            })
            .collect::<Vec<_>>();
        if addresses.is_empty() {
            continue;
        }
        out.push(NetEntry {
            guid,
            matcher,
            name: reg::string(&k, "Name").filter(|n| network::safe_name(n)),
            addresses,
            gateways: v4("Gateways"),
            dns: v4("Dns"),
        });
    }
    out
}

fn clear_binding(install: &WindowsInstall, e: &NetEntry, undo: &mut Undo, out: &mut Out) {
    let why = "the source adapter is gone: its stale static binding is cleared so Windows sees no address conflict with a ghost (the settings are staged for the new adapter)";
    for cs in &install.control_sets.in_use {
        let t = format!(r"{cs}\Services\Tcpip\Parameters\Interfaces\{}", e.guid);
        if !storage::has_key(undo_hive(undo), &t) {
            continue;
        }
        undo.set(out, Root::System, &t, "EnableDHCP", RegData::Dword(1), why);
        for v in [
            "IPAddress",
            "SubnetMask",
            "DefaultGateway",
            "DefaultGatewayMetric",
            "NameServer",
        ] {
            undo.delete(out, Root::System, &t, v, why);
        }
        if let Some(name) = &e.name {
            let c = format!(
                r"{cs}\Control\Network\{}\{}\Connection",
                super::nics::NET_CLASS,
                e.guid
            );
            if storage::has_key(undo_hive(undo), &c) {
                undo.set(
                    out,
                    Root::System,
                    &c,
                    "Name",
                    RegData::Sz(format!("{name} (old)")),
                    "frees the connection name for the new adapter (the runner renames it)",
                );
            }
        }
    }
}

fn undo_hive<'a>(undo: &Undo<'a>) -> &'a Hive {
    undo.system_hive()
}

/// The step list.
fn build_steps(
    install: &WindowsInstall,
    software: &Hive,
    opts: &FirstBootOptions,
    net: &[NetEntry],
    restore: &[String],
    out: &mut Out,
    warnings: &mut Vec<String>,
) -> Vec<Step> {
    let mut v = Vec::new();
    let pnp = PnpUtil::of(install);
    for d in &opts.drivers {
        let inf = format!(r"%SystemRoot%\Drivers\VirtIO\{}\{}", d.name, d.inf);
        let Some(cmd) = pnp.command(&inf) else {
            continue;
        };
        let mut st = Step::new(
            &steps::make_id(&["install", &d.name]),
            Phase::Bootstrap,
            d.required,
            &format!(
                "install the staged {} package into the driver store",
                d.name
            ),
            vec![cmd],
        );
        st.ok_codes = pnp.ok_codes();
        v.push(st);
    }
    if pnp == PnpUtil::None && !opts.drivers.is_empty() {
        warnings.push(format!(
            "{}: no pnputil before Vista; Plug and Play installs the staged drivers from DevicePath when their devices appear",
            install.os_id
        ));
    }
    uninstall_steps(install, &mut v, out);
    if let Some(svc) = opts
        .storage_service
        .as_deref()
        .filter(|s| safe_file_name(s))
    {
        v.push(Step::new(
            "check-storage",
            Phase::Final,
            true,
            &format!("the boot disk's driver {svc} is running"),
            vec![format!(r#"sc query {svc} | find "RUNNING" >nul"#)],
        ));
    }
    for (i, e) in net.iter().enumerate() {
        v.push(network::step(e, i, install.major, install.minor));
    }
    for (i, e) in net.iter().enumerate() {
        v.push(network::check_step(e, i));
    }
    if let Some(st) = temporary_step(software, opts, &v, warnings) {
        v.push(st);
    }
    if !restore.is_empty() {
        v.push(Step::new(
            "restore-policies",
            Phase::Final,
            true,
            "put back what the first boot relaxed (SAN policy, device-installation restrictions, new-hardware wizard)",
            restore.to_vec(),
        ));
    }
    v
}

fn uninstall_steps(install: &WindowsInstall, v: &mut Vec<Step>, out: &mut Out) {
    let mut n = 0;
    for t in install
        .foreign_tools
        .iter()
        .filter(|t| t.kind == "uninstall" && offline::RETIRED_VENDORS.contains(&t.vendor.as_str()))
    {
        let id = steps::make_id(&["uninstall", &t.vendor, &n.to_string()]);
        let cmd = t
            .uninstall
            .as_deref()
            .and_then(|u| uninstall_command(u, &id));
        let Some(cmd) = cmd else {
            out.manual(format!(
                "uninstall {:?} ({}) from Programs and Features after the first boot: its uninstaller ({:?}) cannot be run unattended",
                t.name, t.vendor, t.uninstall
            ));
            continue;
        };
        n += 1;
        let mut st = Step::new(
            &id,
            Phase::Bootstrap,
            false,
            &format!(
                "uninstall {} quietly (a failure, often 1603, is recorded, not retried forever)",
                t.name
            ),
            vec![cmd],
        );
        // 1605: the product is not installed (any more).
        st.ok_codes = vec![0, 1605];
        st.max_attempts = 2;
        v.push(st);
    }
}

/// The unattended form of an uninstall string: `msiexec /x {GUID}` for
/// MSI products, `/S` for an NSIS `uninst.exe` (VirtualBox).
pub fn uninstall_command(u: &str, id: &str) -> Option<String> {
    let lower = u.to_ascii_lowercase();
    if lower.contains("msiexec") {
        let start = u.find('{')?;
        let guid = u.get(start..start + 38)?;
        let ok = guid.ends_with('}')
            && guid[1..37].chars().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !ok {
            return None;
        }
        return Some(format!(
            r#""%SystemRoot%\System32\msiexec.exe" /x {guid} /qn /norestart /l*v "%SystemRoot%\hyper2kvm\{id}.log""#
        ));
    }
    let path = u.trim().trim_matches('"');
    if path.to_ascii_lowercase().ends_with("uninst.exe")
        && path.chars().all(|c| {
            (' '..='~').contains(&c) && !matches!(c, '"' | '%' | '&' | '|' | '<' | '>' | '^')
        })
    {
        return Some(format!(r#""{path}" /S"#));
    }
    None
}

fn temporary_step(
    software: &Hive,
    opts: &FirstBootOptions,
    v: &[Step],
    warnings: &mut Vec<String>,
) -> Option<Step> {
    let recorded = |n: &str| {
        reg::key(software, TEMPORARY_KEY)
            .map(|k| reg::list(&k, n))
            .unwrap_or_default()
    };
    let mut keys = recorded("Keys");
    let mut values = recorded("Values");
    for k in &opts.temporary_keys {
        if !keys.iter().any(|x| x.eq_ignore_ascii_case(k)) {
            keys.push(k.clone());
        }
    }
    for k in &opts.temporary_values {
        if !values.iter().any(|x| x.eq_ignore_ascii_case(k)) {
            values.push(k.clone());
        }
    }
    if keys.is_empty() && values.is_empty() {
        return None;
    }
    let install = opts
        .storage_service
        .as_deref()
        .and_then(|s| v.iter().find(|st| st.id == steps::make_id(&["install", s])));
    let Some(install) = install else {
        warnings.push(
            "the storage fix recorded temporary driver registrations but no install step for the storage package exists: they stay until removed by hand (SOFTWARE\\hyper2kvm\\Temporary lists them)".into(),
        );
        return None;
    };
    const CHECK: &str = r#"if not "%ERRORLEVEL%"=="0" exit /b %ERRORLEVEL%"#;
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| (' '..='~').contains(&c) && !matches!(c, '"' | '%' | '!' | '^'))
    };
    let mut c = vec![
        format!(
            r#"call :getsz "%H2K_KEY%\Steps\{}" State H2K_X"#,
            install.id
        ),
        r#"if not "%H2K_X%"=="ok" exit /b 3"#.to_string(),
    ];
    for k in &keys {
        if safe(k) {
            c.push(format!(r#"call :regdel "HKLM\{k}""#));
            c.push(CHECK.into());
        } else {
            warnings.push(format!(
                "temporary key {k:?} cannot be named in cmd: left in place"
            ));
        }
    }
    for e in &values {
        match e.rsplit_once('|') {
            Some((k, n)) if safe(k) && safe(n) => {
                c.push(format!(r#"call :regdelv "HKLM\{k}" "{n}""#));
                c.push(CHECK.into());
            }
            _ => warnings.push(format!(
                "temporary value {e:?} cannot be named in cmd: left in place"
            )),
        }
    }
    c.push(format!(r#"call :regdel "HKLM\SOFTWARE\{TEMPORARY_KEY}""#));
    Some(Step::new(
        "remove-temporary",
        Phase::Final,
        true,
        "remove the storage fix's temporary driver registrations now that the real package is installed",
        c,
    ))
}
