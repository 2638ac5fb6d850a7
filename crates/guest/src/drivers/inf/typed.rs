//! Typed views of an INF: [Version], [Manufacturer] and models, install
//! sections, services, copy lists, source files and destination dirs.

use super::{parse_number, AddRegLine, CopyFilesRef, Inf, InfError, Line};
use crate::drivers::Arch;
use serde::Serialize;

/// The `[Version]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Version {
    /// `Signature` (e.g. `$Windows NT$`).
    pub signature: Option<String>,
    /// `Class` (e.g. `SCSIAdapter`, `Net`).
    pub class: Option<String>,
    /// `ClassGUID` (braces kept, case as written).
    pub class_guid: Option<String>,
    /// `Provider`.
    pub provider: Option<String>,
    /// `DriverVer` date (`mm/dd/yyyy`).
    pub driver_date: Option<String>,
    /// `DriverVer` version (`w.x.y.z`).
    pub driver_version: Option<String>,
    /// Every `CatalogFile[.decoration]` entry: (decoration, file name).
    pub catalog_files: Vec<(Option<String>, String)>,
}

impl Version {
    /// The catalog file for `arch`: `CatalogFile.NT<arch>`, else
    /// `CatalogFile.NT`, else plain `CatalogFile`.
    pub fn catalog_file(&self, arch: Arch) -> Option<&str> {
        let want = format!("nt{}", arch.inf_name());
        let find = |d: Option<&str>| {
            self.catalog_files
                .iter()
                .find(|(k, v)| {
                    !v.is_empty()
                        && match (k, d) {
                            (Some(k), Some(d)) => k.eq_ignore_ascii_case(d),
                            (None, None) => true,
                            _ => false,
                        }
                })
                .map(|(_, v)| v.as_str())
        };
        find(Some(&want))
            .or_else(|| find(Some("nt")))
            .or_else(|| find(None))
    }
}

/// A Windows version to match `[Manufacturer]` decorations against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OsVersion {
    /// Major NT version (5, 6, 10).
    pub major: u32,
    /// Minor NT version.
    pub minor: u32,
    /// Build number, when known (Windows 10 and later decorations use it).
    pub build: Option<u32>,
    /// Server product (matches ProductType 2/3), when known.
    pub server: Option<bool>,
}

/// One parsed TargetOSVersion decoration:
/// `NT[arch][.major[.minor[.producttype[.suitemask[.build]]]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetOs {
    /// The decoration as written.
    pub raw: String,
    /// Architecture part, lower case (`amd64`, `x86`, `arm64`...); `None`
    /// for a bare `NT`.
    pub arch: Option<String>,
    /// OSMajorVersion.
    pub major: Option<u32>,
    /// OSMinorVersion.
    pub minor: Option<u32>,
    /// ProductType (1 workstation, 2 domain controller, 3 server).
    pub product_type: Option<u32>,
    /// SuiteMask.
    pub suite_mask: Option<u32>,
    /// BuildNumber.
    pub build: Option<u32>,
}

impl TargetOs {
    /// Parse a decoration; `None` when it does not start with `NT` or a
    /// numeric field is not a number.
    pub fn parse(s: &str) -> Option<TargetOs> {
        let t = s.trim();
        let rest = match (t.get(..2), t.get(2..)) {
            (Some(nt), Some(rest)) if nt.eq_ignore_ascii_case("nt") => rest,
            _ => return None,
        };
        let mut parts = rest.split('.');
        let arch = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut nums = [None; 5];
        for (i, p) in parts.enumerate() {
            if i >= 5 {
                return None;
            }
            if !p.trim().is_empty() {
                nums[i] = Some(parse_number(p)?);
            }
        }
        Some(TargetOs {
            raw: t.to_string(),
            arch: (!arch.is_empty()).then_some(arch),
            major: nums[0],
            minor: nums[1],
            product_type: nums[2],
            suite_mask: nums[3],
            build: nums[4],
        })
    }

    /// Whether this decoration applies to `arch` on `os` (`None`: any
    /// version). A bare `NT` applies to x86 only (Windows Server 2003 SP1
    /// and later require the platform on other architectures). SuiteMask
    /// is not checked.
    pub fn matches(&self, arch: Arch, os: Option<&OsVersion>) -> bool {
        match &self.arch {
            Some(a) if a != arch.inf_name() => return false,
            None if arch != Arch::X86 => return false,
            _ => {}
        }
        let Some(os) = os else { return true };
        let want = (
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.build.unwrap_or(0),
        );
        let have = (os.major, os.minor, os.build.unwrap_or(u32::MAX));
        if want > have {
            return false;
        }
        !matches!(
            (self.product_type, os.server),
            (Some(1), Some(true)) | (Some(2 | 3), Some(false))
        )
    }

    fn rank(&self) -> (u32, u32, u32, bool) {
        (
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.build.unwrap_or(0),
            self.product_type.is_some(),
        )
    }
}

/// One `[Manufacturer]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manufacturer {
    /// Manufacturer name (string-substituted key, or the models name).
    pub name: String,
    /// Models section base name.
    pub models: String,
    /// TargetOSVersion decorations listed.
    pub decorations: Vec<String>,
    /// Line number.
    pub line: usize,
}

/// A device model line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Model {
    /// Device description.
    pub description: String,
    /// Install section base name.
    pub install_section: String,
    /// Hardware ID first, then compatible IDs, as listed.
    pub hardware_ids: Vec<String>,
    /// Line number.
    pub line: usize,
}

/// The models section chosen for one manufacturer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelsSection {
    /// Manufacturer name.
    pub manufacturer: String,
    /// Section name used (e.g. `VioStor.NTamd64`).
    pub section: String,
    /// The decoration used; `None` for the undecorated section.
    pub decoration: Option<String>,
    /// Its models.
    pub models: Vec<Model>,
}

/// An `AddService` directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddService {
    /// Service name (empty for a null service).
    pub name: String,
    /// Flags (0x2 = SPSVCINST_ASSOCSERVICE: the device's function driver).
    pub flags: u32,
    /// Service-install section.
    pub install_section: Option<String>,
    /// Event-log install section.
    pub event_log_section: Option<String>,
    /// Line number.
    pub line: usize,
}

/// An install section resolved for an architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallSection {
    /// Section name actually used (e.g. `BALLOON_Device.NT`).
    pub name: String,
    /// CopyFiles references, in order.
    pub copy_files: Vec<CopyFilesRef>,
    /// AddReg section names.
    pub add_reg: Vec<String>,
    /// `Include` INF names (system INFs, not on the media).
    pub include: Vec<String>,
    /// AddService directives of `<name>.Services`.
    pub services: Vec<AddService>,
    /// AddReg section names of `<name>.HW`.
    pub hw_add_reg: Vec<String>,
}

/// A service-install section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInstall {
    /// Section name.
    pub section: String,
    /// DisplayName.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// ServiceType (1 = kernel driver).
    pub service_type: Option<u32>,
    /// StartType (0 boot, 1 system, 2 auto, 3 demand, 4 disabled).
    pub start_type: Option<u32>,
    /// ErrorControl.
    pub error_control: Option<u32>,
    /// ServiceBinary (e.g. `%12%\viostor.sys`).
    pub service_binary: Option<String>,
    /// LoadOrderGroup.
    pub load_order_group: Option<String>,
    /// Dependencies.
    pub dependencies: Vec<String>,
    /// AddReg section names.
    pub add_reg: Vec<String>,
}

/// A service of a driver with its install section and registry lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSummary {
    /// The AddService directive.
    pub add_service: AddService,
    /// Its service-install section.
    pub install: Option<ServiceInstall>,
    /// The AddReg lines of the service-install section (HKR = the
    /// service key).
    pub add_reg: Vec<AddRegLine>,
}

/// What a driver INF says for one architecture and OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverSummary {
    /// `[Version]`.
    pub version: Version,
    /// Catalog file for the architecture.
    pub catalog_file: Option<String>,
    /// The models sections used.
    pub models: Vec<ModelsSection>,
    /// Decorations used (one per manufacturer with a decorated section).
    pub decorations: Vec<String>,
    /// Every hardware and compatible ID of the models, de-duplicated.
    pub hardware_ids: Vec<String>,
    /// Resolved install sections.
    pub install_sections: Vec<InstallSection>,
    /// Services installed (de-duplicated by name).
    pub services: Vec<ServiceSummary>,
    /// Source files the package needs, relative to the INF directory
    /// (`/`-separated), de-duplicated: SourceDisksFiles entries and
    /// CopyFiles sources.
    pub files: Vec<String>,
}

impl DriverSummary {
    /// The device's function-driver service (AddService flag 0x2), else
    /// the first named service.
    pub fn main_service(&self) -> Option<&ServiceSummary> {
        let named = || {
            self.services
                .iter()
                .filter(|s| !s.add_service.name.is_empty())
        };
        named()
            .find(|s| s.add_service.flags & 0x2 != 0)
            .or_else(|| named().next())
    }
}

fn opt(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !s.is_empty() && !v.iter().any(|x| x.eq_ignore_ascii_case(s)) {
        v.push(s.to_string());
    }
}

impl Inf {
    /// The `[Version]` section (error when missing).
    pub fn version(&self) -> Result<Version, InfError> {
        let s = self
            .section("Version")
            .ok_or_else(|| self.error(None, "no [Version] section"))?;
        let mut v = Version {
            signature: opt(s.value("Signature")),
            class: opt(s.value("Class")),
            class_guid: opt(s.value("ClassGUID")),
            provider: opt(s.value("Provider")),
            ..Version::default()
        };
        if let Some(l) = s.get("DriverVer") {
            v.driver_date = opt(Some(l.value(0)));
            v.driver_version = opt(l.values.get(1).map(String::as_str));
        }
        for l in &s.lines {
            let Some(k) = &l.key else { continue };
            let lk = k.to_ascii_lowercase();
            if lk == "catalogfile" {
                v.catalog_files.push((None, l.value(0).to_string()));
            } else if let Some(d) = lk.strip_prefix("catalogfile.") {
                v.catalog_files
                    .push((Some(d.to_string()), l.value(0).to_string()));
            }
        }
        Ok(v)
    }

    /// The `[Manufacturer]` entries (empty when the section is missing).
    pub fn manufacturers(&self) -> Vec<Manufacturer> {
        let Some(s) = self.section("Manufacturer") else {
            return Vec::new();
        };
        s.lines
            .iter()
            .filter(|l| !l.value(0).is_empty())
            .map(|l| Manufacturer {
                name: l.key.clone().unwrap_or_else(|| l.value(0).to_string()),
                models: l.value(0).to_string(),
                decorations: l
                    .values
                    .iter()
                    .skip(1)
                    .filter(|d| !d.is_empty())
                    .cloned()
                    .collect(),
                line: l.line,
            })
            .collect()
    }

    /// The models sections that apply to `arch` on `os`, one per
    /// manufacturer that has one. Among the decorations that apply, the
    /// highest version wins (most specific on a tie); with none, x86 falls
    /// back to the undecorated section. A listed but missing section is an
    /// error.
    pub fn models(
        &self,
        arch: Arch,
        os: Option<&OsVersion>,
    ) -> Result<Vec<ModelsSection>, InfError> {
        let mut out = Vec::new();
        for m in self.manufacturers() {
            let mut best: Option<TargetOs> = None;
            for d in &m.decorations {
                let Some(t) = TargetOs::parse(d) else {
                    continue;
                };
                if t.matches(arch, os) && best.as_ref().is_none_or(|b| t.rank() > b.rank()) {
                    best = Some(t);
                }
            }
            let (section, decoration) = match best {
                Some(t) => (format!("{}.{}", m.models, t.raw), Some(t.raw)),
                None if arch == Arch::X86 && self.section(&m.models).is_some() => {
                    (m.models.clone(), None)
                }
                None => continue,
            };
            let sec = self.section(&section).ok_or_else(|| {
                self.error(
                    Some(m.line),
                    format!("[Manufacturer] names models section [{section}], which is missing"),
                )
            })?;
            let models = sec
                .lines
                .iter()
                .filter(|l| !l.value(0).is_empty())
                .map(|l| Model {
                    description: l.key.clone().unwrap_or_default(),
                    install_section: l.value(0).to_string(),
                    hardware_ids: l
                        .values
                        .iter()
                        .skip(1)
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                    line: l.line,
                })
                .collect();
            out.push(ModelsSection {
                manufacturer: m.name,
                section: sec.name.clone(),
                decoration,
                models,
            });
        }
        Ok(out)
    }

    /// Resolve install section `base` for `arch`: `<base>.NT<arch>`, else
    /// `<base>.NT`, else `<base>`; `None` when none exists.
    pub fn install_section(
        &self,
        base: &str,
        arch: Arch,
    ) -> Result<Option<InstallSection>, InfError> {
        let cands = [
            format!("{base}.NT{}", arch.inf_name()),
            format!("{base}.NT"),
            base.to_string(),
        ];
        let Some(sec) = cands.iter().find_map(|c| self.section(c)) else {
            return Ok(None);
        };
        let name = sec.name.clone();
        let mut r = InstallSection {
            name: name.clone(),
            copy_files: Vec::new(),
            add_reg: Vec::new(),
            include: Vec::new(),
            services: Vec::new(),
            hw_add_reg: Vec::new(),
        };
        for l in &sec.lines {
            if l.key_is("CopyFiles") {
                for v in l.values.iter().filter(|v| !v.is_empty()) {
                    r.copy_files.push(match v.strip_prefix('@') {
                        Some(f) => CopyFilesRef::File(f.trim().to_string()),
                        None => CopyFilesRef::Section(v.clone()),
                    });
                }
            } else if l.key_is("AddReg") {
                r.add_reg
                    .extend(l.values.iter().filter(|v| !v.is_empty()).cloned());
            } else if l.key_is("Include") {
                r.include
                    .extend(l.values.iter().filter(|v| !v.is_empty()).cloned());
            }
        }
        if let Some(s) = self.section(&format!("{name}.Services")) {
            for l in s.get_all("AddService") {
                r.services.push(self.add_service(l)?);
            }
        }
        if let Some(s) = self.section(&format!("{name}.HW")) {
            for l in s.get_all("AddReg") {
                r.hw_add_reg
                    .extend(l.values.iter().filter(|v| !v.is_empty()).cloned());
            }
        }
        Ok(Some(r))
    }

    fn add_service(&self, l: &Line) -> Result<AddService, InfError> {
        let f = l.value(1);
        let flags = if f.trim().is_empty() {
            0
        } else {
            parse_number(f).ok_or_else(|| {
                self.error(
                    Some(l.line),
                    format!("AddService flags '{f}' is not a number"),
                )
            })?
        };
        Ok(AddService {
            name: l.value(0).to_string(),
            flags,
            install_section: opt(l.values.get(2).map(String::as_str)),
            event_log_section: opt(l.values.get(3).map(String::as_str)),
            line: l.line,
        })
    }

    /// A service-install section (error when missing or when a numeric
    /// field is not a number).
    pub fn service_install(&self, name: &str) -> Result<ServiceInstall, InfError> {
        let sec = self.section(name).ok_or_else(|| {
            self.error(None, format!("service-install section [{name}] is missing"))
        })?;
        let num = |key: &str| -> Result<Option<u32>, InfError> {
            match sec.get(key) {
                None => Ok(None),
                Some(l) => parse_number(l.value(0)).map(Some).ok_or_else(|| {
                    self.error(
                        Some(l.line),
                        format!("{key} '{}' in [{name}] is not a number", l.value(0)),
                    )
                }),
            }
        };
        let mut add_reg = Vec::new();
        for l in sec.get_all("AddReg") {
            add_reg.extend(l.values.iter().filter(|v| !v.is_empty()).cloned());
        }
        let mut dependencies = Vec::new();
        for l in sec.get_all("Dependencies") {
            dependencies.extend(l.values.iter().filter(|v| !v.is_empty()).cloned());
        }
        Ok(ServiceInstall {
            section: sec.name.clone(),
            display_name: opt(sec.value("DisplayName")),
            description: opt(sec.value("Description")),
            service_type: num("ServiceType")?,
            start_type: num("StartType")?,
            error_control: num("ErrorControl")?,
            service_binary: opt(sec.value("ServiceBinary")),
            load_order_group: opt(sec.value("LoadOrderGroup")),
            dependencies,
            add_reg,
        })
    }

    /// Everything a driver package needs to know for `arch` on `os`.
    /// Errors when the INF has no models for the architecture, or when a
    /// section it references is missing.
    pub fn summary(&self, arch: Arch, os: Option<&OsVersion>) -> Result<DriverSummary, InfError> {
        let version = self.version()?;
        let models = self.models(arch, os)?;
        if models.iter().all(|m| m.models.is_empty()) {
            let decos: Vec<String> = self
                .manufacturers()
                .iter()
                .flat_map(|m| m.decorations.clone())
                .collect();
            return Err(self.error(
                None,
                format!(
                    "no [Manufacturer] models for {arch} (decorations present: {})",
                    if decos.is_empty() {
                        "none".to_string()
                    } else {
                        decos.join(", ")
                    }
                ),
            ));
        }
        let mut hardware_ids = Vec::new();
        let mut bases: Vec<String> = Vec::new();
        for ms in &models {
            for m in &ms.models {
                for id in &m.hardware_ids {
                    push_unique(&mut hardware_ids, id);
                }
                push_unique(&mut bases, &m.install_section);
            }
        }
        let mut install_sections = Vec::new();
        for b in &bases {
            let line = models
                .iter()
                .flat_map(|m| &m.models)
                .find(|m| m.install_section.eq_ignore_ascii_case(b))
                .map(|m| m.line);
            let is = self.install_section(b, arch)?.ok_or_else(|| {
                self.error(
                    line,
                    format!("install section [{b}] (or a .NT variant) is missing"),
                )
            })?;
            install_sections.push(is);
        }
        let mut services: Vec<ServiceSummary> = Vec::new();
        for is in &install_sections {
            for s in &is.services {
                if services
                    .iter()
                    .any(|x| x.add_service.name.eq_ignore_ascii_case(&s.name))
                {
                    continue;
                }
                let install = match &s.install_section {
                    Some(n) => Some(self.service_install(n)?),
                    None => None,
                };
                let mut add_reg = Vec::new();
                if let Some(i) = &install {
                    for r in &i.add_reg {
                        add_reg.extend(self.add_reg(r)?);
                    }
                }
                services.push(ServiceSummary {
                    add_service: s.clone(),
                    install,
                    add_reg,
                });
            }
        }
        let mut files = Vec::new();
        for f in self.source_disks_files(arch) {
            push_unique(&mut files, &self.source_path(&f.name, arch));
        }
        for is in &install_sections {
            for c in &is.copy_files {
                match c {
                    CopyFilesRef::File(f) => push_unique(&mut files, &self.source_path(f, arch)),
                    CopyFilesRef::Section(s) => {
                        for e in self.copy_files(s)? {
                            push_unique(&mut files, &self.source_path(&e.source, arch));
                        }
                    }
                }
            }
        }
        let decorations = models.iter().filter_map(|m| m.decoration.clone()).collect();
        Ok(DriverSummary {
            catalog_file: version.catalog_file(arch).map(String::from),
            version,
            models,
            decorations,
            hardware_ids,
            install_sections,
            services,
            files,
        })
    }
}
