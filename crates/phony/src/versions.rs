//! The Windows versions a phony guest can be, with the facts their
//! SOFTWARE hive and layout carry.

use crate::Error;
use guest::drivers::Arch;
use guest::inspect::Firmware;
use serde::Serialize;

/// A Windows version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// Windows XP Professional SP3 (x86 only).
    WinXp,
    /// Windows Server 2003 (x86 only).
    Win2003,
    /// Windows 7 Professional SP1.
    Win7,
    /// Windows Server 2008 R2 (x64 only).
    Win2008R2,
    /// Windows 10 Pro 22H2.
    Win10,
    /// Windows Server 2016.
    Win2016,
    /// Windows Server 2019.
    Win2019,
    /// Windows Server 2022.
    Win2022,
    /// Windows Server 2025 (build 26100, the Windows 11 24H2 kernel).
    Win2025,
    /// Windows 11 Pro 23H2 (UEFI only).
    Win11,
}

/// Which real SYSTEM hive a version's hive is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseHive {
    /// `SYSTEM-win7.xz` (pre-Windows 8: CriticalDeviceDatabase).
    Win7,
    /// `SYSTEM-win10-1709.xz` (Windows 8+: DriverDatabase).
    Win10,
}

/// Facts of one version.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// OS id as inspection reports it (`winxp`, `win2k3`, `win7`, …).
    pub os_id: &'static str,
    /// `ProductName`.
    pub product_name: &'static str,
    /// `CurrentVersion` (`5.1`, `6.1`, `6.3` on Windows 10+).
    pub current_version: &'static str,
    /// NT major version.
    pub major: u32,
    /// NT minor version.
    pub minor: u32,
    /// `CurrentBuildNumber`.
    pub build: u32,
    /// `InstallationType` (absent before Vista).
    pub installation_type: Option<&'static str>,
    /// `EditionID` (absent before Vista).
    pub edition_id: Option<&'static str>,
    /// `CSDVersion` (service pack), when there is one.
    pub csd_version: Option<&'static str>,
    /// Real hive it derives from.
    pub base: BaseHive,
    /// Default architecture.
    pub default_arch: Arch,
    /// 32-bit installs exist (and can be built).
    pub x86: bool,
    /// 64-bit installs can be built.
    pub x64: bool,
    /// Firmware it is installed for by default.
    pub default_firmware: Firmware,
    /// UEFI layout can be built (for every architecture the version has).
    pub uefi: bool,
    /// UEFI layout can be built for the x64 build only (Windows 7 and
    /// 2008 R2: 32-bit Windows before 8 does not boot from UEFI).
    pub uefi_x64: bool,
    /// BIOS layout can be built.
    pub bios: bool,
    /// NT 5.x: `boot.ini` + `ntldr`, `\WINDOWS`, lower-case hive names.
    pub nt5: bool,
    /// Server SKU.
    pub server: bool,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 10] = [
        Version::WinXp,
        Version::Win2003,
        Version::Win7,
        Version::Win2008R2,
        Version::Win10,
        Version::Win2016,
        Version::Win2019,
        Version::Win2022,
        Version::Win2025,
        Version::Win11,
    ];

    /// Parse a CLI name (`xp`, `winxp`, `2003`, `win7`, `2008r2`, `win10`,
    /// `2016`, `2019`, `2022`, `2025`, `win11`, or the OS ids).
    pub fn parse(s: &str) -> Result<Version, Error> {
        let l = s.to_ascii_lowercase();
        let v = match l.trim_start_matches("win").trim_start_matches("dows") {
            "xp" => Version::WinXp,
            "2003" | "2k3" => Version::Win2003,
            "7" => Version::Win7,
            "2008r2" | "2k8r2" => Version::Win2008R2,
            "10" => Version::Win10,
            "2016" | "2k16" => Version::Win2016,
            "2019" | "2k19" => Version::Win2019,
            "2022" | "2k22" => Version::Win2022,
            "2025" | "2k25" => Version::Win2025,
            "11" => Version::Win11,
            _ => {
                return Err(Error::Layout(format!(
                    "unknown Windows version {s:?} (expected xp, 2003, win7, 2008r2, win10, 2016, 2019, 2022, 2025 or win11)"
                )))
            }
        };
        Ok(v)
    }

    /// The version's facts.
    pub fn info(self) -> VersionInfo {
        let nt5 = |os_id, product_name, cv, minor, build, server| VersionInfo {
            os_id,
            product_name,
            current_version: cv,
            major: 5,
            minor,
            build,
            installation_type: None,
            edition_id: None,
            csd_version: Some(if server {
                "Service Pack 2"
            } else {
                "Service Pack 3"
            }),
            base: BaseHive::Win7,
            default_arch: Arch::X86,
            x86: true,
            x64: false,
            default_firmware: Firmware::Bios,
            uefi: false,
            uefi_x64: false,
            bios: true,
            nt5: true,
            server,
        };
        let nt10 = |os_id, product_name, build, server: bool, edition| VersionInfo {
            os_id,
            product_name,
            current_version: "6.3",
            major: 10,
            minor: 0,
            build,
            installation_type: Some(if server { "Server" } else { "Client" }),
            edition_id: Some(edition),
            csd_version: None,
            base: BaseHive::Win10,
            default_arch: Arch::Amd64,
            x86: false,
            x64: true,
            default_firmware: Firmware::Bios,
            uefi: true,
            uefi_x64: true,
            bios: true,
            nt5: false,
            server,
        };
        match self {
            Version::WinXp => nt5("winxp", "Microsoft Windows XP", "5.1", 1, 2600, false),
            Version::Win2003 => nt5(
                "win2k3",
                "Microsoft Windows Server 2003",
                "5.2",
                2,
                3790,
                true,
            ),
            Version::Win7 => VersionInfo {
                os_id: "win7",
                product_name: "Windows 7 Professional",
                current_version: "6.1",
                major: 6,
                minor: 1,
                build: 7601,
                installation_type: Some("Client"),
                edition_id: Some("Professional"),
                csd_version: Some("Service Pack 1"),
                base: BaseHive::Win7,
                default_arch: Arch::X86,
                x86: true,
                x64: true,
                default_firmware: Firmware::Bios,
                uefi: false,
                uefi_x64: true,
                bios: true,
                nt5: false,
                server: false,
            },
            Version::Win2008R2 => VersionInfo {
                os_id: "win2k8r2",
                product_name: "Windows Server 2008 R2 Standard",
                edition_id: Some("ServerStandard"),
                installation_type: Some("Server"),
                default_arch: Arch::Amd64,
                x86: false,
                server: true,
                ..Version::Win7.info()
            },
            Version::Win10 => nt10("win10", "Windows 10 Pro", 19045, false, "Professional"),
            Version::Win2016 => nt10(
                "win2k16",
                "Windows Server 2016 Standard",
                14393,
                true,
                "ServerStandard",
            ),
            Version::Win2019 => nt10(
                "win2k19",
                "Windows Server 2019 Datacenter",
                17763,
                true,
                "ServerDatacenter",
            ),
            Version::Win2022 => nt10(
                "win2k22",
                "Windows Server 2022 Datacenter",
                20348,
                true,
                "ServerDatacenter",
            ),
            Version::Win2025 => nt10(
                "win2k25",
                "Windows Server 2025 Datacenter",
                26100,
                true,
                "ServerDatacenter",
            ),
            // Windows 11 still calls itself "Windows 10" in ProductName:
            // only the build number (>= 22000) tells.
            Version::Win11 => VersionInfo {
                default_firmware: Firmware::Uefi,
                bios: false,
                ..nt10("win11", "Windows 10 Pro", 22631, false, "Professional")
            },
        }
    }
}
